"""Loans (issue 17): products staff set, applications customers make, staff decisions, and loans repaid.

Customers: `GET /v1/loan-products` (what they may apply for), `POST /v1/loans` (apply), `GET /v1/loans[/{id}]`
(status, terms, schedule with what is paid, repayments, arrears), `POST /v1/loans/{id}/withdraw` (before a
decision), `POST /v1/loans/{id}/offer` (accept or decline a counter-offer), `POST /v1/loans/{id}/repayments`
(repay from the loan's account), `GET /v1/loans/{id}/payoff-quote` and `POST /v1/loans/{id}/payoff` (repay it all
today). Another customer's loan answers like an unknown one (404).

Staff: `/v1/admin/loan-products` (admins set products and change rates, only forward), `GET /v1/loans` with
filters (the application queue: `?status=in_review`), each application's assessment, `POST
/v1/admin/loans/{id}/decision` (analysts and admins: approve, counter-offer, reject; above
BANK_LOAN_SECOND_APPROVAL_THRESHOLD(S) two of them), `GET /v1/admin/loans/portfolio[.csv]`.

Records go to bank.loans and the audit trail; money moves on the ledger (the servicer pays approved loans out and
collects instalments; repayments here are commands like any other, idempotent by key).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from api.authz import unknown_account, unknown_customer
from api.csv_export import csv_line, csv_response
from api.deps import Platform, PlatformDep, ViewDep
from api.models import Currency, DecimalString, Identifier
from api.problems import PROBLEM_JSON, Problem
from api.record_desk import ready
from api.routes.auth import caller
from api.routes.commands import IdempotencyKey, Wait, _envelope, answered_before, submit
from core import commands as c
from core.commands import derive_id
from core.lending import (LOAN_STATUSES, Loan, LoanApplicantAnswered, LoanApplied, LoanProductSet,
                          LoanReviewed, LoanState, RepaymentParts, check_product, check_review, disbursement_command_id,
                          loan_event_id, loan_of, parse_rate, payoff_quote, portfolio, prepayment_parts, product_event_id,
                          repayment_parts)
from core.loans import LoanError, schedule
from core.money import MoneyError, amounts_per_currency, format_amount, parse_amount
from core.schedules import local_date

router = APIRouter(tags=["loans"])

_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {404: _PROBLEMS, 409: _PROBLEMS, 422: _PROBLEMS}
RatePercent = Annotated[StrictStr, Field(pattern=r"^\d{1,3}(\.\d{1,6})?$", examples=["7.9"],
                                         description="a nominal annual rate, decimal percent")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- products


class LoanProductBody(_Body):
    name: StrictStr = Field(min_length=1, max_length=100)
    currency: Currency
    principal_min: DecimalString
    principal_max: DecimalString
    term_min: int = Field(ge=1, le=600)
    term_max: int = Field(ge=1, le=600)
    annual_rate_percent: RatePercent = Field(description="the rate from `rate_effective_on` (default today)")
    rate_effective_on: date | None = None
    amortisation: Literal["equal_instalments", "equal_principal"] = "equal_instalments"
    frequency: Literal["monthly", "fortnightly", "weekly"] = "monthly"
    day_count: Literal["ACT/365F", "ACT/360", "30/360"] = "ACT/365F"
    grace_on_principal: int = Field(0, ge=0, le=599)
    late_fee: DecimalString = "0"
    late_fee_percent: RatePercent = "0"
    origination_fee: DecimalString = "0"
    origination_fee_percent: RatePercent = "0"
    origination_fee_on: Literal["disbursement", "first_instalment"] = "disbursement"


class LoanProductChange(_Body):
    """What changes; the currency and the rate history cannot (a rate changes with POST .../rates)."""

    name: StrictStr | None = Field(None, min_length=1, max_length=100)
    principal_min: DecimalString | None = None
    principal_max: DecimalString | None = None
    term_min: int | None = Field(None, ge=1, le=600)
    term_max: int | None = Field(None, ge=1, le=600)
    late_fee: DecimalString | None = None
    late_fee_percent: RatePercent | None = None
    origination_fee: DecimalString | None = None
    origination_fee_percent: RatePercent | None = None
    status: Literal["active", "retired"] | None = None


class RateChangeBody(_Body):
    annual_rate_percent: RatePercent
    effective_on: date = Field(description="today or later, after the product's latest change: rates never change "
                                           "backwards")


class RateView(BaseModel):
    effective_on: date
    annual_rate_percent: str


class LoanProductView(BaseModel):
    product_id: str
    version: int
    status: str
    name: str
    currency: str
    principal_min: str
    principal_max: str
    term_min: int
    term_max: int
    annual_rate_percent: str = Field(description="the rate in force today")
    rates: list[RateView]
    amortisation: str
    frequency: str
    day_count: str
    grace_on_principal: int
    late_fee: str
    late_fee_percent: str
    origination_fee: str
    origination_fee_percent: str
    origination_fee_on: str
    set_by: str
    set_at: datetime


class LoanProductList(BaseModel):
    products: list[LoanProductView]


def _product_view(record: LoanProductSet, today: date) -> LoanProductView:
    money = lambda minor: format_amount(minor, record.currency)  # noqa: E731
    try:
        rate = str(record.rate_schedule.rate_on(today))
    except LoanError:
        rate = record.rates[0]["annual_rate_percent"]   # its first rate is still to come
    return LoanProductView(
        product_id=record.product_id, version=record.version, status=record.status, name=record.name,
        currency=record.currency, principal_min=money(record.principal_min), principal_max=money(record.principal_max),
        term_min=record.term_min, term_max=record.term_max, annual_rate_percent=rate,
        rates=[RateView(effective_on=date.fromisoformat(r["effective_on"]), annual_rate_percent=r["annual_rate_percent"])
               for r in record.rates],
        amortisation=record.amortisation, frequency=record.frequency, day_count=record.day_count,
        grace_on_principal=record.grace_on_principal, late_fee=money(record.late_fee_flat),
        late_fee_percent=record.late_fee_percent, origination_fee=money(record.origination_fee_flat),
        origination_fee_percent=record.origination_fee_percent, origination_fee_on=record.origination_fee_on,
        set_by=record.set_by, set_at=record.set_at)


def _ready(platform: Platform) -> None:
    ready(platform.loans, "loans")


def business_date(platform: Platform) -> date:
    """Today in the bank's time zone, by business time: what schedules, due dates and accruals count by."""
    return local_date(platform.time.now(), platform.settings.customer_time_zone)


def minor_units(text: str, currency: str, field: str) -> int:
    """A decimal string of the request as minor units, or 422 naming the field."""
    try:
        return parse_amount(text, currency, allow_zero=True)
    except MoneyError as error:
        raise Problem(422, "Invalid amount", f"{field}: {error.detail}", error.reason) from None


def _checked(record: LoanProductSet) -> LoanProductSet:
    try:
        check_product(record)
    except LoanError as error:
        raise Problem(422, "Invalid product", error.detail, error.reason) from None
    return record


def unknown_product(product_id: str) -> Problem:
    return Problem(404, "Unknown loan product", f"no loan product {product_id}", "unknown_loan_product")


@router.get("/v1/loan-products", response_model=LoanProductList, name="list_loan_products",
            summary="The loan products customers may apply for (staff: retired ones too, ?all=true)")
async def list_loan_products(platform: PlatformDep, all: Annotated[bool, Query(  # noqa: A002
        description="staff: retired products too")] = False) -> LoanProductList:
    _ready(platform)
    today, staff = business_date(platform), caller().staff
    products = [versions[-1] for versions in platform.loans.book.products.values()]
    return LoanProductList(products=[_product_view(p, today) for p in sorted(products, key=lambda p: p.name)
                                     if p.status == "active" or (all and staff)])


@router.get("/v1/loan-products/{product_id}", response_model=LoanProductView, name="get_loan_product",
            responses=_RESPONSES, summary="One loan product (customers: an active one; staff: retired ones too)")
async def get_loan_product(product_id: str, platform: PlatformDep) -> LoanProductView:
    record = _current_product(platform, product_id)
    if record.status != "active" and not caller().staff:
        raise unknown_product(product_id)   # what customers cannot apply for is not theirs to see
    return _product_view(record, business_date(platform))


@router.post("/v1/admin/loan-products", response_model=LoanProductView, status_code=201, responses=_RESPONSES,
             name="create_loan_product", summary="Create a loan product (admins)")
async def create_loan_product(body: LoanProductBody, platform: PlatformDep, idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=200)] = None) -> LoanProductView:
    _ready(platform)
    principal, today = caller(), business_date(platform)
    product_id = derive_id("loan-product", principal.user_id, idempotency_key) if idempotency_key else \
        str(uuid.uuid4())
    if (existing := platform.loans.book.product(product_id)) is not None:
        return _product_view(existing, today)
    effective = body.rate_effective_on or today
    if effective < today:
        raise Problem(422, "Rate in the past", "rate_effective_on: a rate takes effect today or later",
                      "backdated_rate")
    record = _checked(LoanProductSet(
        event_id=product_event_id(product_id, 1), product_id=product_id, version=1, change="created",
        status="active", name=body.name.strip(), currency=body.currency,
        principal_min=minor_units(body.principal_min, body.currency, "principal_min"),
        principal_max=minor_units(body.principal_max, body.currency, "principal_max"), term_min=body.term_min,
        term_max=body.term_max, rates=[{"effective_on": effective.isoformat(),
                                        "annual_rate_percent": body.annual_rate_percent}],
        amortisation=body.amortisation, frequency=body.frequency, day_count=body.day_count,
        grace_on_principal=body.grace_on_principal, late_fee_flat=minor_units(body.late_fee, body.currency, "late_fee"),
        late_fee_percent=body.late_fee_percent,
        origination_fee_flat=minor_units(body.origination_fee, body.currency, "origination_fee"),
        origination_fee_percent=body.origination_fee_percent, origination_fee_on=body.origination_fee_on,
        set_by=principal.user_id, set_at=platform.time.now()))
    await _publish_product(platform, record)
    return _product_view(record, today)


def _current_product(platform: Platform, product_id: str) -> LoanProductSet:
    _ready(platform)
    record = platform.loans.book.product(product_id)
    if record is None:
        raise unknown_product(product_id)
    return record


def _next_version(current: LoanProductSet, change: str, platform: Platform, **changes: Any) -> LoanProductSet:
    fields = {f: getattr(current, f) for f in current.__dataclass_fields__} | changes
    version = current.version + 1
    return _checked(LoanProductSet(**(fields | {
        "event_id": product_event_id(current.product_id, version), "version": version, "change": change,
        "set_by": caller().user_id, "set_at": platform.time.now()})))


@router.put("/v1/admin/loan-products/{product_id}", response_model=LoanProductView, responses=_RESPONSES,
            name="update_loan_product", summary="Change a loan product's ranges, fees or name, or retire it (admins)")
async def update_loan_product(product_id: str, body: LoanProductChange, platform: PlatformDep) -> LoanProductView:
    async with platform.loans.lock:
        current = _current_product(platform, product_id)
        changes: dict[str, Any] = {}
        for name in ("principal_min", "principal_max", "late_fee", "origination_fee"):
            if (value := getattr(body, name)) is not None:
                column = {"late_fee": "late_fee_flat", "origination_fee": "origination_fee_flat"}.get(name, name)
                changes[column] = minor_units(value, current.currency, name)
        for name in ("name", "term_min", "term_max", "late_fee_percent", "origination_fee_percent", "status"):
            if (value := getattr(body, name)) is not None:
                changes[name] = value
        change = "retired" if changes.get("status") == "retired" and current.status != "retired" else "edited"
        record = _next_version(current, change, platform, **changes)
        await _publish_product(platform, record)
    return _product_view(record, business_date(platform))


@router.post("/v1/admin/loan-products/{product_id}/rates", response_model=LoanProductView, responses=_RESPONSES,
             name="change_loan_rate", summary="Change a product's rate from a date on (admins; never backwards)")
async def change_loan_rate(product_id: str, body: RateChangeBody, platform: PlatformDep) -> LoanProductView:
    async with platform.loans.lock:
        current = _current_product(platform, product_id)
        today = business_date(platform)
        try:
            rates = current.rate_schedule.changed(body.effective_on, parse_rate(body.annual_rate_percent), today)
        except LoanError as error:
            raise Problem(422, "Invalid rate change", error.detail, error.reason) from None
        record = _next_version(current, "rate_changed", platform, rates=[
            {"effective_on": r.effective_on.isoformat(), "annual_rate_percent": str(r.annual_rate_percent)}
            for r in rates.changes])
        await _publish_product(platform, record)
    return _product_view(record, today)


async def _publish_product(platform: Platform, record: LoanProductSet) -> None:
    await platform.loans.publish(record)
    await platform.access.audit.record(f"loan_product_{record.change}", details={
        "product_id": record.product_id, "version": str(record.version), "status": record.status,
        "rates": ", ".join(f"{r['annual_rate_percent']}% from {r['effective_on']}" for r in record.rates)})


# ---------------------------------------------------------------- loans


class LoanApplication(_Body):
    product_id: Identifier
    account_id: Identifier = Field(description="your account to pay the loan into and repay it from, in the "
                                               "product's currency")
    amount: DecimalString
    term: int = Field(ge=1, le=600, description="number of instalments")
    purpose: StrictStr = Field(min_length=1, max_length=200)


class Decision(_Body):
    decision: Literal["approve", "counter_offer", "reject"]
    reason: StrictStr | None = Field(None, max_length=500, description="required to reject; the customer reads it")
    amount: DecimalString | None = Field(None, description="approve or counter-offer: the principal (default: "
                                                           "the current terms or the application's)")
    term: int | None = Field(None, ge=1, le=600)
    annual_rate_percent: RatePercent | None = Field(None, description="default: the product's rate today")


class WriteOff(_Body):
    reason: StrictStr = Field(min_length=1, max_length=500, description="why the loan will not be collected")


class WrittenOffView(BaseModel):
    principal: str
    interest: str = Field(description="interest accrued and not paid, written off with the principal")
    reason: str
    written_off_by: str | None
    written_off_at: datetime


class OfferAnswer(_Body):
    accept: bool


class RepaymentBody(_Body):
    amount: DecimalString


class PrepaymentBody(_Body):
    amount: DecimalString = Field(description="principal to repay ahead of the schedule (less than all of it)")
    effect: Literal["shorten_term", "lower_instalment"] = Field(
        description="what the instalments left become: as many, lower; or as high, fewer")


class Terms(BaseModel):
    amount: str
    term: int
    annual_rate_percent: str
    instalment: str = Field(description="the regular instalment these terms make (from today)")
    approvals_needed: int
    approvals: int


class AssessmentView(BaseModel):
    score: int
    recommendation: str
    reasons: list[str]
    inputs: dict[str, int]
    bureau_score: int | None
    bureau_report_id: str | None
    assessed_at: datetime


class ReviewView(BaseModel):
    decision: str
    reviewer: str
    reason: str | None
    amount: str
    term: int
    annual_rate_percent: str
    reviewed_at: datetime


class InstalmentView(BaseModel):
    number: int
    due_on: date
    principal: str
    interest: str
    fees: str
    total: str
    paid: str
    status: str = Field(description="paid, partly_paid, due, overdue, upcoming or written_off")
    outstanding_principal: str = Field(description="after this instalment, as scheduled")


class RepaymentView(BaseModel):
    repayment_id: str
    command_id: str
    paid_on: date
    kind: str
    amount: str
    principal: str
    interest: str
    fees: str


class LoanView(BaseModel):
    loan_id: str
    customer_id: str
    status: str = Field(description=", ".join(LOAN_STATUSES))
    product_id: str
    product_name: str
    account_id: str
    currency: str
    amount: str = Field(description="the principal applied for")
    term: int
    purpose: str
    applied_at: datetime
    terms: Terms | None = Field(description="approved or offered")
    decision_reason: str | None = Field(description="why it was rejected, or a note on the offer")
    assessment: AssessmentView | None = Field(description="staff only")
    reviews: list[ReviewView] = Field(description="staff only")
    disbursed_on: date | None
    disbursed_amount: str | None = Field(description="paid into the account: the principal less any fee")
    origination_fee: str | None
    outstanding_principal: str
    principal_paid: str
    interest_paid: str
    fees_paid: str
    total_interest: str = Field(description="the schedule's interest over the whole loan")
    interest_accrued: str = Field(description="interest earned by the last closed business date and not yet paid")
    accrued_through: date | None = Field(description="the last business date whose interest is accrued")
    written_off: WrittenOffView | None
    overdue: str
    days_past_due: int
    delinquency_bucket: str | None = Field(description="1-30, 31-60, 61-90 or 90+ days past due")
    next_due_on: date | None
    next_due_amount: str | None
    schedule: list[InstalmentView]
    repayments: list[RepaymentView]
    business_date: date


class LoanList(BaseModel):
    loans: list[LoanView]


class PayoffQuote(BaseModel):
    loan_id: str
    currency: str
    amount: str
    principal: str
    interest: str = Field(description="overdue instalments' interest and interest accrued to today")
    fees: str
    valid_on: date = Field(description="the business date the quote holds for")


def unknown_loan(loan_id: str) -> Problem:
    return Problem(404, "Unknown loan", f"no loan {loan_id}", "unknown_loan")


def _loan(platform: Platform, state: LoanState) -> Loan:
    refused = disbursement_command_id(state.loan_id)
    outcome = platform.view.outcomes.get(refused)
    return loan_of(state, platform.loans.book, platform.view.loan_postings, business_date(platform),
                   outcome is not None and outcome.status == "rejected")


def active_loans(platform: Platform) -> list[Loan]:
    _ready(platform)
    loans = (_loan(platform, state) for state in platform.loans.book.loans.values()
             if state.loan_id in platform.view.loan_postings.disbursed)
    return [loan for loan in loans if loan.status == "active"]


def _own(platform: Platform, loan_id: str) -> LoanState:
    _ready(platform)
    state = platform.loans.book.loans.get(loan_id)
    principal = caller()
    if state is None or (principal.role == "customer" and state.application.customer_id != principal.customer_id):
        raise unknown_loan(loan_id)
    return state


def _instalment(platform: Platform, state: LoanState, terms: LoanReviewed) -> int:
    product = platform.loans.book.product(state.application.product_id, state.application.product_version)
    if product is None:
        return 0
    rate = Decimal(terms.annual_rate_percent)
    try:
        plan = schedule(product.product(rate), terms.amount, terms.term, business_date(platform), annual_rate_percent=rate)
    except LoanError:
        return 0
    return plan.instalments[0].total_minor


def _view(platform: Platform, loan: Loan) -> LoanView:
    state, application = loan.state, loan.state.application
    currency, staff = application.currency, caller().staff
    money = lambda minor: format_amount(minor, currency)  # noqa: E731
    product = platform.loans.book.product(application.product_id)
    terms = state.terms
    disbursed = platform.view.loan_postings.disbursed.get(state.loan_id)
    next_item = loan.next_instalment if loan.status == "active" else None
    rejection = next((r.reason for r in state.reviews if r.decision == "reject"), None)
    offer = state.offer
    return LoanView(
        loan_id=state.loan_id, customer_id=application.customer_id, status=loan.status,
        product_id=application.product_id, product_name=product.name if product else application.product_id,
        account_id=application.account_id, currency=currency, amount=money(application.amount), term=application.term,
        purpose=application.purpose, applied_at=application.applied_at,
        terms=Terms(amount=money(terms.amount), term=terms.term, annual_rate_percent=terms.annual_rate_percent,
                    instalment=money(_instalment(platform, state, terms)), approvals_needed=terms.approvals_needed,
                    approvals=len(state.approvers)) if terms else None,
        decision_reason=rejection or (offer.reason if offer else None),
        assessment=AssessmentView(**{f: getattr(state.assessment, f) for f in AssessmentView.model_fields})
        if staff and state.assessment else None,
        reviews=[ReviewView(decision=r.decision, reviewer=r.reviewer, reason=r.reason, amount=money(r.amount),
                            term=r.term, annual_rate_percent=r.annual_rate_percent, reviewed_at=r.reviewed_at)
                 for r in state.reviews] if staff else [],
        disbursed_on=date.fromisoformat(disbursed.disbursed_on) if disbursed else None,
        disbursed_amount=money(disbursed.amount) if disbursed else None,
        origination_fee=money(disbursed.fee) if disbursed else None,
        outstanding_principal=money(loan.outstanding_principal), principal_paid=money(loan.principal_paid),
        interest_paid=money(loan.interest_paid), fees_paid=money(loan.fees_paid),
        total_interest=money(loan.schedule.total_interest_minor if loan.schedule else 0), overdue=money(loan.overdue),
        interest_accrued=money(loan.interest_receivable), accrued_through=loan.accrued_through,
        written_off=WrittenOffView(principal=money(loan.written_off.principal),
                                   interest=money(loan.written_off.interest), reason=loan.written_off.reason,
                                   written_off_by=loan.written_off.submitted_by,
                                   written_off_at=loan.written_off.occurred_at) if loan.written_off else None,
        days_past_due=loan.days_past_due, delinquency_bucket=loan.bucket,
        next_due_on=next_item.due_on if next_item else None,
        next_due_amount=money(next_item.unpaid) if next_item else None,
        schedule=[InstalmentView(number=i.number, due_on=i.due_on, principal=money(i.principal),
                                 interest=money(i.interest), fees=money(i.fees), total=money(i.total),
                                 paid=money(i.paid), status=i.status,
                                 outstanding_principal=money(i.outstanding_principal)) for i in loan.instalments],
        repayments=[RepaymentView(repayment_id=r.event_id, command_id=r.command_id,
                                  paid_on=date.fromisoformat(r.paid_on), kind=r.kind, amount=money(r.amount),
                                  principal=money(r.principal), interest=money(r.interest), fees=money(r.fees))
                    for r in loan.repayments],
        business_date=loan.today)


@router.post("/v1/loans", response_model=LoanView, status_code=201, responses=_RESPONSES, name="apply_for_loan",
             summary="Apply for a loan (customers)")
async def apply_for_loan(body: LoanApplication, platform: PlatformDep, view: ViewDep, idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=200,
                           description="a retry with the same key returns the application made the first time")
        ] = None) -> LoanView:
    _ready(platform)
    principal = caller()
    customer_id = principal.customer_id
    assert customer_id is not None, "api/authz.py admits only customers here"
    loan_id = derive_id("loan", principal.user_id, idempotency_key) if idempotency_key else str(uuid.uuid4())
    if (existing := platform.loans.book.loans.get(loan_id)) is not None:
        return _view(platform, _loan(platform, existing))
    product = platform.loans.book.product(body.product_id)
    if product is None or product.status != "active":
        raise unknown_product(body.product_id)
    account = view.accounts.get(body.account_id)
    if account is None or account.customer_id != customer_id:
        raise unknown_account(body.account_id)
    if account.status != "open":
        raise Problem(409, "Account not open", f"account {body.account_id} is {account.status}", "account_not_open")
    if account.currency != product.currency:
        raise Problem(422, "Currency mismatch", f"the product lends {product.currency}; account {account.account_id} "
                      f"holds {account.currency}", "currency_mismatch")
    amount = minor_units(body.amount, product.currency, "amount")
    today = business_date(platform)
    try:
        rate = product.rate_schedule.rate_on(today)
        schedule(product.product(rate), amount, body.term, today, annual_rate_percent=rate)   # in range, computes
    except LoanError as error:
        raise Problem(422, "Outside the product", error.detail, error.reason) from None
    record = LoanApplied(event_id=loan_event_id(loan_id, "applied"), loan_id=loan_id, customer_id=customer_id,
                         product_id=product.product_id, product_version=product.version,
                         account_id=account.account_id, amount=amount, currency=product.currency, term=body.term,
                         purpose=body.purpose.strip(), applied_at=platform.time.now(), applied_by=principal.user_id)
    await platform.loans.publish(record)
    await _audit(platform, "loan_applied", record.loan_id, customer_id=customer_id, amount=str(amount))
    return _view(platform, _loan(platform, platform.loans.book.loans[loan_id]))


@router.get("/v1/loans", response_model=LoanList, name="list_loans", responses=_RESPONSES,
            summary="A customer's loans and applications; staff: any (?customer_id=, ?status=: the queue)")
async def list_loans(platform: PlatformDep, customer_id: Annotated[str | None, Query(max_length=64)] = None,
                     status: Annotated[str | None, Query(max_length=40, description=", ".join(LOAN_STATUSES))] = None,
                     ) -> LoanList:
    _ready(platform)
    principal = caller()
    if principal.role == "customer":
        if customer_id is not None and customer_id != principal.customer_id:
            raise unknown_customer(customer_id)
        customer_id = principal.customer_id
    if status is not None and status not in LOAN_STATUSES:
        raise Problem(422, "Invalid status", f"status must be one of {', '.join(LOAN_STATUSES)}", "invalid_status")
    loans = [_loan(platform, state) for state in platform.loans.book.loans.values()
             if customer_id is None or state.application.customer_id == customer_id]
    chosen = [loan for loan in loans if status is None or loan.status == status]
    chosen.sort(key=lambda loan: loan.state.application.applied_at, reverse=True)
    return LoanList(loans=[_view(platform, loan) for loan in chosen])


@router.get("/v1/loans/{loan_id}", response_model=LoanView, name="get_loan", responses=_RESPONSES,
            summary="One loan: status, terms, schedule with what is paid, repayments, arrears")
async def get_loan(loan_id: str, platform: PlatformDep) -> LoanView:
    return _view(platform, _loan(platform, _own(platform, loan_id)))


async def _answer(platform: Platform, loan_id: str, answer: str, allowed: tuple[str, ...]) -> LoanView:
    async with platform.loans.lock:
        state = _own(platform, loan_id)
        status = _loan(platform, state).status
        if status not in allowed:
            raise Problem(409, "Not possible now", f"the application is {status}", "invalid_loan_status")
        record = LoanApplicantAnswered(event_id=loan_event_id(loan_id, "answered", answer), loan_id=loan_id,
                                       answer=answer, answered_by=caller().user_id, answered_at=platform.time.now())
        await platform.loans.publish(record)
    await _audit(platform, f"loan_{answer}", loan_id)
    return _view(platform, _loan(platform, state))


@router.post("/v1/loans/{loan_id}/withdraw", response_model=LoanView, name="withdraw_loan_application",
             responses=_RESPONSES, summary="Withdraw an application before it is approved")
async def withdraw_loan_application(loan_id: str, platform: PlatformDep) -> LoanView:
    return await _answer(platform, loan_id, "withdraw",
                         ("assessing", "in_review", "awaiting_second_approval", "offered"))


@router.post("/v1/loans/{loan_id}/offer", response_model=LoanView, name="answer_loan_offer", responses=_RESPONSES,
             summary="Accept or decline a counter-offer")
async def answer_loan_offer(loan_id: str, body: OfferAnswer, platform: PlatformDep) -> LoanView:
    return await _answer(platform, loan_id, "accept_offer" if body.accept else "decline_offer", ("offered",))


@router.post("/v1/admin/loans/{loan_id}/decision", response_model=LoanView, name="decide_loan", responses=_RESPONSES,
             summary="Approve (with terms), counter-offer or reject an application (analysts, admins)")
async def decide_loan(loan_id: str, body: Decision, platform: PlatformDep) -> LoanView:
    reviewer = caller().user_id
    async with platform.loans.lock:
        state = _own(platform, loan_id)
        application = state.application
        product = platform.loans.book.product(application.product_id, application.product_version)
        assert product is not None, "an application names a product on the log"
        current = state.terms
        amount = minor_units(body.amount, application.currency, "amount") if body.amount is not None else \
            current.amount if current else application.amount
        term = body.term or (current.term if current else application.term)
        rate = body.annual_rate_percent or (current.annual_rate_percent if current else
                                            str(product.rate_schedule.rate_on(business_date(platform))))
        try:
            schedule(product.product(parse_rate(rate)), amount, term, business_date(platform),
                     annual_rate_percent=parse_rate(rate))
        except LoanError as error:
            raise Problem(422, "Terms outside the product", error.detail, error.reason) from None
        thresholds = amounts_per_currency(platform.settings.loan_second_approval_threshold,
                                          platform.settings.loan_second_approval_thresholds,
                                          "BANK_LOAN_SECOND_APPROVAL_THRESHOLD(S)")
        number = len(state.reviews) + 1
        record = LoanReviewed(event_id=loan_event_id(loan_id, "reviewed", str(number)), loan_id=loan_id,
                              decision=body.decision, reviewer=reviewer, reason=body.reason, amount=amount, term=term,
                              annual_rate_percent=rate, approvals_needed=2 if amount > thresholds[application.currency]
                              else 1, reviewed_at=platform.time.now())
        try:
            check_review(state, body.decision, reviewer, record, body.reason)
        except LoanError as error:
            raise Problem(409 if error.reason in ("not_reviewable", "same_reviewer") else 422, "Decision refused",
                          error.detail, error.reason) from None
        await platform.loans.publish(record)
    await _audit(platform, f"loan_{body.decision}", loan_id, amount=str(amount), term=str(term), rate=rate)
    return _view(platform, _loan(platform, state))


@router.post("/v1/admin/loans/{loan_id}/write-off", status_code=202, responses=_RESPONSES, name="write_off_loan",
             summary="Write a loan off: its principal and accrued interest leave the books for loan losses (admins)")
async def write_off_loan(loan_id: str, body: WriteOff, request: Request, platform: PlatformDep, view: ViewDep,
                         key: IdempotencyKey = None, wait: Wait = False) -> Any:
    """The ledger decides the amounts (what is outstanding on the account's books when it takes the command);
    the loan then collects nothing more and accrues no interest."""
    loan = _loan(platform, _own(platform, loan_id))
    application = loan.state.application
    if (answer := await answered_before(request, platform, view, body.model_dump(), key, wait,
                                        application.account_id)):
        return answer   # the loan it wrote off is written off now
    if loan.status != "active":
        raise Problem(409, "Write-off refused", f"the loan is {loan.status}: only an active loan is written off",
                      "loan_not_active")
    response = await submit(request, platform, view, body.model_dump(), key, wait,
                            lambda command_id: c.WriteOffLoan(**_envelope(platform, command_id, application.account_id),
                                                              loan_id=loan_id, currency=application.currency,
                                                              reason=body.reason, submitted_by=caller().user_id),
                            application.customer_id)
    await _audit(platform, "loan_write_off", loan_id, reason=body.reason)
    return response


# ---------------------------------------------------------------- repayments


def _repayment_command(platform: Platform, loan: Loan, parts: RepaymentParts, kind: str, command_id: str
                       ) -> c.RepayLoan:
    application = loan.state.application
    return c.RepayLoan(**_envelope(platform, command_id, application.account_id), loan_id=application.loan_id,
                       amount=parts.amount, currency=application.currency, principal=parts.principal,
                       interest=parts.interest, fees=parts.fees, kind=kind, paid_on=loan.today.isoformat(),
                       submitted_by=caller().user_id)


@router.post("/v1/loans/{loan_id}/repayments", status_code=202, responses=_RESPONSES, name="repay_loan",
             summary="Repay a loan from its account (oldest instalment first: fees, interest, principal)")
async def repay_loan(loan_id: str, body: RepaymentBody, request: Request, platform: PlatformDep, view: ViewDep,
                     key: IdempotencyKey = None, wait: Wait = False) -> Any:
    state = _own(platform, loan_id)
    if (answer := await answered_before(request, platform, view, body.model_dump(), key, wait,
                                        state.application.account_id)):
        return answer
    loan = _loan(platform, state)
    amount = minor_units(body.amount, state.application.currency, "amount")
    try:
        parts = repayment_parts(loan, amount)
    except LoanError as error:
        raise Problem(409 if error.reason == "loan_not_active" else 422, "Repayment refused", error.detail,
                      error.reason) from None
    return await submit(request, platform, view, body.model_dump(), key, wait,
                        lambda command_id: _repayment_command(platform, loan, parts, "manual", command_id),
                        state.application.customer_id)


@router.post("/v1/loans/{loan_id}/prepayments", status_code=202, responses=_RESPONSES, name="prepay_loan",
             summary="Repay principal ahead of the schedule: the term shortens or the instalment lowers, as you choose")
async def prepay_loan(loan_id: str, body: PrepaymentBody, request: Request, platform: PlatformDep, view: ViewDep,
                      key: IdempotencyKey = None, wait: Wait = False) -> Any:
    state = _own(platform, loan_id)
    if (answer := await answered_before(request, platform, view, body.model_dump(), key, wait,
                                        state.application.account_id)):
        return answer
    loan = _loan(platform, state)
    try:
        parts = prepayment_parts(loan, minor_units(body.amount, state.application.currency, "amount"))
    except LoanError as error:
        raise Problem(409 if error.reason in ("loan_not_active", "instalments_due", "instalment_partly_paid")
                      else 422, "Prepayment refused", error.detail, error.reason) from None
    return await submit(request, platform, view, body.model_dump(), key, wait,
                        lambda command_id: _repayment_command(platform, loan, parts, f"prepay_{body.effect}",
                                                              command_id),
                        state.application.customer_id)


def _quote(platform: Platform, loan_id: str) -> tuple[Loan, RepaymentParts]:
    loan = _loan(platform, _own(platform, loan_id))
    try:
        return loan, payoff_quote(loan, platform.loans.book)
    except LoanError as error:
        raise Problem(409, "Nothing to pay off", error.detail, error.reason) from None


@router.get("/v1/loans/{loan_id}/payoff-quote", response_model=PayoffQuote, name="get_payoff_quote",
            responses=_RESPONSES, summary="What repays the loan in full today")
async def get_payoff_quote(loan_id: str, platform: PlatformDep) -> PayoffQuote:
    loan, parts = _quote(platform, loan_id)
    currency = loan.state.application.currency
    return PayoffQuote(loan_id=loan_id, currency=currency, amount=format_amount(parts.amount, currency),
                       principal=format_amount(parts.principal, currency),
                       interest=format_amount(parts.interest, currency), fees=format_amount(parts.fees, currency),
                       valid_on=loan.today)


@router.post("/v1/loans/{loan_id}/payoff", status_code=202, responses=_RESPONSES, name="pay_off_loan",
             summary="Repay the whole loan today, by today's payoff quote")
async def pay_off_loan(loan_id: str, request: Request, platform: PlatformDep, view: ViewDep,
                       key: IdempotencyKey = None, wait: Wait = False) -> Any:
    state = _own(platform, loan_id)
    body = {"payoff": business_date(platform).isoformat()}
    if (answer := await answered_before(request, platform, view, body, key, wait, state.application.account_id)):
        return answer   # the loan it paid off is closed now: a retry gets the payoff's answer, not a refusal
    loan, parts = _quote(platform, loan_id)
    return await submit(request, platform, view, body, key, wait,
                        lambda command_id: _repayment_command(platform, loan, parts, "payoff", command_id),
                        loan.state.application.customer_id)


# ---------------------------------------------------------------- the portfolio


class ProductPortfolioView(BaseModel):
    product_id: str
    name: str
    currency: str
    loans: int
    outstanding_principal: str
    interest_accrued: str = Field(description="interest earned by the last closed business date, not yet paid")
    arrears: str
    par30: str = Field(description="percent of outstanding principal more than 30 days past due")
    par90: str


class ArrearsView(BaseModel):
    loan_id: str
    customer_id: str
    product_id: str
    product_name: str
    currency: str
    overdue: str
    days_past_due: int
    delinquency_bucket: str | None
    outstanding_principal: str


class Portfolio(BaseModel):
    business_date: date
    products: list[ProductPortfolioView]
    arrears: list[ArrearsView]


def _portfolio(platform: Platform) -> Portfolio:
    loans = active_loans(platform)
    rows = portfolio(loans, platform.loans.book)
    late = sorted((loan for loan in loans if loan.days_past_due > 0), key=lambda loan: -loan.days_past_due)
    return Portfolio(business_date=business_date(platform), products=[ProductPortfolioView(
        product_id=row.product_id, name=row.name, currency=row.currency, loans=row.loans,
        outstanding_principal=format_amount(row.outstanding_principal, row.currency),
        interest_accrued=format_amount(row.interest_accrued, row.currency),
        arrears=format_amount(row.arrears, row.currency), par30=str(row.par(row.at_risk_30)),
        par90=str(row.par(row.at_risk_90))) for row in rows], arrears=[ArrearsView(
        loan_id=loan.state.loan_id, customer_id=loan.state.application.customer_id,
        product_id=loan.state.application.product_id, product_name=_product_name(platform, loan),
        currency=loan.state.application.currency, overdue=format_amount(loan.overdue, loan.state.application.currency), days_past_due=loan.days_past_due,
        delinquency_bucket=loan.bucket,
        outstanding_principal=format_amount(loan.outstanding_principal, loan.state.application.currency))
        for loan in late])


def _product_name(platform: Platform, loan: Loan) -> str:
    product = platform.loans.book.product(loan.state.application.product_id)
    return product.name if product else loan.state.application.product_id


@router.get("/v1/admin/loans/portfolio", response_model=Portfolio, name="loan_portfolio",
            summary="Outstanding principal, arrears and portfolio at risk (PAR30, PAR90) by product; loans in arrears")
async def loan_portfolio(platform: PlatformDep) -> Portfolio:
    return _portfolio(platform)


@router.get("/v1/admin/loans/portfolio.csv", name="loan_portfolio_csv", response_class=StreamingResponse,
            summary="The loans in arrears as CSV (one row per loan)")
async def loan_portfolio_csv(platform: PlatformDep) -> StreamingResponse:
    report = _portfolio(platform)

    async def lines() -> AsyncIterator[str]:
        columns = list(ArrearsView.model_fields)
        yield csv_line(columns)
        for row in report.arrears:
            yield csv_line(getattr(row, column) for column in columns)

    return csv_response(lines(), f"loan-arrears-{report.business_date.isoformat()}.csv", {})


async def _audit(platform: Platform, action: str, loan_id: str, **details: str) -> None:
    await platform.access.audit.record(action, details={"loan_id": loan_id, **details})

