"""The same guarantees with processing_guarantee=exactly_once (Kafka transactions), crash included.

The module runs its own broker, worker and API in exactly_once mode; readers use read_committed.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import timedelta

import pytest

from cli.devstack import Stack, free_port
from cli.topics import apply_topics_sync
from core.settings import Settings
from infra.topics import load_registry
from tests.support.load import bounded, open_accounts, random_commands
from tests.support import Bank, settled_audit

@pytest.fixture(scope="module")
def exactly_once_stack(bank_home_factory, pg_dsn: str, redis_url: str, mongo_url: str) -> Iterator[Stack]:
    """A stack of its own: a fresh broker whose log only ever sees exactly_once workers (PostgreSQL,
    Redis and MongoDB are the session's)."""
    settings = Settings(home=bank_home_factory(), kafka_bootstrap=None, kafka_port=free_port(), api_port=free_port(),
                        worker_web_port=free_port() - 1, pg_dsn=pg_dsn, redis_url=redis_url, mongo_url=mongo_url,
                        processing_guarantee="exactly_once", command_timeout=timedelta(seconds=60))
    stack = Stack(settings)
    try:
        stack.start_infra()
        assert apply_topics_sync(settings.kafka, load_registry(settings.topics_file, settings.topic_replication)).ok
        stack.start_workers()
        stack.start_api()
        yield stack
    finally:
        stack.stop()


# Slow: it waits out the whole settle timeout before failing (over two minutes); the defect itself is proven in
# seconds by test_broker_contract.py's test_defect5_*, so CI leaves this one to on-demand runs.
SIGKILL_UNDER_LOAD = pytest.param(True, id="worker-sigkill", marks=[pytest.mark.slow, pytest.mark.xfail(
    strict=False, reason="known open defect: after a SIGKILL under load the embedded broker lists aborted "
    "transactions that ended before a read_committed fetch (broker defect 5 in test_broker_contract.py), so "
    "aiokafka silently skips the restarted producer's later batches and the saga stalls; at_least_once, the "
    "default, survives the same test")])


@pytest.mark.parametrize("crash", [pytest.param(False, id="steady"), SIGKILL_UNDER_LOAD])
def test_exactly_once_invariants(exactly_once_stack: Stack, crash: bool) -> None:
    async def scenario() -> None:
        bank = Bank(exactly_once_stack.api_url)
        try:
            accounts = await open_accounts(bank, 30)
            load = asyncio.create_task(random_commands(bank, accounts, count=bounded(1200), seed=7 + crash, concurrency=16))
            if crash:
                await asyncio.sleep(1.5)
                assert not load.done(), "the kill must land while commands are flowing"
                exactly_once_stack.kill_worker(1, signal.SIGKILL)
                exactly_once_stack.start_worker(1)
            result = await load
        finally:
            await bank.close()
        assert set(result.statuses) == {202}
        audit = await settled_audit(exactly_once_stack.settings.kafka, expected_commands=result.command_ids,
                                    timeout=120)
        assert audit.violations == []
        assert not audit.in_flight
        assert result.command_ids <= audit.outcome_command_ids()
        log = exactly_once_stack.children["worker-1"].log_path.read_text()
        # the ledger's batches really were transactions
        assert f"transactional producer {exactly_once_stack.settings.app_id}-ledger-" in log

    asyncio.run(scenario())
