"""Business time: the one clock business rules read ("is this standing order due?", a command's issued_at).

In production business time is real time (`SystemClock`). Tests and demos cannot wait a month, so with
BANK_CLOCK_CONTROL on, staff may move business time forward (PUT /v1/admin/clock): every process then runs a
`ControlledClock`, real time plus an offset, and learns the offset from the compacted clock topic (bank.clock,
one `ClockSet` per move). The offset only grows: business time never runs back, so nothing already due becomes
undue and nothing paid is due again. Security timestamps (token expiry, sessions, rate limits, the audit trail)
stay on real time: an attacker who moved the clock must not thereby outlive a token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

CLOCK_KEY = "business-clock"   # the one key of the clock topic: compaction keeps the latest move
MICROSECOND = timedelta(microseconds=1)
# How far ahead of real time business time may be: decades of standing orders fit, and every business time
# stays far from the end of Python's calendar (year 9999), where adding a day to a date would overflow.
MAX_OFFSET = timedelta(days=100 * 366)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current business time, timezone-aware, in UTC."""
        ...


def real_now() -> datetime:
    return datetime.now(UTC)


class SystemClock:
    """Business time is real time: production, and every process while BANK_CLOCK_CONTROL is off."""

    def now(self) -> datetime:
        return real_now()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSet:
    """Staff moved business time forward (bank.clock, keyed by CLOCK_KEY): from now on it is real time plus
    `offset_micros`."""

    offset_micros: int                # business time minus real time, in microseconds; never negative
    business_time: datetime           # the business time it was moved to (UTC)
    set_at: datetime                  # the real time of the move (UTC)
    set_by: str                       # the staff member's user id
    schema_version: int = 1

    @property
    def offset(self) -> timedelta:
        return self.offset_micros * MICROSECOND


CLOCK_TYPES: dict[str, type] = {"ClockSet": ClockSet}


class ClockBackwards(ValueError):
    """A move that would make business time run back."""

    def __init__(self, current: datetime, wanted: datetime) -> None:
        super().__init__(f"business time is {current.isoformat()}; it never runs back, so it cannot be set to "
                         f"{wanted.isoformat()}")
        self.current, self.wanted = current, wanted


class ClockTooFar(ValueError):
    """A move that would put business time more than MAX_OFFSET ahead of real time."""

    def __init__(self, real: datetime) -> None:
        super().__init__(f"business time may be at most {MAX_OFFSET.days} days ahead of real time "
                         f"({real.isoformat()})")


def move_to(offset: timedelta, real: datetime, moment: datetime, by: str) -> ClockSet:
    """The move that makes business time `moment` at real time `real`, from the current `offset`."""
    if moment.tzinfo is None:
        raise ValueError("a business time needs a time zone")
    moment = moment.astimezone(UTC)
    current = real + offset
    if moment < current:
        raise ClockBackwards(current, moment)
    if moment - real > MAX_OFFSET:
        raise ClockTooFar(real)
    return ClockSet(offset_micros=(moment - real) // MICROSECOND, business_time=moment, set_at=real, set_by=by)


def advance_by(offset: timedelta, real: datetime, duration: timedelta, by: str) -> ClockSet:
    """The move that puts business time `duration` ahead of where it is at real time `real`."""
    if duration < timedelta(0):
        # (the time asked for, bounded so that a huge negative duration cannot underflow the date)
        raise ClockBackwards(real + offset, real + offset + max(duration, -(offset + MAX_OFFSET)))
    if duration > MAX_OFFSET - offset:   # checked without adding: a huge duration would overflow
        raise ClockTooFar(real)
    return move_to(offset, real, real + offset + duration, by)


class ControlledClock:
    """Real time plus the largest offset seen: a move seen late, twice or out of order never runs time back."""

    def __init__(self, real: Callable[[], datetime] = real_now) -> None:
        self._real = real
        self.offset = timedelta(0)
        self.last: ClockSet | None = None    # the move that set the current offset (None: never moved)

    def now(self) -> datetime:
        return self._real() + self.offset

    def real(self) -> datetime:
        return self._real()

    def observe(self, move: ClockSet) -> None:
        if move.offset > self.offset:
            self.offset, self.last = move.offset, move

    def move_to(self, moment: datetime, by: str) -> ClockSet:
        return move_to(self.offset, self._real(), moment, by)

    def advance_by(self, duration: timedelta, by: str) -> ClockSet:
        return advance_by(self.offset, self._real(), duration, by)
