"""Client-side long polling, for brokers that answer an empty fetch at once (embedded broker defect 6).

Kafka holds a fetch that finds no data for up to `fetch.max.wait.ms`, so an idle consumer sends a couple
of requests a second. The embedded broker (noida-db) answers at once instead, and aiokafka immediately
fetches again: every idle consumer spins at ~1,800 requests/s, burning a core between itself and the broker
(measured: 45 % of a busy ledger worker's samples were fetch-request writes). `install` makes an empty fetch
wait, client-side, until `backoff_ms` has passed since it was sent (never longer than the consumer's own
fetch_max_wait_ms). Harmless on real Kafka, whose empty fetches already took fetch_max_wait_ms. New data
arriving meanwhile is seen at most `backoff_ms` later.

This patches aiokafka's Fetcher class, so every consumer of the process (Faust's included) gets it. It sits
in infra/, the Kafka edge every process (API, workers, CLI) can reach; the broker's other defects and their
workarounds are in streams/broker_workarounds.py.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from aiokafka.consumer.fetcher import Fetcher

_ORIGINAL = Fetcher._proc_fetch_request


def install(backoff_ms: int) -> None:
    """Make empty fetches last at least `backoff_ms` milliseconds (0 restores aiokafka's behaviour)."""
    if backoff_ms <= 0:
        Fetcher._proc_fetch_request = _ORIGINAL
        return

    @functools.wraps(_ORIGINAL)
    async def proc_fetch_request(self: Fetcher, assignment: Any, node_id: int, request: Any) -> bool:
        started = time.monotonic_ns()
        woke = await _ORIGINAL(self, assignment, node_id, request)
        if not woke:  # nothing new for the caller: wait out the rest of the poll, as the broker should have
            limit_ns = min(backoff_ms, self._fetch_max_wait_ms) * 1_000_000
            remaining_ns = limit_ns - (time.monotonic_ns() - started)
            if remaining_ns > 0:
                try:
                    await asyncio.sleep(remaining_ns / 1e9)
                except asyncio.CancelledError:  # closed or reassigned: what aiokafka's own method does too
                    return False
        return bool(woke)

    Fetcher._proc_fetch_request = proc_fetch_request
