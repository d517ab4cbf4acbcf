"""The Redis projection against a real Redis: what a batch writes, idempotence, the offset rules, parked
events and the generation swap.

Other tests share the server, so every test works in generations of its own, handed out by rebuild_target
(above anything live), and the swap tests use a live pointer of their own instead of REDIS_LIVE.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from core import events as e
from core.readmodel import (REDIS_LIVE, REDIS_RECENT_POSTINGS, redis_account_key, redis_offsets_key,
                            redis_postings_key, redis_prefix)
from schemas.codec import get_codec
from streams.projections.base import ApplyError, EventRecord, Parked
from streams.projections.redis_store import RedisProjection

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


# ---------------------------------------------------------------- events and records


def _event(cls: type[e.Event], account: str, sequence: int, **fields: Any) -> e.Event:
    command = uuid.uuid4().hex
    return cls(event_id=e.event_id_for(command, cls), command_id=command, correlation_id=command, account_id=account,
               occurred_at=T0 + timedelta(minutes=sequence), sequence=sequence, **fields)


def _opened(account: str, overdraft: int = 0) -> e.Event:
    return _event(e.AccountOpened, account, 1, customer_id=f"cust-{account[:8]}", currency="EUR",
                  overdraft_limit=overdraft)


def _deposit(account: str, sequence: int, amount: int, balance_after: int) -> e.Event:
    return _event(e.FundsDeposited, account, sequence, amount=amount, currency="EUR", balance_after=balance_after,
                  reference=f"dep {sequence}")


def _records(partition: int, events: list[e.Event], first_offset: int = 0) -> list[EventRecord]:
    codec = get_codec()
    return [EventRecord.decode(partition, offset, *codec.encode(event))
            for offset, event in enumerate(events, start=first_offset)]


def _history(account: str, other: str) -> list[e.Event]:
    """Opened with a 50.00 overdraft, two deposits, a withdrawal and a transfer out: balance 85.50."""
    return [_opened(account, overdraft=5000), _deposit(account, 2, 10000, 10000), _deposit(account, 3, 2550, 12550),
            _event(e.FundsWithdrawn, account, 4, amount=1000, currency="EUR", balance_after=11550, reference="atm"),
            _event(e.TransferDebited, account, 5, transfer_id="tr-1", to_account_id=other, amount=3000,
                   currency="EUR", balance_after=8550, reference="rent")]


# ---------------------------------------------------------------- stores and dumps


def run(redis_url: str, scenario: Callable[[RedisProjection, Redis], Awaitable[None]]) -> None:
    """Run a scenario with a fresh fixed-generation store and a raw client; the generation is dropped after."""
    async def main() -> None:
        async with _fresh_store(redis_url) as store, _client(redis_url) as client:
            await scenario(store, client)

    asyncio.run(main())


@asynccontextmanager
async def _client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def _fresh_store(redis_url: str) -> AsyncIterator[RedisProjection]:
    live = RedisProjection(redis_url)   # only reads REDIS_LIVE, to hand out a generation above it
    await live.open()
    try:
        target = await live.rebuild_target()
        await target.open()
        try:
            yield target
        finally:
            await _drop(live, target)
            await target.close()
    finally:
        await live.close()


async def _drop(live: RedisProjection, store: RedisProjection) -> None:
    assert store.generation is not None
    await live._drop(store.generation)


async def _keys(client: Redis, generation: int) -> list[str]:
    return sorted([k async for k in client.scan_iter(match=f"{redis_prefix(generation)}*", count=1000)])


async def _dump(client: Redis, generation: int) -> dict[str, Any]:
    """Every key of the generation, offsets included."""
    dump: dict[str, Any] = {}
    for key in await _keys(client, generation):
        kind = await client.type(key)
        dump[key] = (await client.hgetall(key) if kind == "hash"
                     else await client.zrange(key, 0, -1, withscores=True))
    return dump


async def _postings(client: Redis, generation: int, account: str) -> list[tuple[dict[str, Any], float]]:
    return [(json.loads(m), s) for m, s in
            await client.zrange(redis_postings_key(generation, account), 0, -1, withscores=True)]


def _gen(store: RedisProjection) -> int:
    assert store.generation is not None
    return store.generation


# ---------------------------------------------------------------- batches


def test_a_batch_writes_the_account_and_its_postings(redis_url: str) -> None:
    async def scenario(store: RedisProjection, client: Redis) -> None:
        account, other = uuid.uuid4().hex, uuid.uuid4().hex
        history = _history(account, other)
        stored = await store.apply(_records(0, history), {0: 0}, {0: 5})
        assert stored == {0: 5} and await store.offsets() == {0: 5}
        assert await client.hgetall(redis_account_key(_gen(store), account)) == {
            "account_id": account, "customer_id": f"cust-{account[:8]}", "currency": "EUR", "balance": "8550",
            "available_balance": "13550", "overdraft_limit": "5000", "status": "open", "version": "5",
            "transfers_out_in_flight": "1", "opened_at": history[0].occurred_at.isoformat(),
            "updated_at": history[-1].occurred_at.isoformat(), "holds": "{}"}
        postings = await _postings(client, _gen(store), account)
        assert [(p["type"], p["amount"], p["balance_after"], s) for p, s in postings] == [
            ("deposit", 10000, 10000, 2), ("deposit", 2550, 12550, 3), ("withdrawal", -1000, 11550, 4),
            ("transfer_out", -3000, 8550, 5)]
        debit = postings[-1][0]
        assert debit == {"posting_id": history[4].event_id, "account_id": account, "type": "transfer_out",
                         "amount": -3000, "currency": "EUR", "balance_after": 8550, "counterparty_account_id": other,
                         "reference": "rent", "transfer_id": "tr-1", "command_id": history[4].command_id,
                         "correlation_id": history[4].correlation_id,
                         "occurred_at": history[4].occurred_at.isoformat(), "sequence": 5, "channel": "transfer"}
        status = await store.status()
        assert status.projection == "redis" and status.generation == f"generation {_gen(store)}"
        assert status.offsets == {0: 5}

    run(redis_url, scenario)


def test_applying_a_batch_again_changes_nothing(redis_url: str) -> None:
    async def scenario(store: RedisProjection, client: Redis) -> None:
        records = _records(3, _history(uuid.uuid4().hex, uuid.uuid4().hex))
        await store.apply(records, {3: 0}, {3: 5})
        before = await _dump(client, _gen(store))
        assert await store.apply(records, {3: 0}, {3: 5}) == {3: 5}   # re-delivered: offsets skip it
        assert await _dump(client, _gen(store)) == before
        await store.reapply(records)                                  # forced through: folding skips it
        await store.reapply(records[2:4])
        assert await _dump(client, _gen(store)) == before

    run(redis_url, scenario)


def test_offset_rules_skip_rewound_partitions_and_applied_records(redis_url: str) -> None:
    async def scenario(store: RedisProjection, client: Redis) -> None:
        a, b = uuid.uuid4().hex, uuid.uuid4().hex
        await store.apply(_records(0, [_opened(a), _deposit(a, 2, 100, 100)]), {0: 0}, {0: 2})
        before = await _dump(client, _gen(store))
        # Partition 0 is stored at 2, but this batch read it from 5: it was rewound, leave it to the re-read.
        # Partition 1 goes ahead in the same batch.
        batch = _records(0, [_deposit(a, 3, 5, 105)], first_offset=5) + _records(1, [_opened(b)])
        assert await store.apply(batch, {0: 5, 1: 0}, {0: 6, 1: 1}) == {0: 2, 1: 1}
        after = await _dump(client, _gen(store))
        assert after[redis_account_key(_gen(store), a)] == before[redis_account_key(_gen(store), a)]
        assert redis_account_key(_gen(store), b) in after
        # A batch overlapping the stored offset: the record before it is skipped (if it were applied, an
        # event of an account never opened would fail), the rest is applied.
        stray = _deposit(uuid.uuid4().hex, 2, 1, 1)
        batch = _records(0, [stray, _deposit(a, 3, 5, 105)], first_offset=1)
        assert await store.apply(batch, {0: 1}, {0: 3}) == {0: 3, }
        assert (await client.hgetall(redis_account_key(_gen(store), a)))["balance"] == "105"
        # Offsets never move backwards.
        assert await store.apply([], {0: 0}, {0: 1}) == {0: 3}
        assert await store.offsets() == {0: 3, 1: 1}

    run(redis_url, scenario)


def test_only_the_most_recent_postings_are_kept(redis_url: str) -> None:
    async def scenario(store: RedisProjection, client: Redis) -> None:
        account = uuid.uuid4().hex
        events = [_opened(account)] + [_deposit(account, s, 1, s - 1) for s in range(2, 62)]
        records = _records(0, events)
        await store.apply(records[:30], {0: 0}, {0: 30})   # over two batches: trimming works across them
        await store.apply(records[30:], {0: 30}, {0: 61})
        postings = await _postings(client, _gen(store), account)
        assert len(postings) == REDIS_RECENT_POSTINGS
        assert [s for _, s in postings] == list(range(62 - REDIS_RECENT_POSTINGS, 62))
        assert (await client.hgetall(redis_account_key(_gen(store), account)))["version"] == "61"
        await store.reapply(records[1:5])                  # old postings re-applied are trimmed again
        assert await _postings(client, _gen(store), account) == postings

    run(redis_url, scenario)


def test_an_event_of_an_account_never_opened_cannot_be_applied(redis_url: str) -> None:
    async def scenario(store: RedisProjection, client: Redis) -> None:
        account = uuid.uuid4().hex
        with pytest.raises(ApplyError, match="has not seen opened"):
            await store.apply(_records(0, [_deposit(account, 2, 100, 100)]), {0: 0}, {0: 1})
        with pytest.raises(ApplyError):
            await store.reapply(_records(0, [_deposit(account, 2, 100, 100)]))
        assert await _keys(client, _gen(store)) == []     # nothing written, offsets not moved

    run(redis_url, scenario)


# ---------------------------------------------------------------- parked events


def test_parked_events_round_trip(redis_url: str) -> None:
    async def scenario(store: RedisProjection, client: Redis) -> None:
        partition = 10_000 + uuid.uuid4().int % 1_000_000   # the parking lot is shared: use our own partitions
        good = _records(partition + 1, [_opened(uuid.uuid4().hex)], first_offset=7)[0]
        junk = EventRecord.decode(partition, 42, b"\x00junk", [("schema", b"Nope"), ("x", b"\xff\x00")])
        await store.park([Parked.of(good, "could not apply"), Parked.of(junk, f"cannot decode: {junk.error}")])

        async def ours() -> list[Parked]:
            return [p for p in await store.parked() if p.partition in (partition, partition + 1)]

        first = await ours()
        assert [(p.partition, p.offset, p.attempts) for p in first] == [(partition, 42, 1), (partition + 1, 7, 1)]
        assert first[0].value == b"\x00junk" and first[0].headers == [("schema", b"Nope"), ("x", b"\xff\x00")]
        assert first[1].record().event == good.event and first[1].reason == "could not apply"
        assert first[1].schema_name == "AccountOpened" and first[1].fingerprint == good.fingerprint
        assert all(p.parked_at is not None and p.parked_at.tzinfo is not None for p in first)
        assert (await store.status()).parked >= 2
        first[1].reason = "still failing"
        await store.park([first[1]])
        again = await ours()
        assert (again[1].attempts, again[1].reason, again[1].parked_at) == (2, "still failing", first[1].parked_at)
        await store.unpark(again)
        assert await ours() == []

    run(redis_url, scenario)


# ---------------------------------------------------------------- generations


def _private_live_key() -> str:
    return f"test:rm:live:{uuid.uuid4().hex}"


def test_rebuild_target_and_swap_in_switch_the_live_generation(redis_url: str) -> None:
    async def main() -> None:
        live_key = _private_live_key()
        async with _client(redis_url) as client, _fresh_store(redis_url) as first:
            real_live = await client.get(REDIS_LIVE)
            await client.set(live_key, _gen(first))
            live = RedisProjection(redis_url, live_key=live_key)
            await live.open()
            try:
                account = uuid.uuid4().hex
                records = _records(0, _history(account, uuid.uuid4().hex))
                await live.apply(records[:3], {0: 0}, {0: 3})          # follows the pointer into `first`
                assert await first.offsets() == {0: 3}
                assert (await live.status()).generation == f"generation {_gen(first)}"
                target = await live.rebuild_target()
                await target.open()
                assert _gen(target) > _gen(first) and await _keys(client, _gen(target)) == []
                await target.apply(records, {0: 0}, {0: 5})
                built = await _dump(client, _gen(target))
                assert await live.swap_in(target) == f"generation {_gen(target)}"
                await target.close()   # shares the live store's client: must leave it open
                assert int(await client.get(live_key)) == _gen(target)
                assert await _keys(client, _gen(first)) == []                  # the old generation is gone
                assert await _dump(client, _gen(target)) == built
                assert await live.offsets() == {0: 5}
                assert await live.apply(records, {0: 0}, {0: 5}) == {0: 5}     # live now writes the new one
                assert await _dump(client, _gen(target)) == built
                await live._drop(_gen(target))
            finally:
                await live.close()
                await client.delete(live_key)
            assert await client.get(REDIS_LIVE) == real_live                   # the real model was not touched

    asyncio.run(main())


def test_a_batch_racing_a_swap_starts_over_in_the_new_generation(redis_url: str) -> None:
    async def main() -> None:
        live_key = _private_live_key()
        async with (_client(redis_url) as client, _fresh_store(redis_url) as old,
                    _fresh_store(redis_url) as new):
            await client.set(live_key, _gen(old))
            live = RedisProjection(redis_url, live_key=live_key)
            await live.open()
            read = live._read
            reads: list[int] = []

            async def read_then_swap(generation: int, account_ids: list[str]) -> Any:
                reads.append(generation)
                result = await read(generation, account_ids)
                if len(reads) == 1:   # a rebuild swaps in between the batch's reads and its EXEC
                    await client.set(live_key, _gen(new))
                return result

            live._read = read_then_swap  # type: ignore[method-assign]
            try:
                account = uuid.uuid4().hex
                assert await live.apply(_records(0, [_opened(account)]), {0: 0}, {0: 1}) == {0: 1}
                assert reads == [_gen(old), _gen(new)]
                assert await _keys(client, _gen(old)) == []
                assert redis_account_key(_gen(new), account) in await _keys(client, _gen(new))
                assert await client.hgetall(redis_offsets_key(_gen(new))) == {"0": "1"}
            finally:
                await live.close()
                await client.delete(live_key)

    asyncio.run(main())
