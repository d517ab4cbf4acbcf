"""The notification agent: its own consumer group on the ledger, the audit log, the standing orders and the loans,
turning records into notifications (core/notifications.py says what each record means to whom). Records of
bank.standing-orders and bank.loans are judged with the folds of those topics (folds.py): whose order or loan it is
and where the application stood.

Per batch: one PostgreSQL transaction writes the accounts and devices it learns, the in-app notifications and
the queued emails and SMS (each keyed by its notification id, derived from the record, the person and the
channel: a record handled twice writes nothing the second time); then the batch's offsets are committed. A
crash in between re-delivers records that change nothing. A record it cannot decode or handle is logged and
skipped (it stays on its topic); a database outage is retried, batch and all, with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from core.audit import AuditRecorded
from core.events import AccountOpened, Event
from core.identity import device_from_user_agent
from core.notifications import (AUDIT_RULES, NEW_DEVICE_ACTION, NOTIFIER_GROUP, NOTIFIER_TOPICS, Draft,
                                drafts_for_event, loan_drafts, notification_id, standing_order_drafts,
                                threshold_drafts)
from core.topics import AUDIT, LOANS, STANDING_ORDERS
from infra.clock import BusinessTime
from infra.kafka import create_consumer
from infra.topics import record_types
from schemas.codec import DecodeError, get_codec
from streams.notifications import metrics
from streams.notifications.folds import Folds
from streams.notifications.render import render
from streams.notifications.store import BatchWriter, Person

log = logging.getLogger(__name__)

GROUP = NOTIFIER_GROUP
TOPICS = NOTIFIER_TOPICS
BATCH_MAX = 500
FETCH_TIMEOUT_MS = 200
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
FOLDED = (STANDING_ORDERS, LOANS)   # their records are judged with the folds of their topics
# When a record of those topics happened (business time), for BANK_NOTIFY_MAX_AGE
_MOMENTS = ("recorded_at", "reviewed_at", "charged_at", "answered_at", "assessed_at", "applied_at", "set_at")


class NotificationAgent:
    name = "notifier"

    def __init__(self, bootstrap: str, pool: asyncpg.Pool, business_time: BusinessTime, instance_id: str,
                 max_age: timedelta, folds: Folds) -> None:
        self._consumer = create_consumer(
            *TOPICS, bootstrap=bootstrap, group_id=GROUP,
            group_instance_id=f"{instance_id}-notifier",   # static membership, like the projections
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
            max_poll_records=BATCH_MAX)
        self._pool = pool
        self._time = business_time
        self._max_age = max_age
        self._folds = folds
        self._codec = get_codec()
        self.handled = 0

    async def run(self, stop: asyncio.Event) -> None:
        await self._consumer.start()
        log.info("notifier: consuming %s as group %s", ", ".join(TOPICS), GROUP)
        try:
            while not stop.is_set():
                await self._step()
        finally:
            await self._consumer.stop()

    async def _step(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=BATCH_MAX)
        records = [r for rs in batches.values() for r in rs]
        if not records:
            return
        started = time.monotonic()
        for tp, rs in batches.items():
            if tp.topic in FOLDED and rs:
                await self._folds.reached(tp.topic, tp.partition, rs[-1].offset)
        writer = await self._write(records)
        for channel, count in writer.counts.items():
            metrics.SENT.labels(channel).inc(count)   # in-app: delivered when written
        metrics.BATCH_SECONDS.observe(time.monotonic() - started)
        self.handled += len(records)
        # The consumer's position, not the last offset + 1: transaction markers and compaction leave gaps, and
        # a commit short of them would show as lag for ever.
        offsets = {}
        for tp, rs in batches.items():
            if rs:
                offsets[tp] = OffsetAndMetadata(max(rs[-1].offset + 1, await self._consumer.position(tp)), "")
        try:
            await self._consumer.commit(offsets)
        except KafkaError as error:   # written already: a re-delivery writes nothing new
            log.warning("notifier: offset commit failed: %s", error)

    async def _write(self, records: list[ConsumerRecord[bytes, bytes]]) -> BatchWriter:
        attempt = 0
        while True:
            try:
                async with self._pool.acquire() as connection, connection.transaction():
                    writer = BatchWriter(connection)
                    for record in records:
                        await self._handle_safely(writer, record)
                return writer
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                    asyncpg.CannotConnectNowError) as error:
                delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                attempt += 1
                log.warning("notifier: %s; retrying the batch in %.1fs", error, delay)
                await asyncio.sleep(delay)

    async def _handle_safely(self, writer: BatchWriter, record: ConsumerRecord[bytes, bytes]) -> None:
        where = f"{record.topic}/{record.partition}/{record.offset}"
        notified, counts = set(writer.notified_users), dict(writer.counts)   # undone with the savepoint
        try:
            async with writer.c.transaction():   # a savepoint: a record that fails leaves the batch intact
                if record.topic == AUDIT:
                    await self._audit(writer, record, where)
                elif record.topic in FOLDED:
                    await self._folded(writer, record, where)
                else:   # the ledger, and any event topic added to TOPICS (payments)
                    await self._event(writer, record, where)
        except DecodeError as error:
            log.error("notifier: skipped %s: %s", where, error)
            writer.notified_users, writer.counts = notified, counts
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            raise
        except Exception:   # noqa: BLE001 - one bad record must not stop everyone's notifications
            metrics.SKIPPED.inc()
            log.exception("notifier: could not handle %s; skipped", where)
            writer.notified_users, writer.counts = notified, counts

    def _recent(self, moment: datetime) -> bool:
        return moment >= datetime.now(UTC) - self._max_age

    async def _event(self, writer: BatchWriter, record: ConsumerRecord[bytes, bytes], where: str) -> None:
        """An event (any record with event_id, account_id and occurred_at): drafts from LEDGER_RULES."""
        event: Event = self._codec.decode(record.value, record.headers, record_types(record.topic))
        if isinstance(event, AccountOpened):
            await writer.account_opened(event.account_id, event.customer_id, event.currency)
        if not self._recent(event.occurred_at):
            return
        for draft in drafts_for_event(event):
            await self.notify(writer, draft, event.event_id, where)

    async def _folded(self, writer: BatchWriter, record: ConsumerRecord[bytes, bytes], where: str) -> None:
        """A standing order's or a loan's record: drafts for its customer, from the folds (which have read it)."""
        value = self._codec.decode(record.value, record.headers, record_types(record.topic))
        if record.topic == STANDING_ORDERS:
            drafts = standing_order_drafts(value, self._folds.orders)
        else:
            loan_id = getattr(value, "loan_id", None)
            drafts = loan_drafts(value, self._folds.loan(loan_id, value.event_id) if loan_id else None)
        moment = next((getattr(value, name) for name in _MOMENTS if hasattr(value, name)), None)
        if drafts and moment is not None and self._recent(moment):
            for draft in drafts:
                await self.notify(writer, draft, value.event_id, where)

    async def _audit(self, writer: BatchWriter, record: ConsumerRecord[bytes, bytes], where: str) -> None:
        audit = self._codec.decode(record.value, record.headers, record_types(AUDIT))
        if not isinstance(audit, AuditRecorded) or audit.outcome != "success":
            return
        at = audit.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        drafts: list[Draft] = []
        if audit.action == NEW_DEVICE_ACTION and audit.actor_user_id:
            device = device_from_user_agent(audit.user_agent)
            if await writer.new_device(audit.actor_user_id, device):
                drafts.append(Draft("new_device_sign_in", "user", audit.actor_user_id,
                                    {"device": device, "ip": audit.ip, "at": at}))
        kind = AUDIT_RULES.get(audit.action)
        user = audit.subject_user_id or audit.actor_user_id
        if kind is not None and user:
            drafts.append(Draft(kind, "user", user, {"at": at, "reset": audit.action == "password_reset",
                                                     "payee_id": audit.details.get("payee_id")}))
        if self._recent(audit.occurred_at):
            for draft in drafts:
                await self.notify(writer, draft, audit.event_id, where)

    async def _people(self, writer: BatchWriter, draft: Draft) -> list[Person]:
        if draft.audience == "account_holder":
            return await writer.holders(draft.target)
        if draft.audience == "customer":
            return await writer.customer(draft.target)
        if draft.audience == "staff":
            return await writer.staff()
        return await writer.user(draft.target)

    async def notify(self, writer: BatchWriter, draft: Draft, source_id: str, where: str) -> None:
        """The draft to each person it is for, on the channels they chose (ids from source, person, channel)."""
        for person in await self._people(writer, draft):
            prefs = await writer.preferences(person)
            extra = threshold_drafts(draft, prefs.threshold(draft.target)) if draft.audience == "account_holder" \
                else []
            for each in (draft, *extra):
                for channel in prefs.channels_for(each.kind):
                    await self._make(writer, each, person, channel, prefs.quiet_hours, source_id, where)

    async def _make(self, writer: BatchWriter, draft: Draft, person: Person, channel: str, quiet: Any,
                    source_id: str, where: str) -> None:
        nid = notification_id(source_id, person.user_id, channel, draft.suffix)
        rendered = render(draft.kind, channel, draft.values)
        if channel == "in_app":
            shown = {k: v for k, v in draft.values.items() if not k.endswith("_minor")}
            await writer.inbox(nid, person.user_id, draft.kind, rendered.title, rendered.body, shown, where)
        elif channel == "email":
            await writer.queue(nid, person.user_id, "email", draft.kind, person.email, rendered.title,
                               rendered.body, None)
        elif channel == "sms" and person.phone:
            not_before = quiet.holds(self._time.now()) if quiet is not None else None
            await writer.queue(nid, person.user_id, "sms", draft.kind, person.phone, "", rendered.body, not_before)
