"""The users table (PostgreSQL): customers and staff, their password hashes, second factor and status.

Used by the API and by `bank users create-admin`. Every write also sets updated_at.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.identity import Role, normalise_email

_COLUMNS = ("user_id, email, name, password_hash, role, customer_id, active, mfa_secret, mfa_enabled, "
            "totp_last_step, cardinality(recovery_codes) AS recovery_codes_left, must_change_password, "
            "created_at, updated_at, password_changed_at")


class EmailTaken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    email: str
    name: str
    password_hash: str
    role: Role
    customer_id: str | None
    active: bool
    mfa_secret: str | None
    mfa_enabled: bool
    totp_last_step: int | None
    recovery_codes_left: int
    must_change_password: bool
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> User:
        return cls(**{**dict(row), "user_id": str(row["user_id"])})


@dataclass(frozen=True, slots=True)
class UserQuery:
    text: str | None = None          # contained in the email (normalised) or the name, any case
    role: Role | None = None
    active: bool | None = None


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere (its wildcards escaped)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def new_customer_id() -> str:
    return f"cust-{uuid.uuid4().hex}"


class UserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, *, email: str, name: str, password_hash: str, role: Role,
                     customer_id: str | None = None, must_change_password: bool = False,
                     mfa_secret: str | None = None) -> User:
        """A new user; raises EmailTaken when the email (in any case or Unicode form) has an account already."""
        try:
            row = await self._pool.fetchrow(
                f"""INSERT INTO users (user_id, email, email_key, name, password_hash, role, customer_id,
                                       must_change_password, mfa_secret, mfa_enabled)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text, $9::text IS NOT NULL) RETURNING {_COLUMNS}""",
                uuid.uuid4(), email, normalise_email(email), name, password_hash, role, customer_id,
                must_change_password, mfa_secret)
        except asyncpg.UniqueViolationError as error:
            if "email" in (error.constraint_name or ""):
                raise EmailTaken(email) from None
            raise
        return User.of(row)

    async def by_email(self, email: str) -> User | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE email_key = $1", normalise_email(email))
        return User.of(row) if row else None

    async def by_id(self, user_id: str) -> User | None:
        try:
            key = uuid.UUID(user_id)
        except ValueError:
            return None
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE user_id = $1", key)
        return User.of(row) if row else None

    async def search(self, query: UserQuery, after: tuple[datetime, str] | None, limit: int) -> list[User]:
        """Newest first, keyset-paged on (created_at, user_id)."""
        where, args = ["true"], []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if query.text:
            email_pattern, name_pattern = arg(_like(normalise_email(query.text))), arg(_like(query.text.lower()))
            where.append(f"(email_key LIKE {email_pattern} OR lower(name) LIKE {name_pattern})")
        if query.role:
            where.append(f"role = {arg(query.role)}")
        if query.active is not None:
            where.append(f"active = {arg(query.active)}")
        if after:
            where.append(f"(created_at, user_id) < ({arg(after[0])}, {arg(uuid.UUID(after[1]))})")
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM users WHERE {' AND '.join(where)} "
                                      f"ORDER BY created_at DESC, user_id DESC LIMIT {arg(limit)}", *args)
        return [User.of(r) for r in rows]

    async def _update(self, user_id: str, assignments: str, *args: Any) -> User | None:
        row = await self._pool.fetchrow(
            f"UPDATE users SET {assignments}, updated_at = now() WHERE user_id = $1 RETURNING {_COLUMNS}",
            uuid.UUID(user_id), *args)
        return User.of(row) if row else None

    async def set_password(self, user_id: str, password_hash: str, must_change: bool) -> User | None:
        return await self._update(user_id, "password_hash = $2, must_change_password = $3, "
                                  "password_changed_at = now()", password_hash, must_change)

    async def set_role(self, user_id: str, role: Role) -> User | None:
        return await self._update(user_id, "role = $2", role)

    async def set_active(self, user_id: str, active: bool) -> User | None:
        return await self._update(user_id, "active = $2", active)

    async def set_pending_mfa(self, user_id: str, secret: str) -> User | None:
        """A new secret awaiting /verify; an enabled second factor is never replaced this way."""
        return await self._update(user_id, "mfa_secret = CASE WHEN mfa_enabled THEN mfa_secret ELSE $2 END, "
                                  "totp_last_step = CASE WHEN mfa_enabled THEN totp_last_step END", secret)

    async def enable_mfa(self, user_id: str, recovery_hashes: list[str], step: int) -> User | None:
        return await self._update(user_id, "mfa_enabled = true, recovery_codes = $2, totp_last_step = $3",
                                  recovery_hashes, step)

    async def reset_mfa(self, user_id: str) -> User | None:
        return await self._update(user_id, "mfa_enabled = false, mfa_secret = NULL, totp_last_step = NULL, "
                                  "recovery_codes = '{}'")

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        """Record a TOTP step as used; False if it (or a later one) was used already: a replayed code."""
        row = await self._pool.fetchval(
            "UPDATE users SET totp_last_step = $2 WHERE user_id = $1 AND (totp_last_step IS NULL OR "
            "totp_last_step < $2) RETURNING 1", uuid.UUID(user_id), step)
        return row is not None

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        """Consume a recovery code, atomically: True once per code."""
        row = await self._pool.fetchval(
            "UPDATE users SET recovery_codes = array_remove(recovery_codes, $2), updated_at = now() "
            "WHERE user_id = $1 AND $2 = ANY(recovery_codes) RETURNING 1", uuid.UUID(user_id), code_hash)
        return row is not None
