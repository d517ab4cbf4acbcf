"""`bank status`: one screen that says what runs, how far behind each consumer is, and what is stuck."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from cli.devstack import Stack
from cli.status import gather, healthy
from core.settings import PROJECT_ROOT
from tests.support.readmodels import wait_caught_up
from tests.support import Bank, settled_audit

pytestmark = pytest.mark.usefixtures("stack")


def test_status_summarises_the_running_platform(stack: Stack, api_url: str, kafka_bootstrap: str, pg_dsn: str,
                                                redis_url: str, mongo_url: str) -> None:
    async def transfer() -> None:
        bank = Bank(api_url)
        try:
            a, b = await bank.open(), await bank.open()
            await bank.deposit(a, "5.00")
            await bank.transfer(a, b, "2.00")
        finally:
            await bank.close()

    asyncio.run(transfer())
    asyncio.run(settled_audit(kafka_bootstrap))                       # the saga completed
    asyncio.run(wait_caught_up(kafka_bootstrap, pg_dsn, redis_url, mongo_url))
    status = asyncio.run(gather(stack.settings))
    assert healthy(status), status
    assert {"api", "worker-1", "projector-1", "lag-exporter", "schema-registry"} <= set(status.services)
    assert status.topics["bank.ledger.events"][0] == 6 and status.topics["bank.ledger.events"][1] > 0
    assert {r.group for r in status.lag} >= {"bankstream-ledger-workers", "bankstream-projection-postgres"}
    assert status.sagas_in_flight == 0          # every transfer settled (wait=true)
    assert status.parked == {"postgres": 0, "redis": 0, "mongo": 0}
    assert status.rule_set.split()[0]  # a version: published, or the rules file's before any publish
    assert status.rule_set != "unknown" and not [p for p in status.problems if p.startswith("rule set")]
    shown = subprocess.run([sys.executable, "-m", "cli.main", "status"], cwd=PROJECT_ROOT, text=True,
                           env=dict(os.environ) | {"COLUMNS": "160"}, capture_output=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    for text in ("services", "consumer lag", "bank.ledger.events", "transfers in flight", "parked events (mongo)",
                 "live fraud rule set"):
        assert text in shown.stdout, text


def test_status_fails_when_a_worker_is_down(stack: Stack) -> None:
    stack.kill("projector-1")
    try:
        status = asyncio.run(gather(stack.settings))
        assert not healthy(status) and status.services["projector-1"][1] is False
    finally:
        stack.start_projector(1)
