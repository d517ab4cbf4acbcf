"""Client-side long polling, for brokers that answer an empty fetch at once (embedded broker defect 6).

Kafka holds a fetch that finds no data for up to `fetch.max.wait.ms`, so an idle consumer sends a couple
of requests a second. The embedded broker (noida-db) answers at once instead, and aiokafka immediately
fetches again: every idle consumer spins at ~1,800 requests/s, burning a core between itself and the broker
(measured: 45 % of a busy ledger worker's samples were fetch-request writes). `install` makes an empty fetch
wait, client-side, until its backoff has passed since it was sent (never longer than the consumer's own
fetch_max_wait_ms). Harmless on real Kafka, whose empty fetches already took fetch_max_wait_ms. New data
arriving meanwhile is seen at most one backoff later.

The backoff starts at `backoff_ms` and doubles with every further empty fetch in a row, up to `idle_max_ms`;
data resets it. A consumer that just took records answers the next ones within a few milliseconds, one idle
for long asks the broker a couple of dozen times a second instead of two hundred. Measured on 2 cores with
the whole dev stack idle (about 20 consumers): a fixed 5 ms kept 44 % of the machine busy, 25 ms 14 %,
100 ms 8 %.

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

from core.settings import Settings

_ORIGINAL = Fetcher._proc_fetch_request
_STREAK = "_bank_empty_fetches_in_a_row"


def install_for(settings: Settings) -> None:
    """Long polling as the settings say (BANK_KAFKA_EMPTY_FETCH_BACKOFF_MS, BANK_KAFKA_IDLE_FETCH_BACKOFF_MAX_MS)."""
    install(settings.kafka_empty_fetch_backoff_ms, settings.kafka_idle_fetch_backoff_max_ms)


def backoff_after(empty_in_a_row: int, backoff_ms: int, idle_max_ms: int) -> int:
    """How long the next empty fetch lasts after `empty_in_a_row` empty ones (0: the first since data)."""
    return min(max(idle_max_ms, backoff_ms), backoff_ms << min(empty_in_a_row, 16))


def install(backoff_ms: int, idle_max_ms: int | None = None) -> None:
    """Make empty fetches last at least `backoff_ms` milliseconds, doubling while they stay empty up to
    `idle_max_ms` (None: never more than `backoff_ms`); a `backoff_ms` of 0 restores aiokafka's behaviour."""
    if backoff_ms <= 0:
        Fetcher._proc_fetch_request = _ORIGINAL
        return
    ceiling_ms = backoff_ms if idle_max_ms is None else idle_max_ms

    @functools.wraps(_ORIGINAL)
    async def proc_fetch_request(self: Fetcher, assignment: Any, node_id: int, request: Any) -> bool:
        started = time.monotonic_ns()
        woke = await _ORIGINAL(self, assignment, node_id, request)
        if woke:
            setattr(self, _STREAK, 0)
            return True
        # nothing new for the caller: wait out the rest of the poll, as the broker should have
        streak = getattr(self, _STREAK, 0)
        setattr(self, _STREAK, streak + 1)
        limit_ns = min(backoff_after(streak, backoff_ms, ceiling_ms), self._fetch_max_wait_ms) * 1_000_000
        remaining_ns = limit_ns - (time.monotonic_ns() - started)
        if remaining_ns > 0:
            try:
                await asyncio.sleep(remaining_ns / 1e9)
            except asyncio.CancelledError:  # closed or reassigned: what aiokafka's own method does too
                return False
        return False

    Fetcher._proc_fetch_request = proc_fetch_request
