"""Two writers on one partition of the event log: after a rebalance, a worker that has not heard yet that its
partition moved (paused past its session, say) still decides, while the partition's new owner already has. The
ledger folds what another writer put on its partition's log before it decides a batch, so a command decided
there is recognised here and posted once (bank chaos found 341 event ids twice after a pause and a kill -9)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from core import commands as c
from core import ledger
from core.topics import LEDGER_COMMANDS, LEDGER_EVENTS
from infra.kafka import partition_for, read_topic
from infra.producer import create_producer
from schemas.codec import get_codec
from tests.support import Bank

pytestmark = pytest.mark.usefixtures("stack")
PARTITIONS = 6


async def _events(bootstrap: str, account: str) -> list[Any]:
    codec = get_codec()
    snapshot = await read_topic(bootstrap, LEDGER_EVENTS, partitions=[partition_for(account.encode(), PARTITIONS)])
    return [codec.decode(r.value, r.headers) for r in snapshot.records if bytes(r.key or b"") == account.encode()]


async def _account_state(bootstrap: str, account: str) -> ledger.AccountState | None:
    state = None
    for event in await _events(bootstrap, account):
        state = ledger.apply(state, event)
    return state


def test_a_command_another_writer_decided_is_not_posted_again(api_url: str, kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        try:
            account = await bank.open()
            assert (await bank.deposit(account, "10.00")).status_code == 200   # the ledger has folded the account
            state = await _account_state(kafka_bootstrap, account)
            assert state is not None and state.balance == 1000
            command_id = str(uuid.uuid4())
            command = c.Deposit(command_id=command_id, account_id=account, issued_at=datetime.now(UTC),
                                correlation_id=command_id, amount=500, currency="EUR")
            codec, producer = get_codec(), create_producer(kafka_bootstrap)
            await producer.start()
            try:
                # The other writer decides the command and puts its events on the account's partition...
                for event in ledger.decide(state, command, datetime.now(UTC)):
                    value, headers = codec.encode(event)
                    await producer.send_and_wait(LEDGER_EVENTS, value, key=account.encode(), headers=headers)
                # ...and the same command reaches this ledger too (redelivered to the partition's old owner).
                value, headers = codec.encode(command)
                await producer.send_and_wait(LEDGER_COMMANDS, value, key=account.encode(), headers=headers)
            finally:
                await producer.stop()
            assert (await bank.deposit(account, "1.00")).status_code == 200   # after it, in the partition's order
            deposited = [event for event in await _events(kafka_bootstrap, account)
                         if event.command_id == command_id]
            assert len(deposited) == 1, deposited
            view = await bank.account(account)
            assert view["balance"] == "16.00", view
        finally:
            await bank.close()

    asyncio.run(scenario())

