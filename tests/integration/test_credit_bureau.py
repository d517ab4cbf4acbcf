"""The credit bureau simulator as the dev stack runs it (cli/devstack.py `start_bureau`: its own process, the API key
generated under the home), reached by the platform's adapter over real HTTP: a report, an outage while the process
is down, and the subjects' files kept across a restart."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from cli.devstack import Stack, free_port
from core.settings import Settings
from infra.credit_bureau import BureauReport, BureauUnavailable, credit_bureau_from

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bureau_stack(bank_home_factory: Callable[[], Path]) -> Iterator[Stack]:
    stack = Stack(Settings(home=bank_home_factory(), credit_bureau_port=free_port(), credit_bureau_url=None,
                           credit_bureau_api_key=None))
    try:
        yield stack
    finally:
        stack.stop()


def _bank_settings(stack: Stack) -> Settings:
    """What a bank process sees: the key comes in BANK_CREDIT_BUREAU_API_KEY (Stack.child_env)."""
    key = stack.child_env()["BANK_CREDIT_BUREAU_API_KEY"]
    return stack.settings.model_copy(update={"credit_bureau_api_key": SecretStr(key)})


async def _report(settings: Settings, subject_id: str) -> BureauReport:
    bureau = credit_bureau_from(settings)
    try:
        return await bureau.report(subject_id)
    finally:
        await bureau.close()


def test_the_dev_stack_runs_the_bureau_and_the_adapter_reaches_it(bureau_stack: Stack) -> None:
    assert bureau_stack.start_bureau() == "bureau"
    key_file = bureau_stack.home / "secrets" / "credit-bureau-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    settings = _bank_settings(bureau_stack)
    base = settings.credit_bureau
    httpx.put(f"{base}/sandbox/subjects/cust-7", json={"score": 455, "open_credit_lines": 4, "defaults": 1},
              timeout=10).raise_for_status()
    report = asyncio.run(_report(settings, "cust-7"))
    assert (report.score, report.open_credit_lines, report.defaults) == (455, 4, 1)

    bureau_stack.kill("bureau")
    with pytest.raises(BureauUnavailable):
        asyncio.run(_report(settings, "cust-7"))

    bureau_stack.start_bureau()   # the same home: the same key, the same files
    assert asyncio.run(_report(settings, "cust-7")).score == 455
    requests = httpx.get(f"{base}/sandbox/requests", timeout=10).json()
    assert [r["status"] for r in requests] == [200, 200]


def test_another_bureau_named_by_url_is_not_started(bank_home_factory: Callable[[], Path]) -> None:
    stack = Stack(Settings(home=bank_home_factory(), credit_bureau_url="http://bureau.example"))
    assert stack.start_bureau() is None and not stack.running("bureau")
