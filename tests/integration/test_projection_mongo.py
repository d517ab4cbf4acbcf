"""The MongoDB projection store against the real server: documents, idempotence, offsets, parking, rebuilds.

Each test works in a database of its own (and, where it does not test the live switch, a fixed generation), so
it never touches the model a running stack's projector writes.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import Int64
from pymongo import AsyncMongoClient

from core import events as e
from core.readmodel import MONGO_META, mongo_collection
from core.topics import LEDGER_EVENTS
from schemas.codec import get_codec
from streams.projections.base import ApplyError, EventRecord, Parked
from streams.projections.mongo_store import MongoProjection

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KINDS = ("audit", "timeline", "accounts", "offsets")


def _generation() -> int:
    return 900000 + random.randrange(90000)


def _record(partition: int, offset: int, event: e.Event) -> EventRecord:
    value, headers = get_codec().encode(event)
    return EventRecord.decode(partition, offset, value, headers)


def _base(account: str, n: int, kind: type[e.Event], sequence: int) -> dict[str, Any]:
    command = f"cmd-{account}-{n}"
    return dict(event_id=e.event_id_for(command, kind), command_id=command, correlation_id=command,
                account_id=account, occurred_at=T0 + timedelta(seconds=n), sequence=sequence)


def _history(account: str, customer: str, to: str) -> list[e.Event]:
    """An account's life: opened, a deposit, a withdrawal, a transfer out, a rejection, the transfer done;
    plus a rejected deposit to an account that was never opened."""
    return [
        e.AccountOpened(**_base(account, 0, e.AccountOpened, 1), customer_id=customer, currency="EUR",
                        overdraft_limit=10000),
        e.FundsDeposited(**_base(account, 1, e.FundsDeposited, 2), amount=1250, currency="EUR", balance_after=1250,
                         reference="salary"),
        e.FundsWithdrawn(**_base(account, 2, e.FundsWithdrawn, 3), amount=250, currency="EUR", balance_after=1000),
        e.TransferDebited(**_base(account, 3, e.TransferDebited, 4), transfer_id="t-1", to_account_id=to,
                          amount=500, currency="EUR", balance_after=500),
        e.CommandRejected(**_base(account, 4, e.CommandRejected, 4), command_type="Withdraw",
                          reason="insufficient_funds", detail="balance 5.00 EUR"),
        e.TransferCompleted(**_base(account, 5, e.TransferCompleted, 5), transfer_id="t-1", to_account_id=to),
        e.CommandRejected(**_base("nobody", 6, e.CommandRejected, 0), command_type="Deposit",
                          reason="unknown_account", detail="account nobody does not exist"),
    ]


def _batch(partition: int = 0) -> list[EventRecord]:
    return [_record(partition, offset, ev) for offset, ev in enumerate(_history("acct-a", "cust-1", "acct-b"))]


async def _dump(client: AsyncMongoClient, database: str, generation: int) -> dict[str, list[dict[str, Any]]]:
    db = client[database]
    return {kind: await db[mongo_collection(kind, generation)].find({}).sort("_id", 1).to_list() for kind in KINDS}


def _run(mongo_url: str, scenario: Callable[[MongoProjection, AsyncMongoClient, str], Awaitable[None]],
         generation: int | None = None) -> None:
    """Run `scenario(store, client, database)` on a fresh database, dropped afterwards."""
    async def main() -> None:
        database = f"test_projection_{uuid.uuid4().hex[:8]}"
        client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
        store = MongoProjection(mongo_url, generation=generation, database=database)
        await store.open()
        try:
            await scenario(store, client, database)
        finally:
            await store.close()
            await client.drop_database(database)
            await client.close()

    asyncio.run(main())


def test_a_batch_becomes_audit_timeline_and_accounts(mongo_url: str) -> None:
    generation = _generation()

    async def scenario(store: MongoProjection, client: AsyncMongoClient, database: str) -> None:
        records = _batch()
        assert await store.apply(records, {0: 0}, {0: 7}) == {0: 7}
        assert await store.offsets() == {0: 7}
        dump = await _dump(client, database, generation)

        audit = {d["_id"]: d for d in dump["audit"]}
        assert set(audit) == {r.event.event_id for r in records}
        deposit_record = records[1]
        deposit = audit[deposit_record.event.event_id]
        assert (deposit["topic"], deposit["partition"], deposit["offset"]) == (LEDGER_EVENTS, 0, 1)
        assert deposit["schema"] == {"name": "FundsDeposited", "fingerprint": deposit_record.fingerprint}
        assert deposit_record.fingerprint
        assert deposit["customer_id"] == "cust-1" and deposit["type"] == "FundsDeposited"
        assert deposit["occurred_at"] == T0 + timedelta(seconds=1) and deposit["sequence"] == 2
        assert deposit["data"]["amount"] == 1250 and isinstance(deposit["data"]["amount"], Int64)
        assert deposit["data"]["amount_text"] == "12.50" and deposit["data"]["balance_after_text"] == "12.50"
        assert deposit["data"]["reference"] == "salary"
        assert "recorded_at" not in deposit
        opened = audit[records[0].event.event_id]
        assert opened["data"]["overdraft_limit_text"] == "100.00"
        assert audit[records[6].event.event_id]["customer_id"] is None   # rejection for an unknown account

        timeline = dump["timeline"]
        # Everything of the customer except the internal TransferCompleted; nothing for the unknown account.
        assert {t["type"] for t in timeline} == {"AccountOpened", "FundsDeposited", "FundsWithdrawn",
                                                 "TransferDebited", "CommandRejected"}
        assert all(t["customer_id"] == "cust-1" and t["currency"] == "EUR" for t in timeline)
        by_type = {t["type"]: t for t in timeline}
        assert by_type["FundsDeposited"]["summary"] == "Deposited 12.50 EUR"
        assert by_type["FundsWithdrawn"]["amount"] == -250
        assert by_type["TransferDebited"]["summary"] == "Sent 5.00 EUR to acct-b"
        assert by_type["CommandRejected"]["summary"] == "Withdrawal rejected: insufficient_funds"
        assert by_type["CommandRejected"]["amount"] is None
        assert by_type["AccountOpened"]["summary"].startswith("Account opened (EUR")

        assert dump["accounts"] == [{"_id": "acct-a", "customer_id": "cust-1", "currency": "EUR"}]
        names = await client[database][mongo_collection("audit", generation)].index_information()
        assert len(names) == 5  # _id plus the four query indexes

    _run(mongo_url, scenario, generation)


def test_applying_a_batch_again_changes_nothing(mongo_url: str) -> None:
    generation = _generation()

    async def scenario(store: MongoProjection, client: AsyncMongoClient, database: str) -> None:
        records = _batch()
        await store.apply(records, {0: 0}, {0: 7})
        before = await _dump(client, database, generation)
        # Re-delivered from the start (the stored offset is ahead: those records are skipped) ...
        assert await store.apply(records, {0: 0}, {0: 7}) == {0: 7}
        # ... and forced through regardless of offsets, as a retry of parked events does.
        await store.reapply(records)
        assert await store.apply([], {0: 7}, {0: 7}) == {0: 7}
        assert await _dump(client, database, generation) == before

    _run(mongo_url, scenario, generation)


def test_offsets_rewound_or_moved_meanwhile_are_left_alone(mongo_url: str) -> None:
    generation = _generation()

    async def scenario(store: MongoProjection, client: AsyncMongoClient, database: str) -> None:
        records = _batch()
        await store.apply(records[:3], {0: 0}, {0: 3})
        before = await _dump(client, database, generation)
        # Stored 3, but this batch was read from 5: the offsets were rewound, the partition is re-read.
        later = _batch()[5:]
        assert await store.apply(later, {0: 5}, {0: 7}) == {0: 3}
        # A partition never stored, read from 4, is likewise left alone; one read from 0 moves.
        other = _batch(partition=1)
        assert await store.apply(other[:2], {1: 4, 2: 0}, {1: 6, 2: 2}) == {1: 0, 2: 2}
        after = await _dump(client, database, generation)
        assert after["audit"] == before["audit"] and after["timeline"] == before["timeline"]

        # An operator rewinds while a batch is being written: the rewind stands.
        offsets = client[database][mongo_collection("offsets", generation)]
        write = store._write

        async def write_then_rewind(gen: int, todo: list[EventRecord]) -> None:
            await write(gen, todo)
            await offsets.update_one({"_id": 0}, {"$set": {"next_offset": 1}})

        store._write = write_then_rewind  # type: ignore[method-assign]
        assert await store.apply(records[3:], {0: 3}, {0: 7}) == {0: 1}
        assert await store.offsets() == {0: 1, 2: 2}

    _run(mongo_url, scenario, generation)


def test_an_event_of_an_account_never_opened_is_an_apply_error(mongo_url: str) -> None:
    generation = _generation()

    async def scenario(store: MongoProjection, client: AsyncMongoClient, database: str) -> None:
        await store.apply(_batch(), {0: 0}, {0: 7})
        before = await _dump(client, database, generation)
        orphan = e.FundsDeposited(**_base("ghost", 1, e.FundsDeposited, 2), amount=100, currency="EUR",
                                  balance_after=100)
        good = e.AccountOpened(**_base("acct-c", 0, e.AccountOpened, 1), customer_id="cust-2", currency="JPY",
                               overdraft_limit=0)
        with pytest.raises(ApplyError, match="ghost"):
            await store.apply([_record(3, 0, good), _record(3, 1, orphan)], {3: 0}, {3: 2})
        # Nothing of the failed batch was written, and its offsets did not move.
        assert await _dump(client, database, generation) == before
        # A refused credit for an unknown account is fine: it is recorded without a customer.
        refused = e.TransferCreditFailed(**_base("ghost", 2, e.TransferCreditFailed, 0), transfer_id="t-9",
                                         from_account_id="acct-a", amount=100, currency="EUR",
                                         reason="unknown_account")
        assert await store.apply([_record(3, 0, refused)], {3: 0}, {3: 1}) == {3: 1}
        # A document the server cannot take is the event's problem, not a transient one.
        huge = e.FundsDeposited(**_base("acct-a", 9, e.FundsDeposited, 5), amount=1, currency="EUR",
                                balance_after=501, reference="x" * (17 * 1024 * 1024))
        with pytest.raises(ApplyError, match="(?i)too ?large|larger"):
            await store.reapply([_record(0, 9, huge)])

    _run(mongo_url, scenario, generation)


def test_park_parked_unpark_round_trip(mongo_url: str) -> None:
    async def scenario(store: MongoProjection, client: AsyncMongoClient, database: str) -> None:
        good = _batch()[1]
        garbage = EventRecord.decode(2, 40, b"\x00\xff", [("bank.schema.fingerprint", b"nope")])
        assert garbage.event is None
        await store.park([Parked.of(garbage, f"cannot decode: {garbage.error}"), Parked.of(good, "not opened")])
        parked = await store.parked()
        assert [(p.partition, p.offset) for p in parked] == [(0, 1), (2, 40)]
        first = parked[0]
        assert (first.reason, first.schema_name, first.fingerprint) == ("not opened", "FundsDeposited",
                                                                        good.fingerprint)
        assert first.value == good.value and first.headers == good.headers and first.attempts == 1
        assert first.record().event == good.event
        assert parked[1].value == b"\x00\xff" and parked[1].headers == [("bank.schema.fingerprint", b"nope")]
        assert first.parked_at is not None

        await store.park([Parked.of(good, "still not opened")])
        again = (await store.parked())[0]
        assert (again.reason, again.attempts, again.parked_at) == ("still not opened", 2, first.parked_at)

        await store.record_error("boom")
        status = await store.status()
        assert (status.projection, status.parked, status.last_error) == ("mongo", 2, "boom")
        assert status.last_error_at is not None and status.generation == "generation 1"
        await store.record_error(None)
        assert (await store.status()).last_error is None

        await store.unpark(parked)
        assert await store.parked() == []

    _run(mongo_url, scenario)


def test_rebuild_and_swap_switch_the_live_generation(mongo_url: str) -> None:
    async def scenario(live: MongoProjection, client: AsyncMongoClient, database: str) -> None:
        db = client[database]
        records = _batch()
        assert await live.apply(records, {0: 0}, {0: 7}) == {0: 7}
        old = (await db[MONGO_META].find_one({"_id": "mongo"}))["live"]
        assert old == 1
        before = await _dump(client, database, old)

        target = await live.rebuild_target()
        await target.open()
        new = int((await target.status()).generation.split()[-1])
        assert new > old
        assert await target.offsets() == {}
        for start in (0, 4):   # filled in two batches, from offset 0
            await target.apply(records[start:start + 4], {0: start}, {0: min(start + 4, 7)})
        await target.close()   # shares the live store's client: must not close it

        assert await live.swap_in(target) == f"generation {new}"
        assert (await db[MONGO_META].find_one({"_id": "mongo"}))["live"] == new
        names = set(await db.list_collection_names())
        assert not {mongo_collection(kind, old) for kind in KINDS} & names
        assert {mongo_collection(kind, new) for kind in KINDS} <= names
        # The rebuilt generation holds the very same documents; the live store now follows it.
        assert await _dump(client, database, new) == before
        assert await live.offsets() == {0: 7}
        assert (await live.status()).generation == f"generation {new}"
        # A second rebuild gets a generation never used before.
        again = await live.rebuild_target()
        assert (await again.status()).generation != f"generation {new}"
        assert int((await again.status()).generation.split()[-1]) > new

    _run(mongo_url, scenario)
