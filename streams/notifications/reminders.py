"""Loan instalments coming due: a periodic task of the notifier, beside the agent and the sender.

No record says "an instalment is due in three days": business time does (infra/clock.py, moved by PUT
/v1/admin/clock in tests and demos). So this is not the agent's work (it follows records) but a loop like the
scheduler's: every BANK_SCHEDULER_INTERVAL, once the folds (folds.py) have caught up and when the business date or
the folds changed, it asks core.notifications.instalment_reminders what is due within BANK_LOAN_DUE_REMINDER_DAYS
days and writes those notifications through the agent's own delivery (preferences, channels, quiet hours).

Exactly once, like every notification: a reminder's id derives from the loan, the instalment and the person and
channel, and every table is keyed by it; asking again (every tick, a restart, a second notifier) writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg

from core.notifications import instalment_reminders
from core.schedules import local_date
from infra.clock import BusinessTime
from streams.notifications import metrics
from streams.notifications.agent import NotificationAgent
from streams.notifications.folds import Folds
from streams.notifications.store import BatchWriter

log = logging.getLogger(__name__)


class InstalmentReminders:
    def __init__(self, folds: Folds, agent: NotificationAgent, pool: asyncpg.Pool, business_time: BusinessTime,
                 time_zone: str, days: int, interval: timedelta) -> None:
        self._folds, self._agent, self._pool, self._time = folds, agent, pool, business_time
        self._zone, self._days, self._interval = time_zone, days, interval.total_seconds()
        self._looked_at: tuple[object, int] | None = None   # (business date, folds' version) last looked at
        self._written: set[str] = set()                      # reminder ids written since start
        self.written = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:   # noqa: BLE001 - the database away, a loan that fails: the next tick asks again
                log.exception("notifier: instalment reminders failed; trying again")   # ids are derived: no doubles
                self._looked_at = None
            try:
                await asyncio.wait_for(stop.wait(), self._interval)
            except TimeoutError:
                pass

    async def tick(self) -> None:
        if self._days <= 0 or not self._folds.caught_up:
            return
        today = local_date(self._time.now(), self._zone)
        if self._looked_at == (today, self._folds.version):
            return
        self._looked_at = (today, self._folds.version)
        due = [(source, draft) for source, draft in instalment_reminders(self._folds.book, self._folds.postings,
                                                                        today, self._days)
               if source not in self._written]
        if not due:
            return
        async with self._pool.acquire() as connection, connection.transaction():
            writer = BatchWriter(connection)
            for source, draft in due:
                await self._agent.notify(writer, draft, source, f"reminder/{draft.values['loan_id']}/"
                                                                 f"{draft.values['instalment']}")
        self._written.update(source for source, _draft in due)
        self.written += len(due)
        for channel, count in writer.counts.items():
            metrics.SENT.labels(channel).inc(count)
        log.info("notifier: %s instalment reminder(s) for %s", len(due), today.isoformat())
