"""The PostgreSQL read model: accounts and their postings, for lists, history, exports and statements.

Each batch is one transaction: lock the batch's offset rows, fold the events into the accounts with
core.ledger.apply (which ignores an event the account has already seen), insert the postings (the event id
is the key, so a re-delivered event inserts nothing), move the offsets. Rows are written with one
statement per table per batch (unnest of arrays), not a round trip per event.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg

from core import events as e
from core import ledger
from core.readmodel import (DECIDED_STATUS, PG_REBUILD_SCHEMA, PG_RETIRED_SCHEMA, PG_SCHEMA, REVIEWABLE_STATUSES,
                            Positions, ProjectionName)
from core.risk.rules import SEVERITIES
from streams.metrics import FRAUD_REVIEW_BACKLOG
from streams.projections.base import AccountsFold, ApplyError, EventRecord, Parked, ProjectionStore, Status

_ACCOUNT_COLUMNS = ("account_id", "customer_id", "currency", "balance", "available_balance", "overdraft_limit",
                    "status", "version", "transfers_out_in_flight", "opened_at", "updated_at", "holds")
_ACCOUNT_TYPES = ("text", "text", "text", "bigint", "bigint", "bigint", "text", "int", "int", "timestamptz",
                  "timestamptz", "jsonb")
_POSTING_COLUMNS = ("posting_id", "account_id", "sequence", "type", "amount", "currency", "balance_after",
                    "counterparty_account_id", "reference", "transfer_id", "command_id", "correlation_id",
                    "occurred_at", "event_partition", "event_offset", "channel")
_POSTING_TYPES = ("text", "text", "int", "text", "bigint", "text", "bigint", "text", "text", "text", "text",
                  "text", "timestamptz", "int", "bigint", "text")
# A case row as inserted when the ledger flags a movement; the decision columns are filled by CaseReviewed.
_CASE_COLUMNS = ("case_id", "account_id", "customer_id", "command_type", "amount", "currency", "channel",
                 "to_account_id", "counterparty_name", "counterparty_country", "reference", "action", "score",
                 "severity", "rule_ids", "kinds", "hits", "rule_set_version", "status", "created_at",
                 "correlation_id", "flag_event_id", "issued_at")
# Arrays of arrays do not unnest row by row, so text[] columns travel as JSON arrays and are converted back.
_CASE_TYPES = ("text", "text", "text", "text", "bigint", "text", "text", "text", "text", "text", "text", "text",
               "int", "text", "jsonb", "jsonb", "jsonb", "text", "text", "timestamptz", "text", "text",
               "timestamptz")
# Errors in the data, not the connection: retrying the same event will fail the same way.
_DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


def _unnest_insert(table: str, columns: tuple[str, ...], types: tuple[str, ...], conflict: str) -> str:
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({params}) {conflict}"


class PostgresProjection(ProjectionStore):
    name: ProjectionName = "postgres"

    def __init__(self, dsn: str, schema: str = PG_SCHEMA, pool: asyncpg.Pool | None = None) -> None:
        self.dsn = dsn
        self.schema = schema
        self.pool: asyncpg.Pool | None = pool
        self._owns_pool = pool is None
        s = schema
        self._insert_postings = _unnest_insert(f"{s}.transactions", _POSTING_COLUMNS, _POSTING_TYPES,
                                               "ON CONFLICT DO NOTHING")
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _ACCOUNT_COLUMNS[1:] if c != "opened_at")
        self._upsert_accounts = _unnest_insert(
            f"{s}.accounts", _ACCOUNT_COLUMNS, _ACCOUNT_TYPES,
            f"ON CONFLICT (account_id) DO UPDATE SET {updates} WHERE {s}.accounts.version < EXCLUDED.version")
        self._insert_cases = _case_insert(s)
        self._decide_cases = _case_decisions(s)

    async def open(self) -> None:
        if self.pool is None:
            self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
        await self._publish_backlog()   # from the start, not only after the next case event

    async def close(self) -> None:
        if self._owns_pool and self.pool is not None:
            await self.pool.close()
            self.pool = None

    @property
    def _pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "open() the projection first"
        return self.pool

    # ---- offsets and batches

    async def offsets(self) -> Positions:
        rows = await self._pool.fetch(f"SELECT partition, next_offset FROM {self.schema}.offsets")
        return {r["partition"]: r["next_offset"] for r in rows}

    async def apply(self, records: list[EventRecord], starts: Positions, ends: Positions) -> Positions:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(f"SELECT partition, next_offset FROM {self.schema}.offsets "
                                    f"WHERE partition = any($1::int[]) FOR UPDATE", list(ends))
            stored = {r["partition"]: r["next_offset"] for r in rows}
            # Partitions whose stored offset lies before this batch were rewound: leave them to the re-read.
            live = {p for p in ends if stored.get(p, 0) >= starts.get(p, 0)}
            todo = [r for r in records if r.partition in live and r.offset >= stored.get(r.partition, 0)]
            cases = await self._write(conn, todo)
            moved = {p: ends[p] for p in live if ends[p] > stored.get(p, 0)}
            if moved:
                await conn.execute(
                    f"INSERT INTO {self.schema}.offsets (partition, next_offset) "
                    f"SELECT * FROM unnest($1::int[], $2::bigint[]) "
                    f"ON CONFLICT (partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                    list(moved), list(moved.values()))
        if cases:
            await self._publish_backlog()
        return {p: stored.get(p, 0) for p in ends} | moved

    async def reapply(self, records: list[EventRecord]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            cases = await self._write(conn, records)
        if cases:
            await self._publish_backlog()

    async def _publish_backlog(self) -> None:
        """The review backlog (open and held cases) for Prometheus, from the live model only: a rebuild's
        half-filled schema would report too few."""
        if self.schema != PG_SCHEMA:
            return
        count = await self._pool.fetchval(f"SELECT count(*) FROM {self.schema}.cases "
                                          f"WHERE status = any($1::text[])", list(REVIEWABLE_STATUSES))
        FRAUD_REVIEW_BACKLOG.set(count)

    async def _write(self, conn: asyncpg.Connection, records: list[EventRecord]) -> bool:
        """Fold the records into accounts, postings and cases; True if any case was flagged or decided."""
        if not records:
            return False
        account_ids = list({r.event.account_id for r in records if r.event is not None})
        rows = await conn.fetch(f"SELECT * FROM {self.schema}.accounts WHERE account_id = any($1::text[])",
                                account_ids)
        folded = AccountsFold.of({r["account_id"]: _state_of(r) for r in rows},
                                 {r["account_id"]: r["opened_at"] for r in rows}, records)
        postings = [(p.posting_id, p.account_id, p.sequence, p.type, p.amount, p.currency, p.balance_after,
                     p.counterparty_account_id, p.reference, p.transfer_id, p.command_id, p.correlation_id,
                     p.occurred_at, record.partition, record.offset, p.channel) for record, p in folded.postings]
        states, opened, changed = folded.states, folded.opened, folded.changed
        try:
            if postings:
                await conn.execute(self._insert_postings, *map(list, zip(*postings, strict=True)))
            if changed:
                accounts = [(s.account_id, s.customer_id, s.currency, s.balance, s.available_balance,
                             s.overdraft_limit, s.status, s.sequence, s.transfers_out_in_flight,
                             opened[a], changed[a], json.dumps(s.holds, sort_keys=True))
                            for a, s in ((a, states[a]) for a in changed)]
                await conn.execute(self._upsert_accounts, *map(list, zip(*accounts, strict=True)))
            if folded.cases or folded.reviews:
                await self._write_cases(conn, folded.cases, folded.reviews)
        except _DATA_ERRORS as error:
            raise ApplyError(f"{type(error).__name__}: {error}") from None
        return bool(folded.cases or folded.reviews)

    async def _write_cases(self, conn: asyncpg.Connection, flagged: list[e.RiskCase],
                           reviews: list[e.CaseReviewed]) -> None:
        """Insert the batch's new cases, then record its decisions: a case flagged and decided in the same
        batch is inserted before it is decided. Both are no-ops for events already applied (the case id is
        the key; a decision applies only to an undecided case), so re-delivery changes nothing."""
        if flagged:
            rows = [_case_row(event) for event in flagged]
            await conn.execute(self._insert_cases, *map(list, zip(*rows, strict=True)))
        if reviews:
            decisions = [(r.case_id, DECIDED_STATUS[r.decision], r.occurred_at, r.reviewer, r.comment, r.event_id)
                         for r in reviews if r.decision in DECIDED_STATUS]
            if decisions:
                await conn.execute(self._decide_cases, *map(list, zip(*decisions, strict=True)))

    # ---- parked events and status

    async def park(self, parked: list[Parked]) -> None:
        await self._pool.executemany(
            "INSERT INTO projection_parked (projection, event_partition, event_offset, schema_name, fingerprint, "
            "reason, value, headers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) "
            "ON CONFLICT (projection, event_partition, event_offset) DO UPDATE SET reason = EXCLUDED.reason, "
            "attempts = projection_parked.attempts + 1",
            [(self.name, p.partition, p.offset, p.schema_name, p.fingerprint, p.reason, p.value,
              json.dumps([[k, v.hex()] for k, v in p.headers])) for p in parked])

    async def parked(self) -> list[Parked]:
        rows = await self._pool.fetch(
            "SELECT * FROM projection_parked WHERE projection = $1 ORDER BY event_partition, event_offset",
            self.name)
        return [Parked(r["event_partition"], r["event_offset"], r["reason"], r["schema_name"], r["fingerprint"],
                       r["value"], [(k, bytes.fromhex(v)) for k, v in json.loads(r["headers"])], r["parked_at"],
                       r["attempts"]) for r in rows]

    async def unpark(self, parked: list[Parked]) -> None:
        await self._pool.executemany(
            "DELETE FROM projection_parked WHERE projection = $1 AND event_partition = $2 AND event_offset = $3",
            [(self.name, p.partition, p.offset) for p in parked])

    async def record_error(self, error: str | None) -> None:
        await self._pool.execute(
            "INSERT INTO projection_status (projection, last_error, last_error_at) VALUES ($1, $2, now()) "
            "ON CONFLICT (projection) DO UPDATE SET last_error = EXCLUDED.last_error, last_error_at = now()",
            self.name, error)

    async def status(self) -> Status:
        row = await self._pool.fetchrow("SELECT last_error, last_error_at FROM projection_status "
                                        "WHERE projection = $1", self.name)
        parked = await self._pool.fetchval("SELECT count(*) FROM projection_parked WHERE projection = $1",
                                           self.name)
        built = await self._pool.fetchval("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
                                          "WHERE nspname = $1", self.schema)
        return Status(self.name, f"schema {self.schema}" + (f", {built}" if built else ""), await self.offsets(),
                      parked, row["last_error"] if row else None, row["last_error_at"] if row else None)

    # ---- rebuild

    async def rebuild_target(self) -> PostgresProjection:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(f"DROP SCHEMA IF EXISTS {PG_REBUILD_SCHEMA} CASCADE")
            await conn.execute("SELECT bank_create_readmodel($1)", PG_REBUILD_SCHEMA)
        return PostgresProjection(self.dsn, PG_REBUILD_SCHEMA, pool=self._pool)

    async def swap_in(self, built: ProjectionStore) -> str:
        """Rename schemas in one transaction: readers and the live projection see the old model or the new."""
        assert isinstance(built, PostgresProjection) and built.schema == PG_REBUILD_SCHEMA
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '60s'")
            await conn.execute(f"DROP SCHEMA IF EXISTS {PG_RETIRED_SCHEMA} CASCADE")
            await conn.execute(f"ALTER SCHEMA {PG_SCHEMA} RENAME TO {PG_RETIRED_SCHEMA}")
            await conn.execute(f"ALTER SCHEMA {PG_REBUILD_SCHEMA} RENAME TO {PG_SCHEMA}")
            built = f"rebuilt from offset 0 at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
            await conn.execute(f"COMMENT ON SCHEMA {PG_SCHEMA} IS '{built}'")  # a literal is required here
            await conn.execute(f"DROP SCHEMA {PG_RETIRED_SCHEMA} CASCADE")
        return f"schema {PG_SCHEMA} (rebuilt)"


def _state_of(row: asyncpg.Record) -> ledger.AccountState:
    return ledger.AccountState(account_id=row["account_id"], customer_id=row["customer_id"],
                               currency=row["currency"], overdraft_limit=row["overdraft_limit"],
                               balance=row["balance"], status=row["status"], sequence=row["version"],
                               transfers_out_in_flight=row["transfers_out_in_flight"],
                               holds=json.loads(row["holds"]))


# ---------------------------------------------------------------- risk cases


def _case_insert(schema: str) -> str:
    columns = ", ".join(_CASE_COLUMNS)
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_CASE_TYPES, start=1))
    # rule_ids and kinds arrive as JSON arrays (see _CASE_TYPES): turn them into text[] here.
    select = ", ".join(f"ARRAY(SELECT jsonb_array_elements_text(c.{c}))" if c in ("rule_ids", "kinds") else f"c.{c}"
                       for c in _CASE_COLUMNS)
    return (f"INSERT INTO {schema}.cases ({columns}) SELECT {select} FROM unnest({params}) AS c({columns}) "
            f"ON CONFLICT (case_id) DO NOTHING")


def _case_decisions(schema: str) -> str:
    """Only an open or held case takes a decision, and only one: a blocked case stays blocked (the ledger
    rejected its movement; there is nothing to approve), and a re-delivered CaseReviewed changes nothing."""
    return (f"UPDATE {schema}.cases AS c SET status = d.status, decided_at = d.decided_at, reviewer = d.reviewer, "
            f"comment = d.comment, decision_event_id = d.event_id "
            f"FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[]) "
            f"AS d(case_id, status, decided_at, reviewer, comment, event_id) "
            f"WHERE c.case_id = d.case_id AND c.decision_event_id IS NULL "
            f"AND c.status = any('{{{','.join(REVIEWABLE_STATUSES)}}}'::text[])")


def _case_row(event: e.RiskCase) -> tuple[Any, ...]:
    hits = event.hits
    kinds = list(dict.fromkeys(h["kind"] for h in hits))   # distinct, in rule-set order
    return (event.command_id, event.account_id, event.customer_id, event.command_type, event.amount,
            event.currency, event.channel, event.to_account_id, event.counterparty_name,
            event.counterparty_country, event.reference, event.action, event.score, _severity(hits),
            json.dumps([h["rule_id"] for h in hits]), json.dumps(kinds), json.dumps(hits, sort_keys=True),
            event.rule_set_version, _initial_status(event), event.occurred_at, event.correlation_id,
            event.event_id, event.issued_at)


def _initial_status(event: e.RiskCase) -> str:
    """held for a hold, blocked for a block, open for an alert (the movement posted; a reviewer looks at it)."""
    if isinstance(event, e.FundsHeld):
        return "held"
    return "blocked" if event.action == "block" else "open"


def _severity(hits: list[dict[str, Any]]) -> str | None:
    """The most severe of the hits' severities (None without hits)."""
    ranks = [SEVERITIES.index(h["severity"]) for h in hits if h.get("severity") in SEVERITIES]
    return SEVERITIES[max(ranks)] if ranks else None
