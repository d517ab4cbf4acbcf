"""Notifications on the read side (migrations/0010_notifications.sql): the inbox, preferences, failed deliveries,
and the hub that wakes the SSE streams of a user when the notifier writes to their inbox."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.notifications import (DEFAULT_PREFERENCES, NOTIFY_CHANNEL, PreferenceError, Preferences,
                                parse_preferences, preferences_json)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Notification:
    notification_id: str
    seq: int
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> Notification:
        return cls(row["notification_id"], row["seq"], row["kind"], row["title"], row["body"],
                   json.loads(row["data"]), row["created_at"], row["read_at"])


_COLUMNS = "notification_id, seq, kind, title, body, data, created_at, read_at"


class NotificationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def preferences(self, user_id: str, staff: bool) -> Preferences:
        raw = await self._pool.fetchval("SELECT preferences FROM notification_preferences WHERE user_id = $1",
                                        uuid.UUID(user_id))
        if not raw:
            return DEFAULT_PREFERENCES
        try:
            return parse_preferences(json.loads(raw), staff=staff)
        except PreferenceError:
            return DEFAULT_PREFERENCES

    async def save_preferences(self, user_id: str, prefs: Preferences) -> None:
        await self._pool.execute(
            "INSERT INTO notification_preferences (user_id, preferences) VALUES ($1, $2) ON CONFLICT (user_id) "
            "DO UPDATE SET preferences = EXCLUDED.preferences, updated_at = now()", uuid.UUID(user_id),
            json.dumps(preferences_json(prefs)))

    async def inbox(self, user_id: str, limit: int, before: int | None, unread_only: bool
                    ) -> tuple[list[Notification], int]:
        key = uuid.UUID(user_id)
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 AND ($2::bigint IS NULL OR seq < $2) "
            "AND (NOT $3 OR read_at IS NULL) ORDER BY seq DESC LIMIT $4", key, before, unread_only, limit)
        unread = await self._pool.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
                                           key)
        return [Notification.of(r) for r in rows], int(unread)

    async def after(self, user_id: str, seq: int, limit: int = 200) -> list[Notification]:
        """The user's notifications after `seq`, oldest first (what a stream has not sent yet)."""
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 AND seq > $2 "
                                      "ORDER BY seq LIMIT $3", uuid.UUID(user_id), seq, limit)
        return [Notification.of(r) for r in rows]

    async def last_seq(self, user_id: str) -> int:
        value = await self._pool.fetchval("SELECT last_seq FROM notify_inbox_seq WHERE user_id = $1",
                                          uuid.UUID(user_id))
        return int(value or 0)

    async def mark_read(self, user_id: str, notification_id: str) -> bool:
        found = await self._pool.fetchval(
            "UPDATE notifications SET read_at = coalesce(read_at, now()) WHERE user_id = $1 AND notification_id = $2 "
            "RETURNING true", uuid.UUID(user_id), notification_id)
        return bool(found)

    async def mark_all_read(self, user_id: str, up_to: int | None) -> int:
        result = await self._pool.execute(
            "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL "
            "AND ($2::bigint IS NULL OR seq <= $2)", uuid.UUID(user_id), up_to)
        return int(result.split()[-1])

    async def failed(self, channel: str | None, limit: int) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT notification_id, user_id::text AS user_id, channel, kind, attempts, last_error, created_at "
            "FROM notification_outbox WHERE status = 'failed' AND ($1::text IS NULL OR channel = $1) "
            "ORDER BY created_at DESC LIMIT $2", channel, limit)
        return [dict(r) for r in rows]

    async def retry(self, notification_id: str) -> bool:
        """A failed message back in the queue, with a fresh count of attempts (after the channel is fixed)."""
        found = await self._pool.fetchval(
            "UPDATE notification_outbox SET status = 'pending', attempts = 0, next_attempt_at = now() "
            "WHERE notification_id = $1 AND status = 'failed' RETURNING true", notification_id)
        return bool(found)


class NotificationHub:
    """One LISTEN connection per API process: the notifier's NOTIFY (a user id, at its commit) wakes that
    user's open streams. Streams also look every few seconds, so a lost connection delays, never loses."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: asyncpg.Connection | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._lock = asyncio.Lock()

    async def _listening(self) -> None:
        async with self._lock:   # connected on the first stream, again after a lost connection
            if self._connection is not None and not self._connection.is_closed():
                return
            try:
                connection = await asyncpg.connect(self._dsn)
                await connection.add_listener(NOTIFY_CHANNEL, self._notified)
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("notification hub: cannot listen: %s (streams poll meanwhile)", error)
                return
            self._connection = connection

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        for event in self._waiters.get(payload, ()):
            event.set()

    @contextmanager
    def subscribed(self, user_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(user_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(user_id, set())
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(user_id, None)

    async def ensure(self) -> None:
        await self._listening()

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
