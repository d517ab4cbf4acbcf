"""The API's idempotency keys are kept for the retention window, not for ever (api/idempotency.py), on the real
PostgreSQL: a retry inside the key's lifetime is the same command; past it the key is a new request with a new
command id (event ids derive from command ids, and the ledger may still know the old one); expired keys are
deleted by `prune`. Time is passed in, not waited for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import time
import uuid
from datetime import timedelta

import asyncpg
import pytest

from api.idempotency import IdempotencyStore, key_lifetime
from api.problems import Problem

WEEK = timedelta(days=7)
DAY = 24 * 3600.0


def with_store(pg_dsn: str, scenario: Callable[[IdempotencyStore, str, str, float], Awaitable[None]]) -> None:
    """Runs `scenario(store, key, scope, t0)` on a store over the real PostgreSQL, with a new key and scope."""
    async def run() -> None:
        pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
        try:
            await scenario(IdempotencyStore(pool, WEEK), f"key-{uuid.uuid4()}", f"user:{uuid.uuid4()}", time.time())
        finally:
            await pool.close()

    asyncio.run(run())


def test_a_key_is_the_same_command_inside_its_lifetime_and_a_new_request_after_it(pg_dsn: str) -> None:
    async def scenario(store: IdempotencyStore, key: str, scope: str, t0: float) -> None:
        first = await store.claim(key, "hash-a", scope, now=t0)
        assert await store.claim(key, "hash-a", scope, now=t0 + 6 * DAY) == first   # a retry
        with pytest.raises(Problem) as refused:                                       # another request
            await store.claim(key, "hash-b", scope, now=t0 + 6 * DAY)
        assert refused.value.status == 409
        assert await store.claimed(key, scope, now=t0 + 6 * DAY) == ("hash-a", first)

        after = t0 + key_lifetime(WEEK).total_seconds() + 1
        assert await store.claimed(key, scope, now=after) is None                     # forgotten ...
        second = await store.claim(key, "hash-b", scope, now=after)                   # ... a new request
        assert second != first
        assert await store.claim(key, "hash-b", scope, now=after + DAY) == second

        pruned = await store.prune(now=after + 8 * DAY)
        assert pruned >= 1
        assert await store.claimed(key, scope, now=after) is None
        assert not await store.known(second)                                          # deleted

    with_store(pg_dsn, scenario)


def test_a_key_is_taken_once_and_given_back_only_by_its_own_claim(pg_dsn: str) -> None:
    async def scenario(store: IdempotencyStore, key: str, scope: str, t0: float) -> None:
        first = await store.take(key, "hash-a", scope, now=t0)
        retry = await store.take(key, "hash-a", scope, now=t0 + 1)
        assert first.taken and not retry.taken and retry.command_id == first.command_id
        await store.release(first)                       # refused before sending: the key is free again
        assert await store.claimed(key, scope, now=t0 + 2) is None
        corrected = await store.take(key, "hash-b", scope, now=t0 + 3)
        assert corrected.taken
        await store.release(first)                       # a stale claim does not free the new one
        assert await store.claimed(key, scope, now=t0 + 4) == ("hash-b", corrected.command_id)

    with_store(pg_dsn, scenario)


def test_the_api_forgets_a_key_before_the_ledger_forgets_its_command() -> None:
    # The ledger keeps a processed command id for the whole window from when it decided it (after the key was
    # stored, and counted in whole seconds): the API must let go sooner, or it would hand the ledger a command id
    # it no longer recognises.
    for retention in (WEEK, timedelta(seconds=15)):
        lifetime = key_lifetime(retention)
        assert lifetime < retention - timedelta(seconds=1)
        assert lifetime >= retention * 0.9
