"""Standing orders (issue 16, point 3): scheduled and recurring transfers a customer sets up once.

`POST /v1/standing-orders` from one of the customer's accounts to an account of this bank (by id, or one of their
payees whose IBAN is ours: payments to other banks' IBANs are not part of this yet); one-off on a future date or
recurring (daily, weekly on a weekday, monthly on a day, yearly), with a start date and an end date or a number
of payments; dates in the customer's time zone (BANK_CUSTOMER_TIME_ZONE unless the order names one). `GET` shows
the next runs and every occurrence so far; `PATCH` edits (from the next run) and pauses or resumes; `DELETE`
cancels. Every change is a `StandingOrderSet` record on bank.standing-orders and audit-recorded; the scheduler
(streams/scheduler.py) pays the occurrences. Another customer's order answers like an unknown one (404).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from api.authz import unknown_account, unknown_customer
from api.deps import Platform, PlatformDep, ViewDep
from api.ibans import external_iban, parse_iban, unknown_iban
from api.ledger_view import LedgerView
from api.models import Currency, DecimalString, Identifier, Reference
from api.problems import PROBLEM_JSON, Problem
from api.routes.auth import caller
from core.commands import derive_id
from core.ledger import AccountState
from core.money import MoneyError, format_amount, parse_amount
from core.schedules import Recurrence, RecurrenceError, local_date
from core.standing_orders import OrderState, StandingOrderSet, set_event_id

router = APIRouter(prefix="/v1/standing-orders", tags=["standing orders"])

_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {404: _PROBLEMS, 409: _PROBLEMS, 422: _PROBLEMS}
NEXT_RUNS = 5


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewStandingOrder(_Body):
    """To an account of this bank, by id (`to_account_id`) or one of the customer's payees (`payee_id`)."""

    from_account_id: Identifier
    to_account_id: Identifier | None = None
    payee_id: Identifier | None = None
    amount: DecimalString
    currency: Currency
    reference: Reference | None = None
    frequency: Literal["once", "daily", "weekly", "monthly", "yearly"] = Field(
        description="once: a one-off payment on start_date")
    start_date: date = Field(description="the first possible due date, today or later (the order's time zone)")
    end_date: date | None = Field(None, description="the last possible due date, inclusive")
    count: int | None = Field(None, ge=1, le=10000, description="how many payments in all")
    weekday: int | None = Field(None, ge=0, le=6, description="weekly: 0 Monday .. 6 Sunday (default: start's)")
    day_of_month: int | None = Field(None, ge=1, le=31, description="monthly: 1..31 (default: start's day); in a "
                                     "shorter month the payment is on its last day")
    time_zone: StrictStr | None = Field(None, max_length=64, description="IANA zone of the due dates "
                                        "(default BANK_CUSTOMER_TIME_ZONE)", examples=["Europe/Berlin"])

    @model_validator(mode="after")
    def _check(self) -> NewStandingOrder:
        if [self.to_account_id, self.payee_id].count(None) != 1:
            raise PydanticCustomError("one_destination", "name the destination with exactly one of to_account_id "
                                                         "and payee_id")
        try:
            parse_amount(self.amount, self.currency)
        except MoneyError as error:
            raise PydanticCustomError(error.reason, f"amount: {error.detail}") from None
        return self


class StandingOrderChange(_Body):
    """What changes from the next run; the rule's dates (frequency, start, day, weekday) cannot change: cancel the
    order and create another. `status` pauses (`paused`) or resumes (`active`) it."""

    amount: DecimalString | None = None
    reference: Reference | None = None
    to_account_id: Identifier | None = None
    end_date: date | None = None
    count: int | None = Field(None, ge=1, le=10000)
    status: Literal["active", "paused"] | None = None


class Run(BaseModel):
    number: int
    due_date: date
    due_at: datetime


class OccurrenceView(BaseModel):
    occurrence_id: str
    number: int
    due_date: date
    status: str = Field(description="submitted, paid, retry_pending, failed, skipped or reversed")
    attempt: int
    command_id: str | None
    amount: str
    late: bool
    reason: str | None
    retry_at: datetime | None


class StandingOrderView(BaseModel):
    order_id: str
    customer_id: str
    status: str = Field(description="active, paused or cancelled")
    version: int
    from_account_id: str
    to_account_id: str
    amount: str
    currency: str
    reference: str | None
    frequency: str
    start_date: date
    end_date: date | None
    count: int | None
    weekday: int | None
    day_of_month: int | None
    time_zone: str
    next_runs: list[Run]
    occurrences: list[OccurrenceView]


class StandingOrderList(BaseModel):
    customer_id: str
    today: date = Field(description="the bank's business date in time_zone: the earliest start_date an order may have")
    time_zone: str = Field(description="the default time zone of due dates (BANK_CUSTOMER_TIME_ZONE)")
    standing_orders: list[StandingOrderView]


def _view(order: OrderState, runs: int = NEXT_RUNS) -> StandingOrderView:
    d = order.definition
    return StandingOrderView(
        order_id=d.order_id, customer_id=d.customer_id, status=d.status, version=d.version,
        from_account_id=d.from_account_id, to_account_id=d.to_account_id, amount=format_amount(d.amount, d.currency),
        currency=d.currency, reference=d.reference, frequency=d.frequency, start_date=date.fromisoformat(d.start_date),
        end_date=date.fromisoformat(d.end_date) if d.end_date else None, count=d.count, weekday=d.weekday,
        day_of_month=d.day_of_month, time_zone=d.time_zone,
        next_runs=[Run(number=o.number, due_date=o.due_date, due_at=o.due_at) for o in order.next_runs(runs)],
        occurrences=[OccurrenceView(occurrence_id=o.occurrence_id, number=o.number, due_date=o.due_date,
                                    status=o.status, attempt=o.attempt, command_id=o.command_id,
                                    amount=format_amount(o.amount, d.currency), late=o.late, reason=o.reason,
                                    retry_at=o.retry_at)
                     for o in sorted(order.occurrences.values(), key=lambda o: o.due_date)])


def unknown_order(order_id: str) -> Problem:
    return Problem(404, "Unknown standing order", f"no standing order {order_id}", "unknown_standing_order")


def _ready(platform: Platform) -> None:
    book = platform.standing_orders
    if book.failure is not None or not book.caught_up.is_set():
        problem = Problem(503, "Starting up", "the API is still reading the standing orders; retry in a moment",
                          "not_ready")
        problem.headers = {"Retry-After": "1"}
        raise problem


def _own(platform: Platform, order_id: str) -> OrderState:
    """The caller's order (staff: any); another customer's is unknown."""
    _ready(platform)
    order = platform.standing_orders.orders.orders.get(order_id)
    principal = caller()
    if order is None or (principal.role == "customer" and order.definition.customer_id != principal.customer_id):
        raise unknown_order(order_id)
    return order


def _own_account(view: LedgerView, account_id: str, customer_id: str) -> AccountState:
    account = view.accounts.get(account_id)
    if account is None or account.customer_id != customer_id:
        raise unknown_account(account_id)
    if account.status != "open":
        raise Problem(409, "Account not open", f"account {account_id} is {account.status}", "account_not_open")
    return account


def _destination(view: LedgerView, account_id: str, currency: str, source: AccountState) -> AccountState:
    account = view.accounts.get(account_id)
    if account is None:
        raise unknown_account(account_id)
    if account.account_id == source.account_id:
        raise Problem(422, "Same account", "a standing order pays another account than its source", "same_account")
    for each in (source, account):
        if each.currency != currency:
            raise Problem(422, "Currency mismatch", f"account {each.account_id} holds {each.currency}; a standing "
                          f"order moves money between accounts of its currency", "currency_mismatch")
    return account


async def _payee_account(platform: Platform, view: LedgerView, payee_id: str, customer_id: str) -> str:
    payee = await platform.payees.get(payee_id, customer_id)
    if payee is None:
        raise Problem(404, "Unknown payee", f"no payee {payee_id}", "unknown_payee")
    iban = parse_iban(view, payee.iban)
    if not view.numbering.is_ours(iban):
        raise external_iban(iban)
    account = view.account_for_iban(iban)
    if account is None:
        raise unknown_iban(payee.iban)
    return account.account_id


HORIZON_YEARS = 100   # business time itself is never more than 100 years ahead (core.clock.MAX_OFFSET)


def _within_horizon(start: date, end: date | None, today: date) -> None:
    """Dates a schedule can reach without leaving the calendar (year 9999) while it computes its next runs."""
    limit = date(min(today.year + HORIZON_YEARS, 9000), 1, 1)
    for name, day in (("start_date", start), ("end_date", end)):
        if day is not None and day >= limit:
            raise Problem(422, "Too far ahead", f"{name}: {day} is {HORIZON_YEARS} years or more ahead",
                          "date_too_far")


def _recurrence(definition: StandingOrderSet) -> Recurrence:
    try:
        return definition.recurrence
    except RecurrenceError as error:
        raise Problem(422, "Invalid schedule", str(error), "invalid_schedule") from None


@router.post("", response_model=StandingOrderView, status_code=201, name="create_standing_order",
             summary="Set up a standing order (one-off on a future date, or recurring)", responses=_RESPONSES)
async def create_standing_order(body: NewStandingOrder, platform: PlatformDep, view: ViewDep,
                                idempotency_key: Annotated[str | None, Header(
                                    alias="Idempotency-Key", max_length=200,
                                    description="a retry with the same key returns the order made the first time")
                                ] = None) -> StandingOrderView:
    _ready(platform)
    principal = caller()
    customer_id = principal.customer_id
    assert customer_id is not None, "api/authz.py admits only customers here"
    # The key, scoped by the caller, names the order: a retry finds the order the first attempt made.
    order_id = derive_id("standing-order", principal.user_id, idempotency_key) if idempotency_key else \
        str(uuid.uuid4())
    if (existing := platform.standing_orders.orders.orders.get(order_id)) is not None:
        return _view(existing)
    source = _own_account(view, body.from_account_id, customer_id)
    to_account_id = body.to_account_id or await _payee_account(platform, view, str(body.payee_id), customer_id)
    _destination(view, to_account_id, body.currency, source)
    time_zone = body.time_zone or platform.settings.customer_time_zone
    definition = StandingOrderSet(
        event_id=set_event_id(order_id, 1), order_id=order_id, version=1, change="created", status="active",
        customer_id=customer_id, from_account_id=source.account_id, to_account_id=to_account_id,
        amount=parse_amount(body.amount, body.currency), currency=body.currency, reference=body.reference,
        frequency=body.frequency, start_date=body.start_date.isoformat(),
        end_date=body.end_date.isoformat() if body.end_date else None, count=body.count, weekday=body.weekday,
        day_of_month=body.day_of_month, time_zone=time_zone, set_at=platform.time.now(), set_by=principal.user_id)
    recurrence = _recurrence(definition)
    today = local_date(platform.time.now(), recurrence.zone)
    if body.start_date < today:
        raise Problem(422, "Start in the past", f"start_date {body.start_date} is before today ({today} in "
                      f"{time_zone})", "start_in_the_past")
    _within_horizon(body.start_date, body.end_date, today)
    await platform.standing_orders.publish(definition)
    await _audit(platform, definition)
    return _view(platform.standing_orders.orders.orders[order_id])


@router.get("", response_model=StandingOrderList, name="list_standing_orders", responses=_RESPONSES,
            summary="A customer's standing orders with their next runs (staff: ?customer_id=)")
async def list_standing_orders(platform: PlatformDep, customer_id: Annotated[
        str | None, Query(max_length=64, description="staff: whose")] = None) -> StandingOrderList:
    _ready(platform)
    principal = caller()
    if principal.role == "customer":
        if customer_id is not None and customer_id != principal.customer_id:
            raise unknown_customer(customer_id)
        customer_id = principal.customer_id
    if customer_id is None:
        raise Problem(422, "Invalid request", "customer_id: staff name the customer whose orders to list", "missing",
                      errors=[{"loc": ["query", "customer_id"], "type": "missing", "msg": "required for staff"}])
    orders = platform.standing_orders.orders.of_customer(customer_id)
    zone = platform.settings.customer_time_zone
    return StandingOrderList(customer_id=customer_id, today=local_date(platform.time.now(), zone), time_zone=zone,
                             standing_orders=[_view(o) for o in orders])


@router.get("/{order_id}", response_model=StandingOrderView, name="get_standing_order", responses=_RESPONSES,
            summary="One standing order: its next runs and every occurrence so far")
async def get_standing_order(order_id: str, platform: PlatformDep,
                             runs: Annotated[int, Query(ge=0, le=100, description="how many next runs")] = NEXT_RUNS,
                             ) -> StandingOrderView:
    return _view(_own(platform, order_id), runs)


@router.patch("/{order_id}", response_model=StandingOrderView, name="update_standing_order", responses=_RESPONSES,
              summary="Edit a standing order from its next run; pause or resume it")
async def update_standing_order(order_id: str, body: StandingOrderChange, platform: PlatformDep,
                                view: ViewDep) -> StandingOrderView:
    async with platform.standing_orders.lock:
        order = _own(platform, order_id)
        current = order.definition
        if current.status == "cancelled":
            raise Problem(409, "Cancelled", f"standing order {order_id} is cancelled", "standing_order_cancelled")
        changes: dict[str, Any] = {}
        if body.amount is not None:
            try:
                changes["amount"] = parse_amount(body.amount, current.currency)
            except MoneyError as error:
                raise Problem(422, "Invalid amount", f"amount: {error.detail}", error.reason) from None
        if body.reference is not None:
            changes["reference"] = body.reference
        if body.to_account_id is not None:
            source = view.accounts[current.from_account_id]
            changes["to_account_id"] = _destination(view, body.to_account_id, current.currency, source).account_id
        if body.end_date is not None:
            _within_horizon(date.fromisoformat(current.start_date), body.end_date,
                            local_date(platform.time.now(), current.time_zone))
            changes["end_date"] = body.end_date.isoformat()
        if body.count is not None:
            changes["count"] = body.count
        change = "edited"
        if body.status is not None and body.status != current.status:
            changes["status"], change = body.status, "paused" if body.status == "paused" else "resumed"
        fields = {f: getattr(current, f) for f in current.__dataclass_fields__} | changes
        version = current.version + 1
        updated = StandingOrderSet(**(fields | {"event_id": set_event_id(order_id, version), "version": version,
                                                "change": change, "set_at": platform.time.now(),
                                                "set_by": caller().user_id}))
        _recurrence(updated)
        await platform.standing_orders.publish(updated)
    await _audit(platform, updated)
    return _view(platform.standing_orders.orders.orders[order_id])


@router.delete("/{order_id}", status_code=204, name="cancel_standing_order", responses=_RESPONSES,
               summary="Cancel a standing order (no further runs; what was paid stays paid)")
async def cancel_standing_order(order_id: str, platform: PlatformDep) -> Response:
    async with platform.standing_orders.lock:
        current = _own(platform, order_id).definition
        if current.status != "cancelled":
            version = current.version + 1
            fields = {f: getattr(current, f) for f in current.__dataclass_fields__}
            cancelled = StandingOrderSet(**(fields | {
                "event_id": set_event_id(order_id, version), "version": version, "change": "cancelled",
                "status": "cancelled", "set_at": platform.time.now(), "set_by": caller().user_id}))
            await platform.standing_orders.publish(cancelled)
            await _audit(platform, cancelled)
    return Response(status_code=204)


async def _audit(platform: Platform, definition: StandingOrderSet) -> None:
    await platform.access.audit.record(f"standing_order_{definition.change}", details={
        "order_id": definition.order_id, "customer_id": definition.customer_id, "version": str(definition.version),
        "status": definition.status})

