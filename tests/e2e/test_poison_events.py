"""Bad records on the ledger's event log: every reader of it goes on.

On a stack of its own: the records written here stay in the log for ever, and the rest of the suite reads the
whole log (tests/support/__init__.py `read_log`) expecting only the ledger's events.

The log gets a record without a schema header, a command, an audit record, a TransferDebited whose body is cut
short, and a FundsDeposited out of sequence (it does not fold). Then:
- the transfer saga dead-letters what it cannot take (bank.ledger.events.dlq) and still drives transfers;
- the ledger, restarted, catches its tables up through them and still posts;
- the API's ledger view survives them (`?wait=true` still answers) and /readyz stays ready;
- the read models park them and still reflect later postings.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from cli.devstack import Stack, free_port
from cli.migrate import migrate_sync
from cli.topics import apply_topics_sync
from core import commands as c
from core import events as e
from core.audit import AuditRecorded
from core.settings import Settings
from core.topics import LEDGER_EVENTS, LEDGER_EVENTS_DLQ
from infra.topics import load_registry
from schemas.codec import get_codec
from streams.projections import create_store
from tests.conftest import UNLIMITED
from tests.e2e.test_standing_orders import balance_reaches
from tests.support import Bank, Identity, create_staff
from tests.e2e.test_dead_letters import dead_letters


@pytest.fixture(scope="module")
def own_stack(bank_home_factory: Any) -> Iterator[tuple[Stack, Identity]]:
    """Servers, one ledger worker, one projection worker and the API, on ports and a home of their own."""
    settings = Settings(home=bank_home_factory(), kafka_port=free_port(), pg_port=free_port(), redis_port=free_port(),
                        mongo_port=free_port(), api_port=free_port(), worker_web_port=free_port() - 1,
                        lag_exporter_port=free_port(), kafka_bootstrap=None, pg_dsn=None, redis_url=None,
                        mongo_url=None, command_timeout=timedelta(seconds=60), rate_limit_per_ip=UNLIMITED,
                        rate_limit_per_user=UNLIMITED, auth_rate_limit_per_ip=UNLIMITED)
    stack = Stack(settings)
    try:
        stack.start_infra()
        assert apply_topics_sync(settings.kafka, load_registry(settings.topics_file, settings.topic_replication)).ok
        migrate_sync(settings.pg, settings.migrations_dir)
        stack.start_worker(1)
        stack.start_projector(1)
        stack.start_api()
        teller = asyncio.run(create_staff(settings.pg, tag="-poison", roles=("teller",)))["teller"]
        yield stack, teller
    finally:
        stack.stop()


def _poison(account: str) -> list[tuple[bytes | None, list[tuple[str, bytes]]]]:
    codec = get_codec()
    now = datetime.now(UTC)
    marker = str(uuid.uuid4())
    ids = {"command_id": marker, "correlation_id": marker, "account_id": account}
    command = c.Deposit(**ids, issued_at=now, amount=5000, currency="EUR")
    audit = AuditRecorded(event_id=marker, occurred_at=now, action="login", outcome="success", reason=None,
                          actor_user_id=None, actor_role=None, actor_session_id=None, subject_user_id=None, ip=None,
                          user_agent=None, trace_id=None)
    debit = e.TransferDebited(**ids, event_id=marker, occurred_at=now, sequence=10**6, transfer_id=marker,
                              to_account_id="nowhere", amount=5000, currency="EUR", balance_after=0)
    gap = e.FundsDeposited(**ids, event_id=str(uuid.uuid4()), occurred_at=now, sequence=10**6, amount=5000,
                           currency="EUR", balance_after=5000)
    debit_value, debit_headers = codec.encode(debit)
    return [(b"\x00not an event " + marker.encode(), []), codec.encode(command), codec.encode(audit),
            (debit_value[:-4], debit_headers), codec.encode(gap)]


async def _posted(bank: Bank, response: httpx.Response) -> None:
    """The command was accepted: at once, or (202: the restarted worker was still catching up when `?wait`
    ran out on a loaded machine) once the ledger decided it."""
    assert response.status_code in (200, 202), response.text
    command_id = response.json()["command_id"]
    deadline = asyncio.get_running_loop().time() + 120
    while (status := (await bank.command(command_id))["status"]) == "pending":
        assert asyncio.get_running_loop().time() < deadline, f"{command_id} was never decided"
        await asyncio.sleep(0.2)
    assert status == "accepted", status


def test_bad_records_on_the_event_log_stop_no_reader(own_stack: tuple[Stack, Identity]) -> None:
    stack, teller = own_stack
    settings = stack.settings

    async def scenario() -> None:
        bank = Bank(stack.api_url, identity=teller, pg_dsn=settings.pg)
        account, other = await bank.open(), await bank.open()
        assert (await bank.deposit(account, "1.00")).status_code == 200
        poison = _poison(account)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka)
        await producer.start()
        try:
            for value, headers in poison:
                await producer.send_and_wait(LEDGER_EVENTS, value, key=account.encode(), headers=headers)
        finally:
            await producer.stop()
        # A restarted ledger catches its partition up from the log, through the bad records, before posting.
        stack.kill_worker(1)
        stack.start_worker(1)
        await _posted(bank, await bank.deposit(account, "2.00"))      # the ledger and the API's view went on
        await _posted(bank, await bank.transfer(account, other, "0.50"))   # and the saga
        await balance_reaches(bank, account, "2.50")                 # the read model went on too
        await balance_reaches(bank, other, "0.50")
        await bank.close()

        # One per bad record (at least once: the restart may have dead-lettered some of them again), all but the
        # out-of-sequence deposit, a ledger event the saga has nothing to do with.
        letters = await dead_letters(settings.kafka, LEDGER_EVENTS_DLQ, account.encode(), 4)
        by_source = {dict(letter.headers)["dlq.source"]: letter for letter in letters}
        errors = sorted(dict(letter.headers)["dlq.error"].decode().split(":")[0] for letter in by_source.values())
        assert errors == ["DecodeError", "DecodeError", "UnexpectedRecordType", "UnexpectedRecordType"], errors
        assert sorted(letter.value for letter in by_source.values()) == sorted(value for value, _ in poison[:4])

        ready = httpx.get(f"{stack.api_url}/readyz", timeout=30)
        assert ready.json()["checks"]["ledger_view"]["ok"], ready.text
        for name in ("postgres", "redis", "mongo"):   # each read model parked the four it cannot decode
            store = create_store(name, settings)
            await store.open()
            try:
                reasons = [parked.reason for parked in await store.parked()]
            finally:
                await store.close()
            # (and the out-of-sequence deposit where the model folds account state: not MongoDB's audit log)
            assert sum(reason.startswith("cannot decode") for reason in reasons) == 4, (name, reasons)
            assert sum("does not belong on this topic" in reason for reason in reasons) == 2, (name, reasons)

    asyncio.run(scenario())
