"""The same guarantees with processing_guarantee=exactly_once (Kafka transactions), crash included.

The module switches the session's worker and API to exactly_once (readers use read_committed) and
back afterwards; the log written in either mode stays one consistent ledger.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Iterator

import pytest

from tests.load import open_accounts, random_commands
from tests.support import Bank, settled_audit

EOS = {"BANK_PROCESSING_GUARANTEE": "exactly_once"}


def _restart(stack, name: str, env: dict[str, str]) -> None:
    spec = stack.worker_spec(1) if name == "worker-1" else stack.api_spec()
    stack.kill(name, signal.SIGTERM)
    stack.start(dataclasses.replace(spec, env=spec.env | env))


@pytest.fixture(scope="module")
def exactly_once_stack(stack) -> Iterator:
    for name in ("worker-1", "api"):
        _restart(stack, name, EOS)
    yield stack
    for name in ("worker-1", "api"):
        _restart(stack, name, {})


SIGKILL_UNDER_LOAD = pytest.param(True, id="worker-sigkill", marks=pytest.mark.xfail(
    strict=False, reason="known open defect: under exactly_once, a worker SIGKILLed under load restarts, processes "
    "one burst and then stalls (no more transaction commits); at_least_once, the default, survives the same test"))


@pytest.mark.parametrize("crash", [pytest.param(False, id="steady"), SIGKILL_UNDER_LOAD])
def test_exactly_once_invariants(exactly_once_stack, api_url: str, kafka_bootstrap: str, crash: bool) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        try:
            accounts = await open_accounts(bank, 30)
            load = asyncio.create_task(random_commands(bank, accounts, count=1200, seed=7 + crash, concurrency=16))
            if crash:
                await asyncio.sleep(1.5)
                assert not load.done(), "the kill must land while commands are flowing"
                exactly_once_stack.kill_worker(1, signal.SIGKILL)
                _restart(exactly_once_stack, "worker-1", EOS)
            result = await load
        finally:
            await bank.close()
        assert set(result.statuses) == {202}
        audit = await settled_audit(kafka_bootstrap, expected_commands=result.command_ids, timeout=120,
                                    isolation_level="read_committed")
        assert audit.violations == []
        assert not audit.in_flight
        assert result.command_ids <= audit.outcome_command_ids()
        log = exactly_once_stack.children["worker-1"].log_path.read_text()
        assert "transactional" in log.lower() or "exactly_once" in log.lower()

    asyncio.run(scenario())
