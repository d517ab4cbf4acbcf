"""The Redis read model: each account's balance and status, and its most recent postings, for fast lookups.

Everything lives in a generation: keys under `bank:rm:<G>:` (account hashes, posting sorted sets, the
offsets hash), and REDIS_LIVE names the live generation. A rebuild fills a fresh generation and swaps the
pointer, so readers see the old model or the new one, never a mix.

Each batch is one optimistic transaction: WATCH the live pointer, the generation's offsets and the batch's
accounts, read them in one round trip, fold the events with core.readmodel.fold (which ignores an event the
account has already seen), then MULTI/EXEC the account hashes, the postings (ZADD of a deterministic member,
so a re-delivered event adds nothing) and the offsets. If a watched key changed meanwhile (a rebuild was
swapped in, another worker took the partition) EXEC fails and the batch starts over.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from core import ledger
from core.readmodel import (REDIS_LIVE, REDIS_PARKED, REDIS_RECENT_POSTINGS, REDIS_STATUS, Positions,
                            Posting, ProjectionName, redis_account_key, redis_offsets_key,
                            redis_postings_key, redis_prefix)
from streams.projections.base import AccountsFold, EventRecord, Parked, ProjectionStore, Status

REDIS_GENERATIONS = "bank:rm:generations"   # counter: the last generation handed out to a rebuild
_SCAN_CHUNK = 1000
# A generation above both the counter and the live one, atomically (the counter may have been lost).
_NEXT_GENERATION = """
local live = tonumber(redis.call('GET', KEYS[1]) or '1')
local n = redis.call('INCR', KEYS[2])
if n <= live then
  n = live + 1
  redis.call('SET', KEYS[2], n)
end
return n
"""

Hash = dict[str, str]


class RedisProjection(ProjectionStore):
    """`generation=None` follows the live generation (read at the start of every batch); a fixed one is a
    rebuild target. A client passed in is shared, not closed; it must decode responses to str."""

    name: ProjectionName = "redis"

    def __init__(self, url: str, generation: int | None = None, client: Redis | None = None, *,
                 live_key: str = REDIS_LIVE) -> None:
        self.url = url
        self.generation = generation
        self.live_key = live_key      # REDIS_LIVE; tests use their own so they never move a running model
        self._client = client
        self._owns_client = client is None

    async def open(self) -> None:
        if self._client is None:
            self._client = Redis.from_url(self.url, decode_responses=True)
        if self.generation is None:
            await self._client.setnx(self.live_key, 1)

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def _redis(self) -> Redis:
        assert self._client is not None, "open() the projection first"
        return self._client

    async def _current_generation(self) -> int:
        if self.generation is not None:
            return self.generation
        return int(await self._redis.get(self.live_key) or 1)

    # ---- offsets and batches

    async def offsets(self) -> Positions:
        raw = await self._redis.hgetall(redis_offsets_key(await self._current_generation()))
        return {int(p): int(o) for p, o in raw.items()}

    async def apply(self, records: list[EventRecord], starts: Positions, ends: Positions) -> Positions:
        return await self._transaction(records, (starts, ends))

    async def reapply(self, records: list[EventRecord]) -> None:
        await self._transaction(records, None)

    async def _transaction(self, records: list[EventRecord], bounds: tuple[Positions, Positions] | None
                           ) -> Positions:
        """Watch, read, fold, MULTI/EXEC; redis-py's transaction() runs it again on a WatchError.
        `bounds` (starts, ends) applies the offset rules and moves the offsets; None ignores them."""
        account_ids = sorted({r.event.account_id for r in records if r.event is not None})

        async def attempt(pipe: Pipeline) -> Positions:
            generation = await self._watch_generation(pipe)
            offsets_key = redis_offsets_key(generation)
            await pipe.watch(offsets_key, *(redis_account_key(generation, a) for a in account_ids))
            stored, rows = await self._read(generation, account_ids)
            todo, moved = (records, {}) if bounds is None else _plan(records, stored, *bounds)
            accounts, postings = _fold_batch(rows, todo)
            pipe.multi()
            _queue_writes(pipe, generation, accounts, postings, moved)
            ends = bounds[1] if bounds else {}
            return {p: stored.get(p, 0) for p in ends} | moved

        return await self._redis.transaction(attempt, value_from_callable=True)

    async def _watch_generation(self, pipe: Pipeline) -> int:
        if self.generation is not None:
            return self.generation
        await pipe.watch(self.live_key)   # a swap during the batch fails its EXEC
        return int(await pipe.get(self.live_key) or 1)

    async def _read(self, generation: int, account_ids: list[str]) -> tuple[Positions, dict[str, Hash]]:
        """The generation's offsets and the accounts' hashes, in one round trip."""
        async with self._redis.pipeline(transaction=False) as reader:
            reader.hgetall(redis_offsets_key(generation))
            for account_id in account_ids:
                reader.hgetall(redis_account_key(generation, account_id))
            offsets, *hashes = await reader.execute()
        rows = {a: h for a, h in zip(account_ids, hashes, strict=True) if h}
        return {int(p): int(o) for p, o in offsets.items()}, rows

    # ---- parked events and status

    async def park(self, parked: list[Parked]) -> None:
        fields = [f"{p.partition}:{p.offset}" for p in parked]

        async def attempt(pipe: Pipeline) -> None:
            known = {f: json.loads(v) for f, v in zip(fields, await pipe.hmget(REDIS_PARKED, fields),
                                                        strict=True) if v}
            entries: dict[str, str] = {}
            for field, p in zip(fields, parked, strict=True):
                before = known.get(field)
                entry = _parked_entry(p, before)
                known[field] = entry            # the same event twice in one call counts twice
                entries[field] = json.dumps(entry, sort_keys=True)
            pipe.multi()
            pipe.hset(REDIS_PARKED, mapping=entries)

        if parked:
            await self._redis.transaction(attempt, REDIS_PARKED)

    async def parked(self) -> list[Parked]:
        raw = await self._redis.hgetall(REDIS_PARKED)
        found = [_parked_of(field, json.loads(value)) for field, value in raw.items()]
        return sorted(found, key=lambda p: (p.partition, p.offset))

    async def unpark(self, parked: list[Parked]) -> None:
        if parked:
            await self._redis.hdel(REDIS_PARKED, *(f"{p.partition}:{p.offset}" for p in parked))

    async def record_error(self, error: str | None) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            if error is None:
                pipe.hdel(REDIS_STATUS, "last_error")
            else:
                pipe.hset(REDIS_STATUS, "last_error", error)
            pipe.hset(REDIS_STATUS, "last_error_at", datetime.now(UTC).isoformat())
            await pipe.execute()

    async def status(self) -> Status:
        generation = await self._current_generation()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(redis_offsets_key(generation))
            pipe.hlen(REDIS_PARKED)
            pipe.hgetall(REDIS_STATUS)
            offsets, parked, status = await pipe.execute()
        at = status.get("last_error_at")
        return Status(self.name, f"generation {generation}", {int(p): int(o) for p, o in offsets.items()}, parked,
                      status.get("last_error"), datetime.fromisoformat(at) if at else None)

    # ---- rebuild

    async def rebuild_target(self) -> RedisProjection:
        generation = int(await self._redis.eval(_NEXT_GENERATION, 2, self.live_key, REDIS_GENERATIONS))
        await self._drop(generation)   # leftovers of an abandoned rebuild
        return RedisProjection(self.url, generation, client=self._redis, live_key=self.live_key)

    async def swap_in(self, built: ProjectionStore) -> str:
        """Point REDIS_LIVE at the built generation (one SET: readers see the old model or the new), then
        drop the old one; the live projection's next batch fails its WATCH and goes on in the new one."""
        assert isinstance(built, RedisProjection) and built.generation is not None
        old = await self._redis.set(self.live_key, built.generation, get=True)
        previous = int(old or 1)   # readers take a missing pointer for generation 1
        if previous != built.generation:
            await self._drop(previous)
        return f"generation {built.generation}"

    async def _drop(self, generation: int) -> None:
        """UNLINK every key of a generation, in chunks (SCAN, never KEYS: the server stays responsive)."""
        chunk: list[str] = []
        async for key in self._redis.scan_iter(match=f"{redis_prefix(generation)}*", count=_SCAN_CHUNK):
            chunk.append(key)
            if len(chunk) >= _SCAN_CHUNK:
                await self._redis.unlink(*chunk)
                chunk = []
        if chunk:
            await self._redis.unlink(*chunk)


# ---------------------------------------------------------------- pure parts of a batch


def _plan(records: list[EventRecord], stored: Positions, starts: Positions, ends: Positions
          ) -> tuple[list[EventRecord], Positions]:
    """The records still to apply and the offsets to move: the same rules as the PostgreSQL projection."""
    # Partitions whose stored offset lies before this batch were rewound: leave them to the re-read.
    live = {p for p in ends if stored.get(p, 0) >= starts.get(p, 0)}
    todo = [r for r in records if r.partition in live and r.offset >= stored.get(r.partition, 0)]
    moved = {p: ends[p] for p in live if ends[p] > stored.get(p, 0)}
    return todo, moved


def _fold_batch(rows: dict[str, Hash], records: list[EventRecord]
                ) -> tuple[dict[str, Hash], dict[str, dict[str, int]]]:
    """Fold the records into the stored accounts: the hashes that changed, and each account's postings
    (member -> sequence) to add."""
    folded = AccountsFold.of({a: _state_of(h) for a, h in rows.items()},
                             {a: datetime.fromisoformat(h["opened_at"]) for a, h in rows.items()}, records)
    postings: dict[str, dict[str, int]] = {}
    for _record, posting in folded.postings:
        postings.setdefault(posting.account_id, {})[_posting_member(posting)] = posting.sequence
    accounts = {a: _hash_of(folded.states[a], folded.opened[a].isoformat(), at.isoformat())
                for a, at in folded.changed.items()}
    return accounts, postings


def _queue_writes(pipe: Pipeline, generation: int, accounts: dict[str, Hash],
                  postings: dict[str, dict[str, int]], moved: Positions) -> None:
    for account_id, fields in accounts.items():
        pipe.hset(redis_account_key(generation, account_id), mapping=fields)
    for account_id, members in postings.items():
        key = redis_postings_key(generation, account_id)
        pipe.zadd(key, members)
        pipe.zremrangebyrank(key, 0, -(REDIS_RECENT_POSTINGS + 1))   # keep the newest N
    if moved:
        pipe.hset(redis_offsets_key(generation), mapping={str(p): str(o) for p, o in moved.items()})


def _posting_member(posting: Posting) -> str:
    """Deterministic JSON, so the same posting is the same member (ZADD adds it once)."""
    fields = dataclasses.asdict(posting) | {"occurred_at": posting.occurred_at.isoformat()}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def _hash_of(state: ledger.AccountState, opened_at: str, updated_at: str) -> Hash:
    # Money as decimal strings of minor units: never floats.
    return {"account_id": state.account_id, "customer_id": state.customer_id, "currency": state.currency,
            "balance": str(state.balance), "available_balance": str(state.available_balance),
            "overdraft_limit": str(state.overdraft_limit), "status": state.status, "version": str(state.sequence),
            "transfers_out_in_flight": str(state.transfers_out_in_flight), "opened_at": opened_at,
            "updated_at": updated_at, "holds": _holds_json(state.holds)}


def _holds_json(holds: dict[str, dict[str, Any]]) -> str:
    """The movements held for review (available_balance depends on them), as deterministic JSON. Always
    written, even empty: HSET never removes a field, so a released hold must be overwritten."""
    return json.dumps(holds, sort_keys=True, separators=(",", ":"))


def _state_of(fields: Hash) -> ledger.AccountState:
    return ledger.AccountState(account_id=fields["account_id"], customer_id=fields["customer_id"],
                               currency=fields["currency"], overdraft_limit=int(fields["overdraft_limit"]),
                               balance=int(fields["balance"]), status=fields["status"],  # type: ignore[arg-type]
                               sequence=int(fields["version"]),
                               transfers_out_in_flight=int(fields["transfers_out_in_flight"]),
                               holds=json.loads(fields.get("holds") or "{}"))   # absent: written before holds


def _parked_entry(parked: Parked, before: dict[str, Any] | None) -> dict[str, Any]:
    """A parked event as stored; parked again, it keeps its first parked_at and counts the attempt."""
    return {"reason": parked.reason, "schema_name": parked.schema_name, "fingerprint": parked.fingerprint,
            "value": base64.b64encode(parked.value).decode() if parked.value is not None else None,
            "headers": [[k, v.hex()] for k, v in parked.headers],
            "parked_at": before["parked_at"] if before else datetime.now(UTC).isoformat(),
            "attempts": before["attempts"] + 1 if before else parked.attempts}


def _parked_of(field: str, entry: dict[str, Any]) -> Parked:
    partition, offset = field.split(":")
    value = base64.b64decode(entry["value"]) if entry["value"] is not None else None
    return Parked(int(partition), int(offset), entry["reason"], entry["schema_name"], entry["fingerprint"], value,
                  [(k, bytes.fromhex(v)) for k, v in entry["headers"]], datetime.fromisoformat(entry["parked_at"]),
                  entry["attempts"])
