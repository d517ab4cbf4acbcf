"""Standing orders: their records on bank.standing-orders, the fold both the API and the scheduler read, and the
scheduler's decision. Pure: records and business time in, records and transfer commands out.

An order is defined by `StandingOrderSet` records (the whole definition each time: created, edited, paused,
resumed, cancelled; the highest version wins). The scheduler (streams/scheduler.py) records what it did with each
occurrence as `StandingOrderOccurrence` records on the same topic, keyed by the order id:

- `submitted`: the occurrence's transfer is on its way to the ledger. Its command id is `occurrence_id(order,
  due date)` (core/schedules.py), so a restart, a second scheduler or a replay proposes the same command, which the
  ledger takes once. A retry is a second command with its own derived id (`retry_command_id`).
- `paid` (the ledger debited the source), `retry_pending` (refused for insufficient funds: tried again at
  BANK_STANDING_ORDER_RETRY_TIME local time on the due day, at once if that moment has passed), `failed` (refused
  again, or refused for another reason), `skipped` (missed while the scheduler was down or the clock jumped, under
  BANK_STANDING_ORDER_CATCH_UP=skip; or due while the order was paused), `reversed` (the credit failed and the
  saga returned the money).

Rules the scheduler keeps:
- An occurrence is due from the start of its local day (`due_at`). One whose local day has already passed when
  the scheduler first sees it due is *late*: paid late (`pay_late`, the default, `late` true on its records) or
  skipped (`skip`). A scheduler cannot tell downtime from a clock moved forward, so both are treated alike.
- Edits take effect from the next run: the definition read when an occurrence is submitted is the one used; the
  rule's dates (frequency, start, day, weekday) cannot be edited (cancel and create another order), so numbering
  and `count` stay those of the rule. Amount, reference, destination, end date and count can.
- Paused: nothing is paid. On resume, the occurrences that fell due during the pause are skipped (`paused`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Literal

from core.commands import Transfer, derive_id
from core.schedules import CatchUpPolicy, Occurrence, Recurrence, due, local_date, next_runs, occurrence_id, zone

OrderStatus = Literal["active", "paused", "cancelled"]
Change = Literal["created", "edited", "paused", "resumed", "cancelled"]
OccurrenceStatus = Literal["submitted", "paid", "retry_pending", "failed", "skipped", "reversed"]
FINAL: tuple[str, ...] = ("paid", "failed", "skipped", "reversed")
INSUFFICIENT_FUNDS = "insufficient_funds"


@dataclass(frozen=True, slots=True, kw_only=True)
class StandingOrderSet:
    """An order's whole definition as of one change (bank.standing-orders, keyed by order id)."""

    event_id: str
    order_id: str
    version: int                      # 1 when created, one more per change
    change: str                       # Change
    status: str                       # OrderStatus
    customer_id: str
    from_account_id: str
    to_account_id: str
    amount: int                       # minor units
    currency: str
    reference: str | None
    frequency: str                    # core.schedules.Frequency
    start_date: str                   # ISO date, in the order's time zone
    end_date: str | None
    count: int | None
    weekday: int | None
    day_of_month: int | None
    time_zone: str
    set_at: datetime                  # business time of the change (UTC)
    set_by: str                       # user id
    schema_version: int = 1

    @property
    def recurrence(self) -> Recurrence:
        return Recurrence(frequency=self.frequency, start=date.fromisoformat(self.start_date),  # type: ignore[arg-type]
                          time_zone=self.time_zone, end=date.fromisoformat(self.end_date) if self.end_date else None,
                          count=self.count, weekday=self.weekday, day_of_month=self.day_of_month)


@dataclass(frozen=True, slots=True, kw_only=True)
class StandingOrderOccurrence:
    """What the scheduler did with one occurrence (bank.standing-orders, keyed by order id)."""

    event_id: str
    order_id: str
    occurrence_id: str                # derived from the order id and the due date
    number: int                       # 1 for the order's first payment
    due_date: str                     # ISO date, in the order's time zone
    status: str                       # OccurrenceStatus
    attempt: int                      # 1, or 2 for the same-day retry
    command_id: str | None            # the transfer's command id (none when skipped)
    amount: int
    currency: str
    late: bool                        # paid after its local day had passed (catch-up)
    reason: str | None
    retry_at: datetime | None         # retry_pending: when the retry is due (UTC)
    recorded_at: datetime             # business time (UTC)
    schema_version: int = 1


STANDING_ORDER_TYPES: dict[str, type] = {"StandingOrderSet": StandingOrderSet,
                                         "StandingOrderOccurrence": StandingOrderOccurrence}
Record = StandingOrderSet | StandingOrderOccurrence


def retry_command_id(occurrence: str) -> str:
    return derive_id("standing-order-retry", occurrence)


def set_event_id(order_id: str, version: int) -> str:
    return derive_id("standing-order-set", order_id, str(version))


def occurrence_event_id(occurrence: str, status: str, attempt: int) -> str:
    return derive_id("standing-order-occurrence", occurrence, status, str(attempt))


# ---------------------------------------------------------------- the fold


@dataclass(slots=True)
class OccurrenceState:
    occurrence_id: str
    number: int
    due_date: date
    status: str
    attempt: int
    command_id: str | None
    amount: int
    late: bool
    reason: str | None
    retry_at: datetime | None


@dataclass(slots=True)
class OrderState:
    definition: StandingOrderSet
    last_due: date | None = None                 # the latest due date handled (submitted or skipped)
    resumed_on: date | None = None               # local date of the last resume: earlier due dates are skipped
    occurrences: dict[str, OccurrenceState] = field(default_factory=dict)   # by occurrence id

    @property
    def status(self) -> str:
        return self.definition.status

    def next_runs(self, n: int) -> list[Occurrence]:
        if self.status == "cancelled":
            return []
        return next_runs(self.definition.recurrence, self.last_due, n)


@dataclass(slots=True)
class Orders:
    """Every order folded from bank.standing-orders (idempotent: a record seen twice changes nothing)."""

    orders: dict[str, OrderState] = field(default_factory=dict)
    commands: dict[str, tuple[str, str]] = field(default_factory=dict)   # command id -> (order id, occurrence id)
    seen: set[str] = field(default_factory=set)

    def apply(self, record: Record) -> None:
        if record.event_id in self.seen:
            return
        self.seen.add(record.event_id)
        if isinstance(record, StandingOrderSet):
            self._define(record)
        else:
            self._occurred(record)

    def _define(self, record: StandingOrderSet) -> None:
        current = self.orders.get(record.order_id)
        if current is None:
            self.orders[record.order_id] = OrderState(record)
        elif record.version > current.definition.version:
            current.definition = record
            if record.change == "resumed":
                current.resumed_on = local_date(record.set_at, record.time_zone)

    def _occurred(self, record: StandingOrderOccurrence) -> None:
        order = self.orders.get(record.order_id)
        if order is None:
            return   # a definition always comes first on the order's partition
        day = date.fromisoformat(record.due_date)
        if order.last_due is None or day > order.last_due:
            order.last_due = day
        known = order.occurrences.get(record.occurrence_id)
        if known is not None and _rank(known) > _rank_of(record.status, record.attempt):
            return   # a stale record (a second scheduler's, or a replay): the later state stays
        order.occurrences[record.occurrence_id] = OccurrenceState(
            record.occurrence_id, record.number, day, record.status, record.attempt, record.command_id,
            record.amount, record.late, record.reason, record.retry_at)
        if record.command_id:
            self.commands[record.command_id] = (record.order_id, record.occurrence_id)

    def of_customer(self, customer_id: str) -> list[OrderState]:
        return [order for order in self.orders.values() if order.definition.customer_id == customer_id]


def _rank_of(status: str, attempt: int) -> int:
    order = {"submitted": 0, "retry_pending": 1, "paid": 2, "failed": 2, "skipped": 2, "reversed": 3}
    return attempt * 10 + order.get(status, 0)


def _rank(state: OccurrenceState) -> int:
    return _rank_of(state.status, state.attempt)


# ---------------------------------------------------------------- the scheduler's decision


@dataclass(frozen=True, slots=True)
class SchedulerPolicy:
    catch_up: CatchUpPolicy = "pay_late"
    retry_time: time = time(14, 0)          # local time of the same-day retry after insufficient funds


@dataclass(frozen=True, slots=True)
class Submit:
    """Send `command` to the ledger, then record `record` (submitted)."""

    command: Transfer
    record: StandingOrderOccurrence


def plan(orders: Orders, now: datetime, policy: SchedulerPolicy) -> list[Submit | StandingOrderOccurrence]:
    """What is due at business time `now`: transfers to submit (with their records) and skips to record."""
    actions: list[Submit | StandingOrderOccurrence] = []
    for order in orders.orders.values():
        actions.extend(_plan_order(order, now, policy))
    return actions


def _plan_order(order: OrderState, now: datetime, policy: SchedulerPolicy) -> Iterator[Submit | StandingOrderOccurrence]:
    definition = order.definition
    for pending in order.occurrences.values():   # retries due (an order cancelled meanwhile is not retried)
        if pending.status == "retry_pending" and definition.status == "active" and pending.retry_at is not None \
                and pending.retry_at <= now:
            yield _submit(definition, pending.number, pending.due_date, 2, pending.late, now)
    if definition.status != "active":
        return
    today = local_date(now, definition.time_zone)
    for occurrence in due(definition.recurrence, order.last_due, now):
        if order.resumed_on is not None and occurrence.due_date < order.resumed_on:
            yield _record(definition, occurrence.number, occurrence.due_date, "skipped", 1, None, now,
                          reason="paused")
        elif occurrence.due_date < today and policy.catch_up == "skip":
            yield _record(definition, occurrence.number, occurrence.due_date, "skipped", 1, None, now,
                          reason="missed", late=True)
        else:
            yield _submit(definition, occurrence.number, occurrence.due_date, 1, occurrence.due_date < today, now)


def _submit(definition: StandingOrderSet, number: int, day: date, attempt: int, late: bool,
            now: datetime) -> Submit:
    occurrence = occurrence_id(definition.order_id, day)
    command_id = occurrence if attempt == 1 else retry_command_id(occurrence)
    command = Transfer(command_id=command_id, account_id=definition.from_account_id, issued_at=now,
                       correlation_id=command_id, to_account_id=definition.to_account_id, amount=definition.amount,
                       currency=definition.currency,
                       reference=definition.reference or f"standing order {definition.order_id}")
    return Submit(command, _record(definition, number, day, "submitted", attempt, command_id, now, late=late))


def _record(definition: StandingOrderSet, number: int, day: date, status: str, attempt: int,
            command_id: str | None, now: datetime, *, reason: str | None = None, late: bool = False,
            retry_at: datetime | None = None) -> StandingOrderOccurrence:
    occurrence = occurrence_id(definition.order_id, day)
    return StandingOrderOccurrence(
        event_id=occurrence_event_id(occurrence, status, attempt), order_id=definition.order_id,
        occurrence_id=occurrence, number=number, due_date=day.isoformat(), status=status, attempt=attempt,
        command_id=command_id, amount=definition.amount, currency=definition.currency, late=late, reason=reason,
        retry_at=retry_at, recorded_at=now)


# The ledger's answer to an occurrence's transfer, as the scheduler reads it from bank.ledger.events.
LedgerAnswer = Literal["debited", "rejected", "reversed"]


def outcome(orders: Orders, command_id: str, answer: LedgerAnswer, reason: str | None, now: datetime,
            policy: SchedulerPolicy) -> StandingOrderOccurrence | None:
    """The record an occurrence's transfer outcome makes (None: not ours, or already recorded)."""
    found = orders.commands.get(command_id)
    if found is None:
        return None
    order = orders.orders[found[0]]
    state = order.occurrences[found[1]]
    definition = replace(order.definition, amount=state.amount)
    attempt = 1 if command_id == state.occurrence_id else 2
    if state.attempt > attempt or state.status in FINAL and answer != "reversed":
        return None
    if answer == "debited":
        return _record(definition, state.number, state.due_date, "paid", attempt, command_id, now, late=state.late)
    if answer == "reversed":
        if state.status == "reversed":
            return None
        return _record(definition, state.number, state.due_date, "reversed", attempt, command_id, now,
                       late=state.late, reason=reason)
    if state.status == "retry_pending":
        return None
    if reason == INSUFFICIENT_FUNDS and attempt == 1:
        retry_at = retry_moment(state.due_date, order.definition.time_zone, policy.retry_time)
        return _record(definition, state.number, state.due_date, "retry_pending", 1, command_id, now,
                       late=state.late, reason=reason, retry_at=max(retry_at, now))
    return _record(definition, state.number, state.due_date, "failed", attempt, command_id, now,
                   late=state.late, reason=reason)


def retry_moment(day: date, time_zone: str, at: time) -> datetime:
    """The UTC moment of `at` local time on `day`."""
    return datetime.combine(day, at, zone(time_zone)).astimezone(UTC)


def fold(records: Iterable[Record]) -> Orders:
    orders = Orders()
    for record in records:
        orders.apply(record)
    return orders
