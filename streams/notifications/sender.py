"""Delivers the queue: emails and SMS in notification_outbox, and the profile codes of the `outbox` table.

A due message is claimed with a lease (its next attempt moved past the send), sent, then marked sent. If the
channel is down, the attempt is counted and the next one waits a backoff doubling from BANK_NOTIFY_RETRY_INITIAL
up to BANK_NOTIFY_RETRY_MAX; after BANK_NOTIFY_MAX_ATTEMPTS it is marked failed (GET
/v1/admin/notifications/failed, bank_notifications_failed_total, alert BankNotificationsFailed). Once a channel
takes a message again, the others waiting for it are tried at once. An SMS held by quiet hours waits until its
`not_before` in business time. The notification id travels with each message (the email's Message-ID, the SMS
provider's idempotency reference), so a crash between a send and its mark cannot make a provider that honours
it send twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

from datetime import timedelta
from typing import Any

import asyncpg

from core.notifications import VERIFICATION_CODE, notification_id
from core.settings import Settings
from infra.clock import BusinessTime
from streams.notifications import metrics
from streams.notifications.channels import DeliveryError, EmailChannel, SmsProvider
from streams.notifications.render import render

log = logging.getLogger(__name__)

LEASE_MARGIN = timedelta(seconds=15)   # a claimed message is not claimed again for its longest backoff + this
# (longer than a send may take: the SMTP and SMS clients time out after 10 s)
BATCH = 100
IDLE_S = 0.1
GAUGES_EVERY_S = 1.0
CODE_CHANNEL = {"email": "email", "sms": "sms"}


class Sender:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, business_time: BusinessTime, email: EmailChannel,
                 sms: SmsProvider) -> None:
        self._pool, self._time = pool, business_time
        self._email, self._sms = email, sms
        self._initial = settings.notify_retry_initial.total_seconds()
        self._max = settings.notify_retry_max.total_seconds()
        self._attempts = settings.notify_max_attempts
        # Longer than any backoff, so a claimed message is told from one waiting for its retry by its next attempt.
        self._lease = settings.notify_retry_max + LEASE_MARGIN
        self._gauges_at = 0.0
        self.sent = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            worked = False
            try:
                await self._hand_over_codes()
                worked = await self._deliver_due()
                if time.monotonic() - self._gauges_at >= GAUGES_EVERY_S:
                    await self._update_gauges()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("notification sender: %s; retrying", error)
                await asyncio.sleep(1.0)
            if not worked:
                try:
                    await asyncio.wait_for(stop.wait(), IDLE_S)
                except TimeoutError:
                    pass

    async def _hand_over_codes(self) -> None:
        """Profile codes (api/profile.py writes them to `outbox`) join the queue; delivered_at marks the hand-over."""
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch("SELECT * FROM outbox WHERE delivered_at IS NULL ORDER BY created_at "
                                          "LIMIT $1 FOR UPDATE SKIP LOCKED", BATCH)
            for row in rows:
                channel = CODE_CHANNEL[row["channel"]]
                user = str(row["user_id"]) if row["user_id"] else ""
                rendered = render(VERIFICATION_CODE, channel, {"text": row["body"]})
                await connection.execute(
                    "INSERT INTO notification_outbox (notification_id, user_id, channel, kind, recipient, subject, "
                    "body) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (notification_id) DO NOTHING",
                    notification_id(str(row["message_id"]), user, channel), row["user_id"], channel,
                    VERIFICATION_CODE, row["recipient"], rendered.title if channel == "email" else "", rendered.body)
                await connection.execute("UPDATE outbox SET delivered_at = now() WHERE message_id = $1",
                                         row["message_id"])

    async def _deliver_due(self) -> bool:
        rows = await self._pool.fetch(
            """UPDATE notification_outbox SET next_attempt_at = now() + $2
               WHERE notification_id IN (
                   SELECT notification_id FROM notification_outbox
                   WHERE status = 'pending' AND next_attempt_at <= now() AND (not_before IS NULL OR not_before <= $1)
                   ORDER BY next_attempt_at, created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
               RETURNING notification_id, user_id, channel, kind, recipient, subject, body, attempts""",
            self._time.now(), self._lease, BATCH)
        if not rows:
            return False
        by_channel: dict[str, list[asyncpg.Record]] = {}
        for row in sorted(rows, key=lambda r: r["notification_id"]):
            by_channel.setdefault(row["channel"], []).append(row)
        recovered = await asyncio.gather(*(self._send_all(channel, items) for channel, items in by_channel.items()))
        for channel, ok in zip(by_channel, recovered, strict=True):
            if ok:   # the channel is up again: what waits for a retry need not wait out its backoff
                await self._pool.execute("UPDATE notification_outbox SET next_attempt_at = now() WHERE status = "
                                         "'pending' AND channel = $1 AND attempts > 0 AND next_attempt_at > now() "
                                         "AND next_attempt_at <= now() + $2", channel, timedelta(seconds=self._max))
        return True

    async def _send_all(self, channel: str, rows: list[asyncpg.Record]) -> bool:
        """Send one channel's messages in turn; True if any went after an earlier failure (a recovery)."""
        recovered = False
        for row in rows:
            try:
                provider_id = await self._send(row)
            except DeliveryError as error:
                await self._failed(row, error)
                continue
            await self._pool.execute("UPDATE notification_outbox SET status = 'sent', sent_at = now(), attempts = "
                                     "attempts + 1, provider_id = $2, last_error = NULL WHERE notification_id = $1",
                                     row["notification_id"], provider_id)
            metrics.SENT.labels(channel).inc()
            self.sent += 1
            recovered = recovered or row["attempts"] > 0
        return recovered

    async def _send(self, row: asyncpg.Record) -> str:
        nid = row["notification_id"]
        if row["channel"] == "email":
            return await self._email.send(nid, row["recipient"], row["subject"], row["body"])
        return await self._sms.send(row["recipient"], row["body"], nid)

    async def _failed(self, row: asyncpg.Record, error: DeliveryError) -> None:
        attempts = row["attempts"] + 1
        channel = row["channel"]
        if error.transient and attempts < self._attempts:
            delay = min(self._initial * 2 ** (attempts - 1), self._max)
            metrics.ATTEMPTS_FAILED.labels(channel).inc()
            log.warning("notification %s (%s): attempt %s failed: %s; next in %.1fs", row["notification_id"],
                        channel, attempts, error, delay)
            await self._pool.execute("UPDATE notification_outbox SET attempts = $2, last_error = $3, "
                                     "next_attempt_at = now() + $4 WHERE notification_id = $1",
                                     row["notification_id"], attempts, str(error), timedelta(seconds=delay))
            return
        metrics.FAILED.labels(channel).inc()
        log.error("notification %s (%s) failed after %s attempt(s): %s", row["notification_id"], channel, attempts,
                  error)
        await self._pool.execute("UPDATE notification_outbox SET status = 'failed', attempts = $2, last_error = $3 "
                                 "WHERE notification_id = $1", row["notification_id"], attempts, str(error))

    async def _update_gauges(self) -> None:
        self._gauges_at = time.monotonic()
        rows = await self._pool.fetch(
            "SELECT channel, count(*) AS pending, extract(epoch FROM now() - min(created_at) FILTER (WHERE "
            "not_before IS NULL OR not_before <= $1)) AS oldest FROM notification_outbox WHERE status = 'pending' "
            "GROUP BY channel", self._time.now())
        seen: dict[str, Any] = {r["channel"]: r for r in rows}
        for channel in ("email", "sms"):
            row = seen.get(channel)
            metrics.PENDING.labels(channel).set(row["pending"] if row else 0)
            metrics.OLDEST_PENDING.labels(channel).set(float(row["oldest"] or 0) if row else 0)
        metrics.PENDING.labels("in_app").set(0)


