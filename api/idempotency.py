"""Idempotency keys: the same key with the same body is the same command; with another body, a 409.

The command id is derived from the key, so a retry produces the identical command and the ledger
(which remembers processed command ids in its tables) posts it at most once. This table only lets the
API answer a key reused with a different body synchronously, across API restarts.

A key is its caller's: the key and the command id derived from it are scoped by the authenticated user
(staff included), so one caller's key never collides with, blocks, or reveals another's.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import asyncpg

from api.problems import Problem
from core.commands import derive_id
from core.identity import current_principal

MAX_KEY_LENGTH = 255


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


def command_id_for(key: str, scope: str) -> str:
    """The command id of a caller's key (a scope holds no '/', which derive_id joins with: unambiguous)."""
    return derive_id("scoped-idempotency-key", scope, key)


def check_key(key: str) -> str:
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(400, "Invalid Idempotency-Key", f"the key must be 1..{MAX_KEY_LENGTH} printable characters",
                      "invalid_idempotency_key")
    return key


class IdempotencyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(self, key: str, fingerprint: str, scope: str) -> str:
        """The command id for this key of this scope (see caller_scope); raises a 409 Problem if the scope
        used the key for another request."""
        command_id = command_id_for(key, scope)
        # A customer's own command is theirs to follow (GET /v1/commands/{id}) even before the ledger decides it.
        caller = current_principal()
        submitter = caller.customer_id if caller is not None and caller.role == "customer" else None
        async with self._pool.acquire() as conn:
            stored = await conn.fetchval(
                """INSERT INTO api_idempotency (idempotency_key, request_hash, command_id, customer_id)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (idempotency_key) DO UPDATE SET idempotency_key = EXCLUDED.idempotency_key
                   RETURNING request_hash""",
                f"{scope}{_SCOPE_SEPARATOR}{key}", fingerprint, command_id, submitter,
            )
        if stored != fingerprint:
            raise Problem(409, "Idempotency-Key reused", "this Idempotency-Key was already used with a different "
                          "request; use a new key for a new request", "idempotency_key_reused")
        return command_id

    async def claimed(self, key: str, scope: str) -> tuple[str, str] | None:
        """(request hash, command id) of a key this scope has used, or None."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT request_hash, command_id FROM api_idempotency WHERE idempotency_key = $1",
                                      f"{scope}{_SCOPE_SEPARATOR}{key}")
        return None if row is None else (str(row["request_hash"]), str(row["command_id"]))

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
