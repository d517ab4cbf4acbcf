"""Idempotency keys: the same key with the same body is the same command; with another body, a 409.

The command id is derived from the key, so a retry produces the identical command and the ledger
(which remembers processed command ids in its tables) posts it at most once. This table only lets the
API answer a key reused with a different body synchronously, across API restarts.

A key is kept for BANK_PROCESSED_RETENTION (7 days) less a minute (`key_lifetime`), and then deleted (`prune`,
every PRUNE_EVERY): a key used again after that is a new request. The ledger keeps the command ids it processed
for the whole window, starting when it decides the command, after the key was stored: so a retry the API takes
for the same command is always one the ledger still recognises, with a minute to spare for clocks a little
apart. A key used again after its lifetime needs a new command id too (event ids derive from command ids), so
the id is derived from the key and the number of the lifetime-long window it was first used in; a retry inside
the lifetime finds the stored id, whatever window it comes in.

A key is its caller's: the key and the command id derived from it are scoped by the authenticated user
(staff included), so one caller's key never collides with, blocks, or reveals another's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from api.problems import Problem
from core.commands import derive_id
from core.identity import current_principal

MAX_KEY_LENGTH = 255
PRUNE_EVERY = timedelta(hours=1)   # at most; a shorter retention window prunes more often
SAFETY_MARGIN = timedelta(minutes=1)   # how much sooner than the ledger the API forgets (at most a tenth)

log = logging.getLogger(__name__)


def request_hash(method: str, path: str, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


# A stored key is "<scope>\n<key>": a key is printable (check_key), so it never holds the separator, and
# no key stored before keys were scoped (none holds one) can match a scoped key.
_SCOPE_SEPARATOR = "\n"


def caller_scope() -> str:
    """Whose keys a request's are: the authenticated user's. (Every command route requires one; without a
    caller the keys share one anonymous scope.)"""
    principal = current_principal()
    return user_scope(principal.user_id) if principal is not None else "anonymous"


def user_scope(user_id: str) -> str:
    return f"user:{user_id}"


def command_id_for(key: str, scope: str, window: int) -> str:
    """The command id of a caller's key first used in retention window number `window` (see window_of; a scope
    holds no '/', which derive_id joins with: unambiguous)."""
    return derive_id("scoped-idempotency-key", scope, key, str(window))


def key_lifetime(retention: timedelta) -> timedelta:
    """How long the API keeps a key: a little less than the ledger keeps the command ids it processed."""
    return retention - min(SAFETY_MARGIN, retention / 10)


def window_of(at: float, retention: timedelta) -> int:
    """The number of the lifetime-long window an epoch time falls in: a key first used in another window (so
    after the first one's lifetime ended) gets another command id."""
    return int(at // key_lifetime(retention).total_seconds())


def check_key(key: str) -> str:
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(400, "Invalid Idempotency-Key", f"the key must be 1..{MAX_KEY_LENGTH} printable characters",
                      "invalid_idempotency_key")
    return key


@dataclass(frozen=True, slots=True)
class Claim:
    """A caller's key as the store holds it for a request. `taken`: this request took the key (new, or past its
    lifetime), rather than finding it held by an earlier request with the same body (a retry)."""
    stored_key: str
    fingerprint: str
    command_id: str
    taken: bool


class IdempotencyStore:
    def __init__(self, pool: asyncpg.Pool, retention: timedelta) -> None:
        self._pool = pool
        self.retention = retention
        self.lifetime = key_lifetime(retention)

    async def claim(self, key: str, fingerprint: str, scope: str, now: float | None = None) -> str:
        """The command id for this key of this scope (see caller_scope); raises a 409 Problem if the scope
        used the key for another request inside the key's lifetime. `now`: epoch seconds (tests)."""
        return (await self.take(key, fingerprint, scope, now)).command_id

    async def take(self, key: str, fingerprint: str, scope: str, now: float | None = None) -> Claim:
        """`claim`, saying whether this request took the key or found it held by an earlier request of the same
        caller and body (a retry): one round trip for a new key."""
        now = time.time() if now is None else now
        stored_key = f"{scope}{_SCOPE_SEPARATOR}{key}"
        command_id = command_id_for(key, scope, window_of(now, self.retention))
        # A customer's own command is theirs to follow (GET /v1/commands/{id}) even before the ledger decides it.
        caller = current_principal()
        submitter = caller.customer_id if caller is not None and caller.role == "customer" else None
        async with self._pool.acquire() as conn:
            # A new key, or one past its lifetime (not pruned yet), is taken; a key inside it is kept.
            row = await conn.fetchrow(
                """INSERT INTO api_idempotency (idempotency_key, request_hash, command_id, customer_id, created_at)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (idempotency_key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
                       command_id = EXCLUDED.command_id, customer_id = EXCLUDED.customer_id,
                       created_at = EXCLUDED.created_at
                   WHERE api_idempotency.created_at <= $6
                   RETURNING request_hash, command_id""",
                stored_key, fingerprint, command_id, submitter, _timestamp(now), self._expired_at(now))
            taken = row is not None
            if row is None:   # the key is inside its lifetime: the first request's
                row = await conn.fetchrow("SELECT request_hash, command_id FROM api_idempotency "
                                          "WHERE idempotency_key = $1", stored_key)
        if row is None or row["request_hash"] != fingerprint:
            raise Problem(409, "Idempotency-Key reused", "this Idempotency-Key was already used with a different "
                          "request; use a new key for a new request", "idempotency_key_reused")
        return Claim(stored_key, fingerprint, str(row["command_id"]), taken)

    async def release(self, claim: Claim) -> None:
        """Give back a key this request took and sent nothing under (the route refused it): the key is free
        again, for this request corrected, say. Only the claim's own row: not a later request's."""
        async with self._pool.acquire() as conn:
            await conn.execute("DELETE FROM api_idempotency WHERE idempotency_key = $1 AND command_id = $2 "
                               "AND request_hash = $3", claim.stored_key, uuid.UUID(claim.command_id),
                               claim.fingerprint)

    async def claimed(self, key: str, scope: str, now: float | None = None) -> tuple[str, str] | None:
        """(request hash, command id) of a key this scope has used inside its lifetime, or None."""
        now = time.time() if now is None else now
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT request_hash, command_id FROM api_idempotency WHERE idempotency_key = $1 "
                                      "AND created_at > $2", f"{scope}{_SCOPE_SEPARATOR}{key}", self._expired_at(now))
        return None if row is None else (str(row["request_hash"]), str(row["command_id"]))

    async def prune(self, now: float | None = None) -> int:
        """Deletes the keys past their lifetime; returns how many."""
        now = time.time() if now is None else now
        async with self._pool.acquire() as conn:
            done = await conn.execute("DELETE FROM api_idempotency WHERE created_at <= $1", self._expired_at(now))
        return int(done.split()[-1])

    async def prune_periodically(self) -> None:
        """Runs in every API instance (a DELETE of expired keys is the same whoever runs it)."""
        every = min(PRUNE_EVERY, self.lifetime / 4).total_seconds()
        while True:
            await asyncio.sleep(every)
            try:
                if pruned := await self.prune():
                    log.info("deleted %s idempotency key(s) past their lifetime", pruned)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:   # the database away: next time
                log.warning("could not prune idempotency keys: %r", error)

    def _expired_at(self, now: float) -> datetime:
        """Keys stored at or before this are past their lifetime."""
        return _timestamp(now) - self.lifetime

    async def known(self, command_id: str) -> bool:
        try:
            key = uuid.UUID(command_id)
        except ValueError:   # not an id this API hands out (a 404, not a database error)
            return False
        async with self._pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT 1 FROM api_idempotency WHERE command_id = $1", key))

    async def submitter(self, command_id: str) -> str | None:
        """The customer who submitted the command through the API (None: staff, or not an API command)."""
        try:
            key = uuid.UUID(command_id)
        except ValueError:
            return None
        async with self._pool.acquire() as conn:
            return await conn.fetchval("SELECT customer_id FROM api_idempotency WHERE command_id = $1 "
                                       "AND customer_id IS NOT NULL LIMIT 1", key)


def _timestamp(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)
