"""kill -9 the stream worker in the middle of a stream of commands: nothing lost, nothing posted twice."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal

import pytest

from tests.support.load import bounded, open_accounts, random_commands
from tests.support import Bank, read_log, settled_audit


# On demand (BANK_SLOW_TESTS=1): in CI, test_chaos kills a ledger worker under load and checks that nothing is lost
# or posted twice; this one kills it twice in a row.
@pytest.mark.slow
def test_worker_killed_mid_stream_loses_and_duplicates_nothing(stack, api_url: str, kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        try:
            accounts = await open_accounts(bank, 30)
            load = asyncio.create_task(random_commands(bank, accounts, count=bounded(1500), seed=99, concurrency=16))
            for _ in range(2):
                await asyncio.sleep(1.0)
                assert not load.done(), "the kill must land while commands are flowing"
                assert stack.kill_worker(1, signal.SIGKILL) is not None
                await asyncio.to_thread(stack.start_worker, 1)
            result = await load
        finally:
            await bank.close()
        audit = await settled_audit(kafka_bootstrap, expected_commands=result.command_ids, timeout=120)
        assert audit.violations == []
        assert not audit.in_flight
        assert result.command_ids <= audit.outcome_command_ids(), "a command was lost"

    asyncio.run(scenario())


async def _logged_since_last_start(stack, pattern: str, timeout: float = 60.0) -> re.Match | None:
    """Worker 1's first log match of `pattern` since it was last started (its log is appended across restarts)."""
    log_path = stack.children["worker-1"].log_path
    for _ in range(int(timeout * 10)):
        if match := re.search(pattern, log_path.read_text().rsplit("==== ", 1)[-1]):
            return match
        await asyncio.sleep(0.1)
    return None


def _restart_worker(stack, env: dict[str, str] | None = None, sig: int = signal.SIGTERM) -> None:
    stack.kill_worker(1, sig)
    spec = stack.worker_spec(1)
    stack.start(dataclasses.replace(spec, env=spec.env | (env or {})))


def test_crash_after_events_before_snapshots_posts_nothing_twice(stack, api_url: str, kafka_bootstrap: str) -> None:
    """The exact window of the at-least-once promise: events acknowledged, tables and offsets not written."""

    async def scenario() -> None:
        bank = Bank(api_url)
        try:
            account = await bank.open()
            _restart_worker(stack, {"BANK_FAILPOINT": "after_ledger_acked:1"})
            accepted = await bank.deposit(account, "12.34", wait=False, key=f"crash-{account}")
            assert accepted.status_code == 202
            command_id = accepted.json()["command_id"]
            child = stack.children["worker-1"]
            for _ in range(1200):  # the failpoint kills the worker once its events are acknowledged
                if not child.alive:
                    break
                await asyncio.sleep(0.1)
            assert not child.alive and child.popen.returncode == -signal.SIGKILL
            # On the shared stack the failpoint's batch may hold other tests' commands instead of this one:
            # whether this deposit's event was acknowledged before the crash decides what the restart must do.
            in_window = any(ev.correlation_id == command_id for ev in await read_log(kafka_bootstrap))
            _restart_worker(stack, sig=signal.SIGKILL)  # a plain worker replays the uncommitted command
            retry = await bank.deposit(account, "12.34", key=f"crash-{account}")  # and the client retries too
            assert retry.status_code == 200 and retry.json()["command_id"] == command_id
        finally:
            await bank.close()
        audit = await settled_audit(kafka_bootstrap, expected_commands={command_id})
        assert audit.violations == []
        postings = [ev for ev in audit.events if ev.correlation_id == command_id]
        assert [type(ev).__name__ for ev in postings] == ["FundsDeposited"]
        assert audit.accounts[account].balance == 1234
        if in_window:  # acknowledged, not snapshotted: the restart must fold it back from the log, not re-decide
            recovered = await _logged_since_last_start(stack, r"caught up (\d+) event\(s\)")
            since_start = stack.children["worker-1"].log_path.read_text().rsplit("==== ", 1)[-1]
            assert recovered and int(recovered[1]) >= 1, (
                "the restarted worker did not recover the acknowledged event from the log:\n" + since_start[-3000:])

    asyncio.run(scenario())
