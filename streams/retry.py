"""Retrying a batch: a failed batch is never skipped, since skipping would lose messages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from streams.app import app

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


async def retry_batch(name: str, attempt_once: Callable[[], Awaitable[None]],
                      before_retry: Callable[[], None] = lambda: None) -> None:
    """Run `attempt_once` until it succeeds, backing off; after MAX_ATTEMPTS, crash the worker.

    A crashed worker is restarted by its supervisor and its uncommitted messages are redelivered.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            await attempt_once()
            return
        except Exception as error:
            if attempt == MAX_ATTEMPTS:
                log.critical("%s batch failed %s times, crashing the worker: %r", name, attempt, error)
                await app.crash(error)
                raise
            log.warning("%s batch failed (attempt %s), retrying: %r", name, attempt, error)
            before_retry()
            await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
