"""Profiles, pending contact changes and the outbox (PostgreSQL, migrations/0008_profile.sql)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

import asyncpg

from api.identity import EmailTaken
from core.identity import normalise_email
from core.profile import code_hash, code_matches, new_code

Channel = Literal["email", "phone"]
PROFILE_FIELDS = ("legal_name", "date_of_birth", "address_lines", "postcode", "city", "country")


@dataclass(frozen=True, slots=True)
class Profile:
    legal_name: str | None = None
    date_of_birth: date | None = None
    address_lines: list[str] = field(default_factory=list)
    postcode: str | None = None
    city: str | None = None
    country: str | None = None
    phone: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    channel: Channel
    new_value: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Verified:
    """The outcome of a code: the change applied, or why not (wrong, expired, no attempts left, none pending)."""

    change: Pending | None
    reason: str | None = None
    attempts_left: int = 0


class ProfileStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, user_id: str) -> Profile | None:
        row = await self._pool.fetchrow(
            "SELECT legal_name, date_of_birth, address_lines, postcode, city, country, phone, updated_at "
            "FROM profiles WHERE user_id = $1", uuid.UUID(user_id))
        return Profile(**{**dict(row), "address_lines": list(row["address_lines"])}) if row else None

    async def update(self, user_id: str, changes: dict[str, Any]) -> None:
        """Upsert the given fields (keys of PROFILE_FIELDS or phone); the others keep their values."""
        columns = list(changes)
        values = [changes[c] for c in columns]
        placeholders = ", ".join(f"${i + 2}" for i in range(len(columns)))
        assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
        await self._pool.execute(
            f"INSERT INTO profiles (user_id, {', '.join(columns)}) VALUES ($1, {placeholders}) "
            f"ON CONFLICT (user_id) DO UPDATE SET {assignments}, updated_at = now()", uuid.UUID(user_id), *values)

    async def pending(self, user_id: str) -> list[Pending]:
        rows = await self._pool.fetch("SELECT channel, new_value, expires_at FROM contact_changes "
                                      "WHERE user_id = $1 AND expires_at > now() ORDER BY channel",
                                      uuid.UUID(user_id))
        return [Pending(r["channel"], r["new_value"], r["expires_at"]) for r in rows]

    async def request_change(self, user_id: str, channel: Channel, new_value: str, ttl: timedelta) -> Pending:
        """A pending change (replacing the last of this channel) and its code in the outbox, in one transaction:
        a code is never sent for a change that was not recorded, nor recorded without being sent."""
        change_id, code = uuid.uuid4(), new_code()
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                """INSERT INTO contact_changes (change_id, user_id, channel, new_value, code_hash, expires_at)
                   VALUES ($1, $2, $3, $4, $5, now() + $6)
                   ON CONFLICT (user_id, channel) DO UPDATE SET change_id = EXCLUDED.change_id,
                       new_value = EXCLUDED.new_value, code_hash = EXCLUDED.code_hash, attempts = 0,
                       created_at = now(), expires_at = EXCLUDED.expires_at
                   RETURNING expires_at""",
                change_id, uuid.UUID(user_id), channel, new_value, code_hash(str(change_id), code), ttl)
            await connection.execute(
                "INSERT INTO outbox (message_id, user_id, channel, recipient, purpose, body) "
                "VALUES ($1, $2, $3, $4, $5, $6)", uuid.uuid4(), uuid.UUID(user_id),
                "email" if channel == "email" else "sms", new_value, f"verify_{channel}",
                f"Your bankstream code to confirm this {channel}: {code}. It expires in "
                f"{int(ttl.total_seconds() // 60)} minutes. If you did not ask for it, ignore this message.")
        return Pending(channel, new_value, row["expires_at"])

    async def verify(self, user_id: str, code: str, max_attempts: int) -> Verified:
        """Apply the pending change this code was sent for, once. A wrong code counts against every pending
        change of the user (so two pending changes do not double the guesses); the last allowed miss ends them."""
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                "SELECT change_id, channel, new_value, code_hash, attempts, expires_at, expires_at > now() AS live "
                "FROM contact_changes WHERE user_id = $1 FOR UPDATE", uuid.UUID(user_id))
            live = [r for r in rows if r["live"] and r["attempts"] < max_attempts]
            if not live:
                return Verified(None, _dead_reason(rows, max_attempts))
            match = next((r for r in live if code_matches(str(r["change_id"]), code, r["code_hash"])), None)
            if match is None:
                await connection.execute("UPDATE contact_changes SET attempts = attempts + 1 WHERE user_id = $1",
                                         uuid.UUID(user_id))
                left = max_attempts - 1 - max(r["attempts"] for r in live)
                return Verified(None, "invalid_code" if left > 0 else "too_many_attempts", max(left, 0))
            await connection.execute("DELETE FROM contact_changes WHERE change_id = $1", match["change_id"])
            await _apply(connection, user_id, match["channel"], match["new_value"])
            return Verified(Pending(match["channel"], match["new_value"], match["expires_at"]))


def _dead_reason(rows: list[asyncpg.Record], max_attempts: int) -> str:
    if not rows:
        return "no_pending_change"
    if any(r["live"] and r["attempts"] >= max_attempts for r in rows):
        return "too_many_attempts"
    return "code_expired"


async def _apply(connection: asyncpg.Connection, user_id: str, channel: str, value: str) -> None:
    if channel == "phone":
        await connection.execute(
            "INSERT INTO profiles (user_id, phone) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE "
            "SET phone = EXCLUDED.phone, updated_at = now()", uuid.UUID(user_id), value)
        return
    try:
        async with connection.transaction():   # a savepoint: the taken email is the caller's 409
            await connection.execute("UPDATE users SET email = $2, email_key = $3, updated_at = now() "
                                     "WHERE user_id = $1", uuid.UUID(user_id), value, normalise_email(value))
    except asyncpg.UniqueViolationError:
        raise EmailTaken(value) from None
