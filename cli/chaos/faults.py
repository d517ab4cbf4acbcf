"""The faults `bank chaos` injects into its private stack, one at a time, each recorded with when it landed
and how long the process took to come back.

  worker     kill -9 a ledger worker (it runs the ledger agent, the transfer saga and the fraud agent), restart it
  projector  kill -9 the projection worker, restart it
  api        kill -9 the API, restart it
  gateway    kill -9 the payment gateway connector, restart it (instructions it had not committed are sent again:
             the rail deduplicates them by instruction id)
  broker     restart the embedded broker's Kafka service gracefully, in place (`noida-db restart kafka`: data
             saved and reloaded, every connection dropped). Not kill -9, and not a stop of its process either:
             both lose the last acknowledged writes (broker defect 2, streams/broker_workarounds.py), which no
             client can survive; real Kafka replicates instead
  pause      SIGSTOP a ledger worker past its session timeout, then SIGCONT: the zombie must not post twice.
             On real Kafka it is evicted and fenced meanwhile; the embedded broker never expires a static
             member (defect 1), so it keeps its partitions: what the group looked like is recorded
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from cli.devstack import Stack, StackError
from infra.kafka import create_admin_client
from streams.broker_workarounds import STATIC_SESSION_TIMEOUT_S, describe_groups_one_at_a_time

FAULTS = ("worker", "projector", "api", "gateway", "broker", "pause")
PAUSE_MARGIN_S = 5.0   # how far past the session timeout a paused worker stays stopped


@dataclass
class Injection:
    fault: str
    target: str
    how: str
    at_s: float            # when it landed, seconds after the load started
    back_after_s: float    # until the process accepted connections again (the pause: how long it was stopped)
    detail: str = ""
    came_back: bool = True  # ready again (a restart that timed out is a finding: the run goes on)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Injector:
    """Injects faults into `stack`; times are measured from `started` (time.monotonic() of the load's start)."""

    def __init__(self, stack: Stack, started: float) -> None:
        self.stack, self.started = stack, started
        self._next_worker = 0

    def worker_number(self) -> int:
        """Ledger workers take turns, so every one of them is hit."""
        self._next_worker = self._next_worker % self.stack.settings.workers + 1
        return self._next_worker

    async def inject(self, fault: str) -> Injection:
        handlers: dict[str, Callable[[], Awaitable[Injection]]] = {
            "worker": self.kill_worker, "projector": self.kill_projector, "api": self.kill_api,
            "gateway": self.kill_gateway,
            "broker": self.restart_broker, "pause": self.pause_worker}
        return await handlers[fault]()

    async def _kill_and_restart(self, fault: str, name: str, restart: Callable[[], object]) -> Injection:
        at = time.monotonic()
        code = await asyncio.to_thread(self.stack.kill, name, signal.SIGKILL)
        came_back = await _restarted(restart)
        return Injection(fault, name, "kill -9, restart", round(at - self.started, 1),
                         round(time.monotonic() - at, 1), f"exit code {code}" + came_back, came_back == "")

    async def kill_worker(self) -> Injection:
        n = self.worker_number()
        injection = await self._kill_and_restart("worker", f"worker-{n}", lambda: self.stack.start_worker(n))
        injection.detail += "; ledger + saga + fraud agents"
        return injection

    async def kill_projector(self) -> Injection:
        return await self._kill_and_restart("projector", "projector-1", lambda: self.stack.start_projector(1))

    async def kill_api(self) -> Injection:
        return await self._kill_and_restart("api", "api", self.stack.start_api)

    async def kill_gateway(self) -> Injection:
        return await self._kill_and_restart("gateway", "gateway", self.stack.start_gateway)

    async def restart_broker(self) -> Injection:
        at = time.monotonic()
        came_back = await _restarted(self.stack.restart_broker)
        return Injection("broker", "kafka", "graceful restart (noida-db restart kafka)", round(at - self.started, 1),
                         round(time.monotonic() - at, 1), "in place, data saved and reloaded; not kill -9 nor a "
                         "process stop: the embedded broker then loses acknowledged writes (defect 2)" + came_back,
                         came_back == "")

    async def pause_worker(self) -> Injection:
        n = self.worker_number()
        name = f"worker-{n}"
        pid = self.stack.children[name].popen.pid
        at = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(STATIC_SESSION_TIMEOUT_S + PAUSE_MARGIN_S)
            group = await self.group_state()
        finally:
            os.kill(pid, signal.SIGCONT)
        stopped = time.monotonic() - at
        return Injection("pause", name, "SIGSTOP, SIGCONT", round(at - self.started, 1), round(stopped, 1),
                         f"stopped {stopped:.0f} s, session timeout {STATIC_SESSION_TIMEOUT_S:.0f} s; "
                         f"ledger group then: {group}")

    async def group_state(self) -> str:
        """The ledger's consumer group as the broker sees it: its state and how many members it has."""
        group_id = self.stack.settings.worker_group
        admin = create_admin_client(self.stack.settings.kafka)
        await admin.start()
        try:
            described = await describe_groups_one_at_a_time(admin, [group_id])
        finally:
            await admin.close()
        _error, _group, state, _protocol_type, _protocol, members = described[group_id][:6]
        workers = self.stack.settings.workers
        kept = len(members) == workers
        verdict = ("the paused member was not evicted (embedded broker defect 1: static members never expire; "
                   "real Kafka would evict and fence it)" if kept else "the paused member was evicted")
        return f"{state}, {len(members)} of {workers} members: {verdict}"


async def _restarted(restart: Callable[[], object]) -> str:
    """Run a restart; "" when the process came back, else why not (the run goes on, the checks will tell)."""
    try:
        await asyncio.to_thread(restart)
    except (StackError, subprocess.SubprocessError) as error:
        return f"; NOT BACK: {str(error).splitlines()[0]}"
    return ""
