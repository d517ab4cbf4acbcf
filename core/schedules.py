"""When a standing order pays: its recurrence rule, its due dates and the moment each one falls due.

Pure date arithmetic, so the scheduler agent is a thin decide function over it. Rules:

- A due date is a calendar date in the order's time zone (the customer's). It falls due at the first moment of
  that local day (local midnight, or the first instant after a DST gap at midnight), converted to UTC: `due_at`.
- The n-th due date is computed from the rule and the start date, never from the previous payment, so a short
  month never drags later payments off their day.
- Monthly on day 29, 30 or 31: in a month without that day the payment is on the month's last day (30 April,
  28 or 29 February). No month is ever skipped and no month pays twice.
- Yearly: on the start date's month and day each year; 29 February pays on 28 February in common years.
- Weekly: on the weekday asked for (default the start date's), the first one on or after the start date.
- An order ends after its end date (inclusive) or its number of payments, whichever comes first; neither means
  it runs until cancelled. A one-off order pays once, on its start date.
- Each occurrence has an id derived from the order id and its due date (`occurrence_id`): the scheduler emits
  it as the command id, so a restart, a second scheduler or a replay proposes the same command, which the
  ledger takes once.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import count as counting
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.commands import derive_id

Frequency = Literal["once", "daily", "weekly", "monthly", "yearly"]
FREQUENCIES: tuple[Frequency, ...] = ("once", "daily", "weekly", "monthly", "yearly")
# What a scheduler that was down does with the occurrences whose local day passed meanwhile: pay them now,
# or skip them (the scheduler records each skipped occurrence either way).
CatchUpPolicy = Literal["pay_late", "skip"]


class RecurrenceError(ValueError):
    """A rule that names no valid schedule (the message says why)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Recurrence:
    frequency: Frequency
    start: date                       # the first possible due date (a one-off order's only one)
    time_zone: str = "UTC"            # IANA name: the customer's zone
    end: date | None = None           # the last possible due date, inclusive
    count: int | None = None          # how many payments in all
    weekday: int | None = None        # weekly: 0 Monday .. 6 Sunday (default: the start date's)
    day_of_month: int | None = None   # monthly: 1..31 (default: the start date's day)

    def __post_init__(self) -> None:
        if self.frequency not in FREQUENCIES:
            raise RecurrenceError(f"frequency must be one of {', '.join(FREQUENCIES)}, not {self.frequency!r}")
        if self.count is not None and self.count < 1:
            raise RecurrenceError("count must be at least 1")
        if self.end is not None and self.end < self.start:
            raise RecurrenceError(f"end {self.end} is before start {self.start}")
        if self.weekday is not None and not 0 <= self.weekday <= 6:
            raise RecurrenceError("weekday must be 0 (Monday) to 6 (Sunday)")
        if self.day_of_month is not None and not 1 <= self.day_of_month <= 31:
            raise RecurrenceError("day_of_month must be 1 to 31")
        zone(self.time_zone)

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.time_zone)


@dataclass(frozen=True, slots=True)
class Occurrence:
    number: int          # 1 for the first payment of the order
    due_date: date       # in the order's time zone
    due_at: datetime     # when it falls due, UTC


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What a scheduler does with the occurrences due since its last run: pay these, record those as skipped."""

    pay: tuple[Occurrence, ...]
    skip: tuple[Occurrence, ...]
    late: tuple[Occurrence, ...]      # the occurrences among `pay` whose local day has passed


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RecurrenceError(f"unknown time zone {name!r}") from None


def due_at(day: date, time_zone: str | ZoneInfo) -> datetime:
    """The UTC moment `day` begins in the zone. A midnight that does not exist (a DST gap at midnight) is read
    with the offset before the gap, which lands on the first instant of the day; an ambiguous one (a fall-back
    at midnight) is its first occurrence."""
    tz = time_zone if isinstance(time_zone, ZoneInfo) else zone(time_zone)
    return datetime.combine(day, time.min, tz).astimezone(UTC)


def local_date(moment: datetime, time_zone: str | ZoneInfo) -> date:
    tz = time_zone if isinstance(time_zone, ZoneInfo) else zone(time_zone)
    return moment.astimezone(tz).date()


def occurrence_id(order_id: str, due_date: date) -> str:
    """The id of an order's payment on a date: the same on every scheduler, restart and replay."""
    return derive_id("standing-order", order_id, due_date.isoformat())


def due_dates(recurrence: Recurrence) -> Iterator[date]:
    """Every due date of the order, in order (endless for an open-ended order)."""
    for number, day in enumerate(_rule_dates(recurrence), start=1):
        if recurrence.end is not None and day > recurrence.end:
            return
        yield day
        if recurrence.count is not None and number >= recurrence.count:
            return


def occurrences(recurrence: Recurrence, after: date | None, until: date) -> list[Occurrence]:
    """The occurrences due on dates in (after, until]: `after` None means from the start."""
    found = []
    for number, day in enumerate(due_dates(recurrence), start=1):
        if day > until:
            break
        if after is None or day > after:
            found.append(Occurrence(number, day, due_at(day, recurrence.zone)))
    return found


def next_runs(recurrence: Recurrence, after: date | None, n: int) -> list[Occurrence]:
    """The next `n` occurrences due after `after` (fewer when the order ends first)."""
    found: list[Occurrence] = []
    if n <= 0:
        return found
    for number, day in enumerate(due_dates(recurrence), start=1):
        if after is None or day > after:
            found.append(Occurrence(number, day, due_at(day, recurrence.zone)))
            if len(found) == n:
                break
    return found


def due(recurrence: Recurrence, last_run: date | None, now: datetime) -> list[Occurrence]:
    """The occurrences after the last one run (`last_run`, its due date) that have fallen due by `now`."""
    return occurrences(recurrence, last_run, local_date(now, recurrence.zone))


def missed(recurrence: Recurrence, last_run: date | None, now: datetime,
           policy: CatchUpPolicy = "pay_late") -> CatchUp:
    """Catch-up after downtime: the occurrences due by `now` since `last_run`. One whose local day is today is
    on time and paid; one whose local day has passed is late: paid under pay_late, skipped under skip."""
    today = local_date(now, recurrence.zone)
    pending = due(recurrence, last_run, now)
    late = tuple(o for o in pending if o.due_date < today)
    on_time = tuple(o for o in pending if o.due_date >= today)
    if policy == "skip":
        return CatchUp(pay=on_time, skip=late, late=())
    return CatchUp(pay=late + on_time, skip=(), late=late)


# ---------------------------------------------------------------- the rule's dates, before end and count


def _rule_dates(recurrence: Recurrence) -> Iterator[date]:
    start = recurrence.start
    if recurrence.frequency == "once":
        yield start
    elif recurrence.frequency == "daily":
        yield from (start + timedelta(days=n) for n in counting())
    elif recurrence.frequency == "weekly":
        weekday = start.weekday() if recurrence.weekday is None else recurrence.weekday
        first = start + timedelta(days=(weekday - start.weekday()) % 7)
        yield from (first + timedelta(weeks=n) for n in counting())
    elif recurrence.frequency == "monthly":
        yield from _monthly(start, start.day if recurrence.day_of_month is None else recurrence.day_of_month)
    else:
        yield from (_on_day(start.year + n, start.month, start.day) for n in counting())


def _monthly(start: date, day: int) -> Iterator[date]:
    first_month = 0 if _on_day(start.year, start.month, day) >= start else 1
    for n in counting(first_month):
        year, month = divmod(start.month - 1 + n, 12)
        yield _on_day(start.year + year, month + 1, day)


def _on_day(year: int, month: int, day: int) -> date:
    """The `day` of the month, or the month's last day when it has fewer days."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))
