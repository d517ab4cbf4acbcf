"""The notifier's PostgreSQL side (migrations/0010_notifications.sql): who is who, preferences, the inbox and
the delivery queue. Everything written by the agent for one batch goes through one connection in one
transaction, with the batch's offsets committed to Kafka only after it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.notifications import DEFAULT_PREFERENCES, NOTIFY_CHANNEL, PreferenceError, Preferences, parse_preferences


@dataclass(frozen=True, slots=True)
class Person:
    user_id: str
    role: str
    email: str
    phone: str | None


_PERSON = ("SELECT u.user_id::text AS user_id, u.role, u.email, p.phone FROM users u "
           "LEFT JOIN profiles p ON p.user_id = u.user_id WHERE u.active AND ")


class BatchWriter:
    """The agent's writes for one batch, on one connection inside its transaction."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.c = connection
        self._prefs: dict[str, Preferences] = {}
        self._holders: dict[str, list[Person]] = {}   # per batch: an account's holders, a customer's users, the staff
        self._customers: dict[str, list[Person]] = {}
        self._staff: list[Person] | None = None
        self.notified_users: set[str] = set()
        self.counts: dict[str, int] = {}

    async def account_opened(self, account_id: str, customer_id: str, currency: str) -> None:
        await self.c.execute("INSERT INTO notify_accounts (account_id, customer_id, currency) VALUES ($1, $2, $3) "
                             "ON CONFLICT (account_id) DO NOTHING", account_id, customer_id, currency)
        self._holders.pop(account_id, None)

    async def holders(self, account_id: str) -> list[Person]:
        if account_id not in self._holders:
            rows = await self.c.fetch(_PERSON + "u.customer_id = (SELECT customer_id FROM notify_accounts "
                                      "WHERE account_id = $1)", account_id)
            self._holders[account_id] = [Person(**dict(r)) for r in rows]
        return self._holders[account_id]

    async def customer(self, customer_id: str) -> list[Person]:
        """The users of a customer (the one a standing order or loan belongs to)."""
        if customer_id not in self._customers:
            rows = await self.c.fetch(_PERSON + "u.customer_id = $1", customer_id)
            self._customers[customer_id] = [Person(**dict(r)) for r in rows]
        return self._customers[customer_id]

    async def staff(self) -> list[Person]:
        if self._staff is None:
            rows = await self.c.fetch(_PERSON + "u.role IN ('analyst', 'admin') ORDER BY u.user_id")
            self._staff = [Person(**dict(r)) for r in rows]
        return self._staff

    async def user(self, user_id: str) -> list[Person]:
        try:
            key = uuid.UUID(user_id)
        except ValueError:
            return []
        return [Person(**dict(r)) for r in await self.c.fetch(_PERSON + "u.user_id = $1", key)]

    async def preferences(self, person: Person) -> Preferences:
        if person.user_id not in self._prefs:
            raw = await self.c.fetchval("SELECT preferences FROM notification_preferences WHERE user_id = $1",
                                        uuid.UUID(person.user_id))
            try:
                prefs = parse_preferences(json.loads(raw), staff=person.role != "customer") if raw else \
                    DEFAULT_PREFERENCES
            except PreferenceError:
                prefs = DEFAULT_PREFERENCES   # stored by an older version this one cannot read: the defaults
            self._prefs[person.user_id] = prefs
        return self._prefs[person.user_id]

    async def new_device(self, user_id: str, device: str) -> bool:
        """Record the device; True when the user had signed in from others before and never from this one."""
        key = uuid.UUID(user_id)
        known = await self.c.fetchval("SELECT count(*) FROM notify_devices WHERE user_id = $1", key)
        added = await self.c.fetchval("INSERT INTO notify_devices (user_id, device) VALUES ($1, $2) "
                                      "ON CONFLICT DO NOTHING RETURNING true", key, device)
        return bool(added) and known > 0

    async def inbox(self, notification_id: str, user_id: str, kind: str, title: str, body: str,
                    data: dict[str, Any], source: str) -> bool:
        """One in-app notification, unless it exists (a replay). The user's seq is taken under their row's
        lock, so their rows become visible in seq order: the stream never skips one that commits late."""
        if await self.c.fetchval("SELECT true FROM notifications WHERE notification_id = $1", notification_id):
            return False
        key = uuid.UUID(user_id)
        seq = await self.c.fetchval(
            "INSERT INTO notify_inbox_seq (user_id, last_seq) VALUES ($1, 1) ON CONFLICT (user_id) "
            "DO UPDATE SET last_seq = notify_inbox_seq.last_seq + 1 RETURNING last_seq", key)
        await self.c.execute(
            "INSERT INTO notifications (notification_id, user_id, seq, kind, title, body, data, source) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", notification_id, key, seq, kind, title, body,
            json.dumps(data, default=str), source)
        if user_id not in self.notified_users:
            self.notified_users.add(user_id)
            await self.c.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, user_id)   # sent at commit
        self._count("in_app")
        return True

    async def queue(self, notification_id: str, user_id: str | None, channel: str, kind: str, recipient: str,
                    subject: str, body: str, not_before: datetime | None) -> bool:
        added = await self.c.fetchval(
            "INSERT INTO notification_outbox (notification_id, user_id, channel, kind, recipient, subject, body, "
            "not_before) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (notification_id) DO NOTHING "
            "RETURNING true", notification_id, uuid.UUID(user_id) if user_id else None, channel, kind, recipient,
            subject, body, not_before)
        return bool(added)

    def _count(self, channel: str) -> None:
        self.counts[channel] = self.counts.get(channel, 0) + 1
