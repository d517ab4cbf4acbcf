"""Savings interest (issue 17 points 1, 6, 7): products staff set, accounts enrolled in them, the interest they earn.

`GET /v1/savings-products`; admins: `POST /v1/admin/savings-products`, `POST /v1/admin/savings-products/{id}/rates`
(only forward). `POST /v1/accounts/{id}/savings` enrols an account (its customer, or staff) from today;
`GET /v1/accounts/{id}/interest` shows what it earned: per month accrued and credited, the latest days. The
close-of-business job (streams/close_of_business.py) accrues and credits; `GET /v1/admin/cob` and `bank cob status`
show how far it is.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from api.authz import unknown_account
from api.deps import Platform, PlatformDep, ViewDep
from api.models import Currency, Identifier
from api.problems import PROBLEM_JSON, Problem
from api.record_desk import ready
from api.routes.auth import caller
from api.routes.loans import RatePercent, RateView, active_loans, business_date
from core.commands import derive_id
from core.lending import accrual_due, parse_rate
from core.loans import LoanError
from core.money import format_amount
from core.savings import (SavingsAccount, SavingsEnrolled, SavingsProductSet, capitalisation_command_id,
                          check_savings_product, enrolment_event_id, progress, savings_product_event_id)

router = APIRouter(tags=["savings"])

_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {404: _PROBLEMS, 409: _PROBLEMS, 422: _PROBLEMS}
RECENT_DAYS = 31


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SavingsProductBody(_Body):
    name: StrictStr = Field(min_length=1, max_length=100)
    currency: Currency
    annual_rate_percent: RatePercent
    rate_effective_on: date | None = Field(None, description="default today; never in the past")
    day_count: Literal["ACT/365F", "ACT/360", "30/360"] = "ACT/365F"


class SavingsRateBody(_Body):
    annual_rate_percent: RatePercent
    effective_on: date


class Enrolment(_Body):
    product_id: Identifier


class SavingsProductView(BaseModel):
    product_id: str
    version: int
    status: str
    name: str
    currency: str
    annual_rate_percent: str = Field(description="the rate in force today")
    rates: list[RateView]
    day_count: str
    capitalisation: str = Field("monthly", description="interest is credited after each month's last day")


class SavingsProductList(BaseModel):
    products: list[SavingsProductView]


class MonthOfInterest(BaseModel):
    month: str
    accrued: str = Field(description="the sum of the month's daily accruals so far")
    days: int
    credited: bool = Field(description="credited to the account (or on its way: the month is fully accrued)")
    command_id: str | None = Field(description="the credit's ledger command, once the month is fully accrued")


class DayOfInterest(BaseModel):
    date: date
    balance: str
    annual_rate_percent: str
    accrued: str


class AccountInterest(BaseModel):
    account_id: str
    product_id: str
    product_name: str
    currency: str
    enrolled_on: date
    accrued_through: date | None = Field(description="the last business date accrued")
    annual_rate_percent: str
    interest_earned: str = Field(description="every daily accrual so far (credited or still to be credited)")
    carried: str = Field(description="the exact sub-minor remainder carried to the next day, numerator/denominator")
    months: list[MonthOfInterest]
    recent_days: list[DayOfInterest]
    business_date: date


class CloseOfBusinessStatus(BaseModel):
    business_date: date
    closing_through: date = Field(description="the last business date that can be closed (yesterday)")
    accounts: int
    accounts_behind: int
    oldest_open_date: date | None = Field(description="the earliest date some account still has to accrue")
    accruals: int
    loans: int = Field(description="active loans, whose interest accrues on the books each business date")
    loans_behind: int = Field(description="active loans with interest earned by the last closed date not accrued")


def _product_view(record: SavingsProductSet, today: date) -> SavingsProductView:
    try:
        rate = str(record.rate_schedule.rate_on(today))
    except LoanError:
        rate = "0"   # its first rate is still to come
    return SavingsProductView(
        product_id=record.product_id, version=record.version, status=record.status, name=record.name,
        currency=record.currency, annual_rate_percent=rate, day_count=record.day_count,
        rates=[RateView(effective_on=date.fromisoformat(r["effective_on"]), annual_rate_percent=r["annual_rate_percent"])
               for r in record.rates])


def _checked(record: SavingsProductSet) -> SavingsProductSet:
    try:
        check_savings_product(record)
    except LoanError as error:
        raise Problem(422, "Invalid product", error.detail, error.reason) from None
    return record


def unknown_savings_product(product_id: str) -> Problem:
    return Problem(404, "Unknown savings product", f"no savings product {product_id}", "unknown_savings_product")


@router.get("/v1/savings-products", response_model=SavingsProductList, name="list_savings_products",
            summary="The savings products an account may earn interest by")
async def list_savings_products(platform: PlatformDep) -> SavingsProductList:
    ready(platform.savings, "savings")
    today = business_date(platform)
    products = [versions[-1] for versions in platform.savings.book.products.values()]
    return SavingsProductList(products=[_product_view(p, today) for p in sorted(products, key=lambda p: p.name)
                                        if p.status == "active" or caller().staff])


@router.get("/v1/savings-products/{product_id}", response_model=SavingsProductView, name="get_savings_product",
            responses=_RESPONSES, summary="One savings product")
async def get_savings_product(product_id: str, platform: PlatformDep) -> SavingsProductView:
    ready(platform.savings, "savings")
    record = platform.savings.book.product(product_id)
    if record is None or (record.status != "active" and not caller().staff):
        raise unknown_savings_product(product_id)
    return _product_view(record, business_date(platform))


@router.post("/v1/admin/savings-products", response_model=SavingsProductView, status_code=201, responses=_RESPONSES,
             name="create_savings_product", summary="Create a savings product (admins)")
async def create_savings_product(body: SavingsProductBody, platform: PlatformDep, idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=200)] = None) -> SavingsProductView:
    ready(platform.savings, "savings")
    principal, today = caller(), business_date(platform)
    product_id = derive_id("savings-product", principal.user_id, idempotency_key) if idempotency_key else \
        str(uuid.uuid4())
    if (existing := platform.savings.book.product(product_id)) is not None:
        return _product_view(existing, today)
    effective = body.rate_effective_on or today
    if effective < today:
        raise Problem(422, "Rate in the past", "rate_effective_on: a rate takes effect today or later", "backdated_rate")
    record = _checked(SavingsProductSet(
        event_id=savings_product_event_id(product_id, 1), product_id=product_id, version=1, change="created",
        status="active", name=body.name.strip(), currency=body.currency,
        rates=[{"effective_on": effective.isoformat(), "annual_rate_percent": body.annual_rate_percent}],
        day_count=body.day_count, set_by=principal.user_id, set_at=platform.time.now()))
    await _publish_product(platform, record)
    return _product_view(record, today)


@router.post("/v1/admin/savings-products/{product_id}/rates", response_model=SavingsProductView,
             responses=_RESPONSES, name="change_savings_rate",
             summary="Change a savings product's rate from a date on (admins; never backwards)")
async def change_savings_rate(product_id: str, body: SavingsRateBody, platform: PlatformDep) -> SavingsProductView:
    async with platform.savings.lock:
        ready(platform.savings, "savings")
        current = platform.savings.book.product(product_id)
        if current is None:
            raise unknown_savings_product(product_id)
        today = business_date(platform)
        try:
            rates = current.rate_schedule.changed(body.effective_on, parse_rate(body.annual_rate_percent), today)
        except LoanError as error:
            raise Problem(422, "Invalid rate change", error.detail, error.reason) from None
        version = current.version + 1
        fields = {f: getattr(current, f) for f in current.__dataclass_fields__}
        record = _checked(SavingsProductSet(**(fields | {
            "event_id": savings_product_event_id(product_id, version), "version": version, "change": "rate_changed",
            "rates": [{"effective_on": r.effective_on.isoformat(), "annual_rate_percent": str(r.annual_rate_percent)}
                      for r in rates.changes], "set_by": caller().user_id, "set_at": platform.time.now()})))
        await _publish_product(platform, record)
    return _product_view(record, today)


async def _publish_product(platform: Platform, record: SavingsProductSet) -> None:
    await platform.savings.publish(record)
    await platform.access.audit.record(f"savings_product_{record.change}", details={
        "product_id": record.product_id, "version": str(record.version),
        "rates": ", ".join(f"{r['annual_rate_percent']}% from {r['effective_on']}" for r in record.rates)})


def _account(platform: Platform, view: Any, account_id: str) -> Any:
    account = view.accounts.get(account_id)
    principal = caller()
    if account is None or (principal.role == "customer" and account.customer_id != principal.customer_id):
        raise unknown_account(account_id)
    return account


@router.post("/v1/accounts/{account_id}/savings", response_model=AccountInterest, status_code=201,
             responses=_RESPONSES, name="enrol_savings",
             summary="Make an account earn a savings product's interest from today")
async def enrol_savings(account_id: str, body: Enrolment, platform: PlatformDep, view: ViewDep) -> AccountInterest:
    async with platform.savings.lock:
        ready(platform.savings, "savings")
        account = _account(platform, view, account_id)
        product = platform.savings.book.product(body.product_id)
        if product is None or product.status != "active":
            raise unknown_savings_product(body.product_id)
        if account.status != "open":
            raise Problem(409, "Account not open", f"account {account_id} is {account.status}", "account_not_open")
        if account.currency != product.currency:
            raise Problem(422, "Currency mismatch", f"the product pays interest in {product.currency}; account "
                          f"{account_id} holds {account.currency}", "currency_mismatch")
        enrolled = platform.savings.book.accounts.get(account_id)
        if enrolled is not None:
            if enrolled.enrolment.product_id != product.product_id:
                raise Problem(409, "Already earning interest", f"account {account_id} earns the interest of "
                              f"{enrolled.enrolment.product_id}", "already_enrolled")
        else:
            await platform.savings.publish(SavingsEnrolled(
                event_id=enrolment_event_id(account_id), account_id=account_id, customer_id=account.customer_id,
                product_id=product.product_id, enrolled_on=business_date(platform).isoformat(),
                enrolled_by=caller().user_id, enrolled_at=platform.time.now()))
            await platform.access.audit.record("savings_enrolled", details={
                "account_id": account_id, "product_id": product.product_id})
    return _interest(platform, platform.savings.book.accounts[account_id])


@router.get("/v1/accounts/{account_id}/interest", response_model=AccountInterest, responses=_RESPONSES,
            name="account_interest", summary="The savings interest an account earned: per month, and its last days")
async def account_interest(account_id: str, platform: PlatformDep, view: ViewDep) -> AccountInterest:
    ready(platform.savings, "savings")
    _account(platform, view, account_id)
    enrolled = platform.savings.book.accounts.get(account_id)
    if enrolled is None:
        raise Problem(404, "Not a savings account", f"account {account_id} earns no savings interest",
                      "not_a_savings_account")
    return _interest(platform, enrolled)


def _interest(platform: Platform, account: SavingsAccount) -> AccountInterest:
    product = platform.savings.book.product(account.enrolment.product_id)
    assert product is not None, "an enrolment names a product on the log"
    currency, today = product.currency, business_date(platform)
    money = lambda minor: format_amount(minor, currency)  # noqa: E731
    last = date.fromisoformat(account.last.accrual_date) if account.last else None
    months: dict[str, list[int]] = {}
    for day, record in sorted(account.accruals.items()):
        months.setdefault(day[:7], []).append(record.accrued)
    days = sorted(account.accruals.values(), key=lambda record: record.accrual_date)[-RECENT_DAYS:]
    return AccountInterest(
        account_id=account.enrolment.account_id, product_id=product.product_id, product_name=product.name,
        currency=currency, enrolled_on=date.fromisoformat(account.enrolment.enrolled_on), accrued_through=last,
        annual_rate_percent=_product_view(product, today).annual_rate_percent,
        interest_earned=money(sum(record.accrued for record in account.accruals.values())),
        carried=str(account.last.carried if account.last else "0/1"),
        months=[MonthOfInterest(month=month, accrued=money(sum(amounts)), days=len(amounts),
                                credited=_month_closed(month, last),
                                command_id=capitalisation_command_id(account.enrolment.account_id, month)
                                if _month_closed(month, last) else None) for month, amounts in months.items()],
        recent_days=[DayOfInterest(date=date.fromisoformat(record.accrual_date), balance=money(record.balance),
                                   annual_rate_percent=record.annual_rate_percent, accrued=money(record.accrued))
                     for record in reversed(days)],
        business_date=today)


def _month_closed(month: str, last: date | None) -> bool:
    return last is not None and (last + timedelta(days=1)).strftime("%Y-%m") > month


@router.get("/v1/admin/cob", response_model=CloseOfBusinessStatus, name="close_of_business_status",
            summary="How far the close-of-business job has accrued (staff)")
async def close_of_business_status(platform: PlatformDep) -> CloseOfBusinessStatus:
    ready(platform.savings, "savings")
    done = progress(platform.savings.book, business_date(platform))
    loans = active_loans(platform)
    return CloseOfBusinessStatus(business_date=done.today, closing_through=done.closing_through,
                                 accounts=done.accounts, accounts_behind=done.accounts_behind,
                                 oldest_open_date=done.oldest_open_date, accruals=done.accruals, loans=len(loans),
                                 loans_behind=sum(accrual_due(loan, done.closing_through) is not None
                                                  for loan in loans))
