"""The query side's access to the read models: PostgreSQL, Redis and MongoDB, never the command side.

Every read model stores how far it has read the event log; `positions` reads that, so each response can
say how fresh it is, and `wait_until` lets a client read its own write (`?min_position=`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from core.readmodel import (AML_KINDS, MONGO_DB, MONGO_META, PG_SCHEMA, REDIS_LIVE, Positions, mongo_collection,
                            reached, redis_account_key, redis_offsets_key)

Model = Literal["postgres", "redis", "mongo"]
_GEN = "__generation__"
# Reads the live generation and, in the same atomic step, the account and the generation's offsets.
_ACCOUNT_SCRIPT = """
local g = redis.call('GET', KEYS[1]) or '1'
local account = redis.call('HGETALL', (string.gsub(ARGV[1], ARGV[3], g)))
local offsets = redis.call('HGETALL', (string.gsub(ARGV[2], ARGV[3], g)))
return {account, offsets}
"""
_OFFSETS_SCRIPT = """
local g = redis.call('GET', KEYS[1]) or '1'
return redis.call('HGETALL', (string.gsub(ARGV[1], ARGV[2], g)))
"""
POLL_S = 0.05


@dataclass
class TransactionFilter:
    since: datetime | None = None
    until: datetime | None = None
    types: list[str] = field(default_factory=list)
    min_amount: int | None = None      # minor units, compared with the absolute amount
    max_amount: int | None = None
    text: str | None = None            # substring of the reference, case-insensitive

    def where(self, account_id: str) -> tuple[str, list[Any]]:
        clauses, params = ["account_id = $1"], [account_id]

        def add(sql: str, value: Any) -> None:
            params.append(value)
            clauses.append(sql.format(f"${len(params)}"))

        if self.since is not None:
            add("occurred_at >= {}", self.since)
        if self.until is not None:
            add("occurred_at < {}", self.until)
        if self.types:
            add("type = any({}::text[])", self.types)
        if self.min_amount is not None:
            add("abs(amount) >= {}", self.min_amount)
        if self.max_amount is not None:
            add("abs(amount) <= {}", self.max_amount)
        if self.text:
            escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            add("reference ILIKE {}", f"%{escaped}%")
        return " AND ".join(clauses), params


@dataclass
class AuditFilter:
    account_id: str | None = None
    customer_id: str | None = None
    types: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.account_id:
            query["account_id"] = self.account_id
        if self.customer_id:
            query["customer_id"] = self.customer_id
        if self.types:
            query["type"] = {"$in": self.types}
        period = {op: t for op, t in (("$gte", self.since), ("$lt", self.until)) if t is not None}
        if period:
            query["occurred_at"] = period
        return query


@dataclass
class CaseFilter:
    statuses: list[str] = field(default_factory=list)
    severities: list[str] = field(default_factory=list)
    rule_id: str | None = None
    account_id: str | None = None
    customer_id: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = ["true"], []

        def add(sql: str, value: Any) -> None:
            params.append(value)
            clauses.append(sql.format(f"${len(params)}"))

        if self.statuses:
            add("status = any({}::text[])", self.statuses)
        if self.severities:
            add("severity = any({}::text[])", self.severities)
        if self.rule_id:
            add("rule_ids @> array[{}::text]", self.rule_id)   # @>: the GIN index on rule_ids applies
        if self.account_id:
            add("account_id = {}", self.account_id)
        if self.customer_id:
            add("customer_id = {}", self.customer_id)
        return " AND ".join(clauses), params


class ReadModels:
    def __init__(self, pg: asyncpg.Pool, redis: Redis, mongo: AsyncMongoClient) -> None:
        self.pg, self.redis, self.mongo = pg, redis, mongo
        self._account_script = redis.register_script(_ACCOUNT_SCRIPT)
        self._offsets_script = redis.register_script(_OFFSETS_SCRIPT)

    # ---- freshness

    async def positions(self, model: Model) -> Positions:
        if model == "postgres":
            rows = await self.pg.fetch(f"SELECT partition, next_offset FROM {PG_SCHEMA}.offsets")
            return {r["partition"]: r["next_offset"] for r in rows}
        if model == "redis":
            raw = await self._offsets_script(keys=[REDIS_LIVE], args=[redis_offsets_key(_GEN), _GEN])
            return _int_pairs(raw)
        generation = await self._mongo_generation()
        docs = await self._mongo_db[mongo_collection("offsets", generation)].find({}).to_list()
        return {int(d["_id"]): int(d["next_offset"]) for d in docs}

    async def wait_until(self, model: Model, wanted: Positions, timeout_s: float) -> Positions | None:
        """The model's positions once they reach `wanted`, or None if they do not within the timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = await self.positions(model)
            if reached(current, wanted):
                return current
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(POLL_S)

    # ---- redis

    async def cached_account(self, account_id: str) -> tuple[dict[str, str] | None, Positions]:
        """The account's hash from the live generation, and that generation's positions, in one step."""
        account, offsets = await self._account_script(
            keys=[REDIS_LIVE], args=[redis_account_key(_GEN, account_id), redis_offsets_key(_GEN), _GEN])
        fields = {_text(k): _text(v) for k, v in zip(account[::2], account[1::2], strict=True)}
        return fields or None, _int_pairs(offsets)

    # ---- postgres

    async def account(self, account_id: str) -> asyncpg.Record | None:
        return await self.pg.fetchrow(f"SELECT * FROM {PG_SCHEMA}.accounts WHERE account_id = $1", account_id)

    async def customer_accounts(self, customer_id: str) -> list[asyncpg.Record]:
        return await self.pg.fetch(f"SELECT * FROM {PG_SCHEMA}.accounts WHERE customer_id = $1 ORDER BY account_id",
                                   customer_id)

    async def transactions(self, account_id: str, where: TransactionFilter, before_sequence: int | None,
                           limit: int) -> list[asyncpg.Record]:
        """Newest first, ordered by the account's sequence: new postings only ever land on the first page,
        so following the cursor never skips or repeats a row."""
        sql, params = where.where(account_id)
        if before_sequence is not None:
            params.append(before_sequence)
            sql += f" AND sequence < ${len(params)}"
        params.append(limit)
        return await self.pg.fetch(f"SELECT * FROM {PG_SCHEMA}.transactions WHERE {sql} "
                                   f"ORDER BY sequence DESC LIMIT ${len(params)}", *params)

    async def stream_transactions(self, account_id: str, where: TransactionFilter) -> AsyncIterator[asyncpg.Record]:
        """Every matching posting, newest first, fetched through a server-side cursor (bounded memory)."""
        sql, params = where.where(account_id)
        async with self.pg.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            query = f"SELECT * FROM {PG_SCHEMA}.transactions WHERE {sql} ORDER BY sequence DESC"
            async for row in conn.cursor(query, *params, prefetch=500):
                yield row

    async def statement(self, account_id: str, start: datetime, end: datetime
                        ) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
        """The last posting before the period (its balance opens the statement) and the period's postings,
        read in one snapshot so they agree."""
        async with self.pg.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            before = await conn.fetchrow(
                f"SELECT * FROM {PG_SCHEMA}.transactions WHERE account_id = $1 AND occurred_at < $2 "
                f"ORDER BY sequence DESC LIMIT 1", account_id, start)
            rows = await conn.fetch(
                f"SELECT * FROM {PG_SCHEMA}.transactions WHERE account_id = $1 AND occurred_at >= $2 "
                f"AND occurred_at < $3 ORDER BY sequence", account_id, start, end)
        return before, rows

    # ---- postgres: risk cases and reports

    async def cases(self, where: CaseFilter, before: tuple[datetime, str] | None, limit: int
                    ) -> list[asyncpg.Record]:
        """Newest first by (created_at, case_id); `before` is the last case of the previous page."""
        sql, params = where.where()
        if before is not None:
            params += list(before)
            sql += f" AND (created_at, case_id) < (${len(params) - 1}, ${len(params)})"
        params.append(limit)
        return await self.pg.fetch(f"SELECT * FROM {PG_SCHEMA}.cases WHERE {sql} "
                                   f"ORDER BY created_at DESC, case_id DESC LIMIT ${len(params)}", *params)

    async def case(self, case_id: str) -> asyncpg.Record | None:
        return await self.pg.fetchrow(f"SELECT * FROM {PG_SCHEMA}.cases WHERE case_id = $1", case_id)

    async def cash_totals(self, start: datetime, end: datetime, thresholds: dict[str, int]) -> list[asyncpg.Record]:
        """Per customer, currency and direction: the cash postings in [start, end) whose total reaches the
        currency's threshold (minor units); currencies without a threshold are left out."""
        return await self.pg.fetch(
            f"""SELECT a.customer_id, t.currency, CASE WHEN t.amount > 0 THEN 'in' ELSE 'out' END AS direction,
                       sum(abs(t.amount))::bigint AS total, count(*)::int AS count,
                       array_agg(DISTINCT t.account_id ORDER BY t.account_id) AS account_ids
                FROM {PG_SCHEMA}.transactions t
                JOIN {PG_SCHEMA}.accounts a ON a.account_id = t.account_id
                JOIN unnest($3::text[], $4::bigint[]) AS th(currency, minor) ON th.currency = t.currency
                WHERE t.channel = 'cash' AND t.occurred_at >= $1 AND t.occurred_at < $2
                GROUP BY a.customer_id, t.currency, direction, th.minor
                HAVING sum(abs(t.amount)) >= th.minor
                ORDER BY a.customer_id, t.currency, direction""",
            start, end, list(thresholds), list(thresholds.values()))

    async def stream_sar_candidates(self, start: datetime, end: datetime) -> AsyncIterator[asyncpg.Record]:
        """Cases created in [start, end) with at least one AML hit, oldest first, through a server-side cursor."""
        async with self.pg.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            query = (f"SELECT * FROM {PG_SCHEMA}.cases WHERE kinds && $1::text[] AND created_at >= $2 "
                     f"AND created_at < $3 ORDER BY created_at, case_id")
            async for row in conn.cursor(query, list(AML_KINDS), start, end, prefetch=500):
                yield row

    # ---- mongo

    @property
    def _mongo_db(self) -> Any:
        return self.mongo[MONGO_DB]

    async def _mongo_generation(self) -> int:
        meta = await self._mongo_db[MONGO_META].find_one({"_id": "mongo"})
        return int(meta["live"]) if meta else 1

    async def audit(self, where: AuditFilter, after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
        return await self._newest_first("audit", where.query(), after, limit)

    async def timeline(self, customer_id: str, where: AuditFilter, after: tuple[datetime, str] | None,
                       limit: int) -> list[dict[str, Any]]:
        return await self._newest_first("timeline", where.query() | {"customer_id": customer_id}, after, limit)

    async def _newest_first(self, kind: Literal["audit", "timeline"], query: dict[str, Any],
                            after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
        """Newest first by (occurred_at, event id); `after` is the last entry of the previous page."""
        if after is not None:
            at, event_id = after
            older = {"$or": [{"occurred_at": {"$lt": at}}, {"occurred_at": at, "_id": {"$lt": event_id}}]}
            query = {"$and": [query, older]} if query else older
        collection = self._mongo_db[mongo_collection(kind, await self._mongo_generation())]
        cursor = collection.find(query).sort([("occurred_at", -1), ("_id", -1)]).limit(limit)
        return await cursor.to_list()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _int_pairs(flat: list[Any]) -> Positions:
    return {int(_text(k)): int(_text(v)) for k, v in zip(flat[::2], flat[1::2], strict=True)}
