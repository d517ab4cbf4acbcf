"""Loans on the log: products, applications and their lifecycle, and what a loan owes. Pure: records in, state and
decisions out. The calculations (schedules, day counts, allocation) are core/loans.py's.

Records on bank.loans (products keyed by product id, loans by loan id):

- `LoanProductSet`: a product's whole definition as of one change (created, edited, a rate change, retired); the
  highest version wins. Rates change only forward (`core.loans.RateSchedule.changed`): each version keeps every
  rate change with its effective date, and who made it (`set_by`) is on the record and the audit trail.
- `LoanApplied` (the customer: product, amount, term, purpose, the account to disburse into and repay from),
  `LoanAssessed` (the credit assessment: the scorer's inputs from the log, the bureau's score, a recommendation),
  `LoanReviewed` (staff: approve with terms, counter-offer, or reject with a reason; above
  BANK_LOAN_SECOND_APPROVAL_THRESHOLD a second staff member must approve too), `LoanApplicantAnswered` (the
  customer withdraws the application, or accepts or declines a counter-offer).

The money moves on the ledger, keyed by the loan's account (core/ledger.py): `DisburseLoan` -> `LoanDisbursed`
(the books: `loans` debited with the principal, the customer credited with it less any origination fee, which
`fee-income` takes), `AccrueLoanInterest` -> `LoanInterestAccrued` (each closed business date's interest:
`interest-receivable` debited, `interest-income` credited), `RepayLoan` -> `LoanRepaid` (the customer debited;
`loans` credited with the principal part, `interest-receivable` with the interest accrued, `interest-income` with
any interest paid before it was accrued, `fee-income` with fees), `WriteOffLoan` -> `LoanWrittenOff` (principal
and interest receivable left to `loan-losses`). Their command ids derive from the loan (and the instalment and
business date, for scheduled repayments; the last date accrued, for accruals), so a restart or a second servicer
never pays or accrues twice.

Interest is earned by the day (`interest_earned_through`): each instalment's interest spread evenly over the days
of its period (from the previous due date, or the disbursement date, to the day before its due date), floored,
so by the end of the day before a due date the instalment's interest is accrued whole, and a scheduled repayment
settles it from `interest-receivable`. A prepayment that lowers a period's interest makes the next accrual
negative; the repayment that pays the principal off trues the loan's accrual up to the interest its customer
paid (the ledger does that itself), so a closed loan's interest income is exactly its interest paid.

The lifecycle (`LoanState.status`):

    assessing -> in_review -> approved ----------------------> disbursed (active) -> closed | written_off
                      |  \\-> awaiting_second_approval -> approved
                      |  \\-> offered -> approved (accepted) | offer_declined
                      \\-> rejected         (assessing, in_review, awaiting_second_approval, offered) -> withdrawn
    approved -> disbursement_failed (the ledger refused: the account closed or frozen meanwhile)

Repayments are allocated oldest instalment first, and within one fees -> interest -> principal (Fineract's
default; core.loans.allocate_repayment). An amount above what the unpaid instalments owe is refused; paying the
whole loan off early is the payoff quote's (`payoff_quote`): the overdue instalments, interest accrued on the
outstanding principal since the last due date (the product's day count, to the business date), and all principal
left. A quote holds for the business day it was made on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Literal

from core.commands import derive_id
from core.money import format_amount
from core.events import LoanDisbursed, LoanInterestAccrued, LoanRepaid, LoanWrittenOff
from core.loans import (Due, Fee, LoanError, LoanProduct, PrepaymentEffect, RateChange, RateSchedule, Schedule,
                        allocate_repayment, day_count_fraction, reschedule, schedule)

ProductStatus = Literal["active", "retired"]
ReviewDecision = Literal["approve", "counter_offer", "reject"]
REVIEW_DECISIONS: tuple[ReviewDecision, ...] = ("approve", "counter_offer", "reject")
ApplicantAnswer = Literal["withdraw", "accept_offer", "decline_offer"]
APPLICANT_ANSWERS: tuple[ApplicantAnswer, ...] = ("withdraw", "accept_offer", "decline_offer")
LoanStatus = Literal["assessing", "in_review", "awaiting_second_approval", "offered", "approved", "rejected",
                     "withdrawn", "offer_declined", "disbursement_failed", "active", "closed", "written_off"]
LOAN_STATUSES: tuple[LoanStatus, ...] = ("assessing", "in_review", "awaiting_second_approval", "offered", "approved",
                                         "rejected", "withdrawn", "offer_declined", "disbursement_failed", "active",
                                         "closed", "written_off")
UNDECIDED: tuple[LoanStatus, ...] = ("assessing", "in_review", "awaiting_second_approval", "offered")
Recommendation = Literal["approve", "refer", "decline"]
RepaymentKind = Literal["manual", "scheduled", "payoff", "prepay_shorten_term", "prepay_lower_instalment"]
REPAYMENT_KINDS: tuple[RepaymentKind, ...] = ("manual", "scheduled", "payoff", "prepay_shorten_term",
                                              "prepay_lower_instalment")
# A prepayment's kind says what it does to the instalments left (core.loans.reschedule).
PREPAYMENT_KINDS: dict[str, PrepaymentEffect] = {"prepay_shorten_term": "shorten_term",
                                                 "prepay_lower_instalment": "lower_instalment"}
# Delinquency buckets by days past due (the oldest unpaid instalment's): portfolio-at-risk reports use them.
BUCKETS: tuple[tuple[str, int, int | None], ...] = (("1-30", 1, 30), ("31-60", 31, 60), ("61-90", 61, 90),
                                                    ("90+", 91, None))
PURPOSE_MAX = 200
REASON_MAX = 500


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanProductSet:
    """A loan product's whole definition as of one change (bank.loans, keyed by product id)."""

    event_id: str
    product_id: str
    version: int
    change: str                          # created | edited | rate_changed | retired
    status: str                          # ProductStatus
    name: str
    currency: str
    principal_min: int
    principal_max: int
    term_min: int
    term_max: int
    rates: list[dict[str, str]]          # [{"effective_on": ISO date, "annual_rate_percent": "12.5"}], ascending
    amortisation: str
    frequency: str
    day_count: str
    grace_on_principal: int
    late_fee_flat: int
    late_fee_percent: str
    origination_fee_flat: int
    origination_fee_percent: str
    origination_fee_on: str
    set_by: str
    set_at: datetime
    schema_version: int = 1

    @property
    def rate_schedule(self) -> RateSchedule:
        return RateSchedule(tuple(RateChange(date.fromisoformat(rate["effective_on"]),
                                             Decimal(rate["annual_rate_percent"])) for rate in self.rates))

    def product(self, annual_rate_percent: Decimal) -> LoanProduct:
        """The calculation's product (core/loans.py) at a rate (the one a loan was approved at)."""
        return LoanProduct(
            currency=self.currency, principal_min_minor=self.principal_min, principal_max_minor=self.principal_max,
            term_min=self.term_min, term_max=self.term_max, annual_rate_percent=annual_rate_percent,
            amortisation=self.amortisation, frequency=self.frequency, day_count=self.day_count,  # type: ignore[arg-type]
            grace_on_principal=self.grace_on_principal,
            late_payment_fee=Fee(self.late_fee_flat, Decimal(self.late_fee_percent)),
            origination_fee=Fee(self.origination_fee_flat, Decimal(self.origination_fee_percent)),
            origination_fee_on=self.origination_fee_on)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanApplied:
    """A customer's application (bank.loans, keyed by loan id)."""

    event_id: str
    loan_id: str
    customer_id: str
    product_id: str
    product_version: int
    account_id: str                      # disbursed into and repaid from: the customer's, in the product's currency
    amount: int
    currency: str
    term: int
    purpose: str
    applied_at: datetime                 # business time
    applied_by: str                      # user id
    schema_version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanAssessed:
    """The credit assessment of an application, kept for the reviewer (bank.loans, keyed by loan id)."""

    event_id: str
    loan_id: str
    score: int                           # 0..100, the bank's own
    recommendation: str                  # Recommendation
    reasons: list[str]
    inputs: dict[str, int]               # what the log told the scorer (minor units and counts)
    bureau_score: int | None
    bureau_report_id: str | None
    assessed_at: datetime
    schema_version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanReviewed:
    """A staff decision on an application (bank.loans, keyed by loan id)."""

    event_id: str
    loan_id: str
    decision: str                        # ReviewDecision
    reviewer: str                        # user id
    reason: str | None
    amount: int                          # the terms approved or offered (the application's when rejected)
    term: int
    annual_rate_percent: str
    approvals_needed: int                # 1, or 2 above the second-approval threshold
    reviewed_at: datetime
    schema_version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanApplicantAnswered:
    """The applicant withdraws, or accepts or declines a counter-offer (bank.loans, keyed by loan id)."""

    event_id: str
    loan_id: str
    answer: str                          # ApplicantAnswer
    answered_by: str
    answered_at: datetime
    schema_version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanLateFeeCharged:
    """The late-payment fee of a missed instalment, charged once by the servicer (bank.loans, keyed by loan id).

    It is added to what the instalment owes; like interest, the bank's books recognise it when it is repaid
    (`fee-income`), so charging it moves no money."""

    event_id: str                        # derived from the loan and the instalment: once per missed instalment
    loan_id: str
    instalment: int
    amount: int
    charged_on: str                      # ISO business date
    charged_at: datetime
    schema_version: int = 1


LOAN_TYPES: dict[str, type] = {kind.__name__: kind for kind in (
    LoanProductSet, LoanApplied, LoanAssessed, LoanReviewed, LoanApplicantAnswered, LoanLateFeeCharged)}
Record = LoanProductSet | LoanApplied | LoanAssessed | LoanReviewed | LoanApplicantAnswered | LoanLateFeeCharged


def product_event_id(product_id: str, version: int) -> str:
    return derive_id("loan-product", product_id, str(version))


def loan_event_id(loan_id: str, kind: str, *parts: str) -> str:
    return derive_id("loan", loan_id, kind, *parts)


def disbursement_command_id(loan_id: str) -> str:
    """One disbursement per loan: the servicer's restarts and a second servicer propose the same command."""
    return derive_id("loan-disbursement", loan_id)


def scheduled_repayment_command_id(loan_id: str, instalment: int, business_day: date) -> str:
    """One collection attempt per instalment and business day: a missed one is tried again the next day."""
    return derive_id("loan-repayment", loan_id, str(instalment), business_day.isoformat())


def accrual_command_id(loan_id: str, through: date) -> str:
    """One accrual per loan through a business date (the ledger takes each date once, in order, besides)."""
    return derive_id("loan-accrual", loan_id, through.isoformat())


# ---------------------------------------------------------------- parsing what staff type


def parse_rate(text: str) -> Decimal:
    try:
        rate = Decimal(text)
    except (InvalidOperation, TypeError):
        raise LoanError("invalid_rate", f"{text!r} is not a decimal percent such as 12.5") from None
    RateSchedule((RateChange(date.min, rate),))   # the rate's own checks (range, digits)
    return rate


def check_product(record: LoanProductSet) -> None:
    """Raise LoanError if the definition is not a valid product (the calculation's checks, every rate)."""
    rates = record.rate_schedule
    for change in rates.changes:
        record.product(change.annual_rate_percent)
    if not record.name.strip():
        raise LoanError("invalid_name", "a product needs a name")


def check_review(state: LoanState, decision: str, reviewer: str, terms: LoanReviewed, reason: str | None) -> None:
    """Raise LoanError unless `reviewer` may record `decision` with `terms` on the application now.

    A decision waits for the assessment; once approved (or offered and answered) the application is decided. A
    second approval is another staff member's, of the same terms; they may also reject, or offer other terms
    (which then need their two approvals afresh)."""
    if decision not in REVIEW_DECISIONS:
        raise LoanError("invalid_decision", f"decision {decision!r} is not one of {', '.join(REVIEW_DECISIONS)}")
    status = state.decision_status
    if status not in ("in_review", "awaiting_second_approval"):
        raise LoanError("not_reviewable", f"the application is {status}: it takes no decision now")
    if decision == "reject" and not (reason and reason.strip()):
        raise LoanError("reason_required", "a rejection needs a reason the customer can be told")
    if status == "awaiting_second_approval" and decision == "approve":
        if reviewer in state.approvers:
            raise LoanError("same_reviewer", "a second approval must come from another staff member")
        current = state.terms
        if current is not None and not same_terms(current, terms):
            raise LoanError("terms_differ", "a second approval approves the terms of the first; to change them, "
                                            "make a counter-offer")


# ---------------------------------------------------------------- the fold


@dataclass(slots=True)
class LoanState:
    application: LoanApplied
    assessment: LoanAssessed | None = None
    reviews: list[LoanReviewed] = field(default_factory=list)
    answers: list[LoanApplicantAnswered] = field(default_factory=list)
    late_fees: dict[int, LoanLateFeeCharged] = field(default_factory=dict)   # by instalment number

    @property
    def loan_id(self) -> str:
        return self.application.loan_id

    @property
    def terms(self) -> LoanReviewed | None:
        """The latest approval or counter-offer: the terms the loan is (or would be) made on."""
        for review in reversed(self.reviews):
            if review.decision in ("approve", "counter_offer"):
                return review
        return None

    @property
    def offer(self) -> LoanReviewed | None:
        """The counter-offer the current terms come from, if they come from one."""
        terms = self.terms
        return next((review for review in self.reviews if review.decision == "counter_offer"
                     and terms is not None and same_terms(review, terms)), None)

    @property
    def approvers(self) -> set[str]:
        """The staff members who approved (or offered) the current terms."""
        terms = self.terms
        return {review.reviewer for review in self.reviews
                if terms is not None and review.decision in ("approve", "counter_offer") and same_terms(review, terms)}

    @property
    def decision_status(self) -> LoanStatus:
        """Where the application stands before the money moves (the ledger's events say the rest)."""
        answers = {answer.answer for answer in self.answers}
        if any(review.decision == "reject" for review in self.reviews):
            return "rejected"
        if "withdraw" in answers:
            return "withdrawn"
        terms = self.terms
        if terms is None:
            return "in_review" if self.assessment is not None else "assessing"
        if self.offer is not None:
            if "decline_offer" in answers:
                return "offer_declined"
            if "accept_offer" not in answers:
                return "offered"
        return "approved" if len(self.approvers) >= terms.approvals_needed else "awaiting_second_approval"


def same_terms(one: LoanReviewed, other: LoanReviewed) -> bool:
    return (one.amount, one.term, Decimal(one.annual_rate_percent)) == \
        (other.amount, other.term, Decimal(other.annual_rate_percent))


@dataclass(slots=True)
class LoanBook:
    """Products and loans folded from bank.loans. Idempotent: a record seen again (by event id) changes nothing."""

    products: dict[str, list[LoanProductSet]] = field(default_factory=dict)   # id -> versions, ascending
    loans: dict[str, LoanState] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    # A disbursed loan's schedule by (loan id, disbursement, terms): exact arithmetic, computed once, not on every
    # tick of the servicer or every read of the API.
    schedules: dict[tuple[str, str, str], Schedule] = field(default_factory=dict)

    def apply(self, record: Any) -> None:
        if record.event_id in self._seen:
            return
        self._seen.add(record.event_id)
        if isinstance(record, LoanProductSet):
            versions = self.products.setdefault(record.product_id, [])
            if not versions or record.version > versions[-1].version:
                versions.append(record)
        elif isinstance(record, LoanApplied):
            self.loans.setdefault(record.loan_id, LoanState(record))
        elif (state := self.loans.get(record.loan_id)) is not None:
            if isinstance(record, LoanAssessed):
                state.assessment = state.assessment or record
            elif isinstance(record, LoanReviewed):
                state.reviews.append(record)
            elif isinstance(record, LoanApplicantAnswered):
                state.answers.append(record)
            elif isinstance(record, LoanLateFeeCharged):
                state.late_fees.setdefault(record.instalment, record)

    def product(self, product_id: str, version: int | None = None) -> LoanProductSet | None:
        versions = self.products.get(product_id) or []
        if version is None:
            return versions[-1] if versions else None
        return next((item for item in versions if item.version == version), None)


@dataclass(slots=True)
class LoanPostings:
    """The ledger's loan events (bank.ledger.events), by loan id: each loan's disbursement, repayments, interest
    accruals and write-off."""

    disbursed: dict[str, LoanDisbursed] = field(default_factory=dict)
    repaid: dict[str, list[LoanRepaid]] = field(default_factory=dict)
    accrued: dict[str, list[LoanInterestAccrued]] = field(default_factory=dict)
    written_off: dict[str, LoanWrittenOff] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def apply(self, event: object) -> None:
        if not isinstance(event, LOAN_POSTINGS) or event.event_id in self._seen:
            return
        self._seen.add(event.event_id)
        if isinstance(event, LoanDisbursed):
            self.disbursed.setdefault(event.loan_id, event)
        elif isinstance(event, LoanRepaid):
            self.repaid.setdefault(event.loan_id, []).append(event)
        elif isinstance(event, LoanInterestAccrued):
            self.accrued.setdefault(event.loan_id, []).append(event)
        else:
            self.written_off.setdefault(event.loan_id, event)


LOAN_POSTINGS = (LoanDisbursed, LoanRepaid, LoanInterestAccrued, LoanWrittenOff)
# Their record names: readers of the ledger that fold only these decode nothing else.
LOAN_POSTING_NAMES = frozenset(kind.__name__ for kind in LOAN_POSTINGS)


# ---------------------------------------------------------------- what a loan owes


@dataclass(frozen=True, slots=True)
class InstalmentStatus:
    number: int
    due_on: date
    principal: int
    interest: int
    fees: int
    outstanding_principal: int     # after this instalment, as scheduled
    paid: int                      # of its total, so far
    status: str                    # paid | partly_paid | due | overdue | upcoming | written_off

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.fees

    @property
    def unpaid(self) -> int:
        return self.total - self.paid


@dataclass(frozen=True, slots=True)
class Loan:
    """A loan as people read it on a business day: its status, terms, schedule with what is paid, arrears."""

    state: LoanState
    status: LoanStatus
    schedule: Schedule | None
    instalments: tuple[InstalmentStatus, ...]
    dues: tuple[Due, ...]                   # what each instalment still owes (scheduled, less what was paid)
    repayments: tuple[LoanRepaid, ...]
    outstanding_principal: int
    interest_paid: int
    fees_paid: int
    principal_paid: int
    days_past_due: int
    today: date
    accruals: tuple[LoanInterestAccrued, ...] = ()
    written_off: LoanWrittenOff | None = None

    @property
    def interest_receivable(self) -> int:
        """Interest accrued and not yet paid (the loan's share of `interest-receivable`)."""
        if self.written_off is not None:
            return 0
        return sum(accrual.amount for accrual in self.accruals) - sum(r.interest_accrued for r in self.repayments)

    @property
    def interest_recognised(self) -> int:
        """The loan's interest income so far: accrued, and paid before it was accrued."""
        return sum(accrual.amount for accrual in self.accruals) + \
            sum(r.interest - r.interest_accrued for r in self.repayments)

    @property
    def accrued_through(self) -> date | None:
        """The last business date accrued (a repayment's true-up is dated, and counts, too)."""
        return max((date.fromisoformat(accrual.through_date) for accrual in self.accruals), default=None)

    @property
    def bucket(self) -> str | None:
        return delinquency_bucket(self.days_past_due)

    @property
    def overdue(self) -> int:
        if self.written_off is not None:
            return 0
        return sum(item.unpaid for item in self.instalments if item.status == "overdue")

    @property
    def next_instalment(self) -> InstalmentStatus | None:
        return next((item for item in self.instalments if item.unpaid > 0), None)

    @property
    def owed_by_schedule(self) -> int:
        """Everything the unpaid instalments still owe: the most one repayment may be."""
        return sum(item.unpaid for item in self.instalments)


def delinquency_bucket(days_past_due: int) -> str | None:
    for name, low, high in BUCKETS:
        if days_past_due >= low and (high is None or days_past_due <= high):
            return name
    return None


def loan_of(state: LoanState, book: LoanBook, postings: LoanPostings, today: date,
            disbursement_refused: bool = False) -> Loan:
    """Fold a loan's application, decisions and postings into what it is on business day `today`."""
    disbursed = postings.disbursed.get(state.loan_id)
    repayments = tuple(postings.repaid.get(state.loan_id, ()))
    if disbursed is None:
        status: LoanStatus = state.decision_status
        if status == "approved" and disbursement_refused:
            status = "disbursement_failed"
        return Loan(state, status, None, (), (), repayments, 0, 0, 0, 0, 0, today)
    loan_schedule = schedule_of(state, book, disbursed)
    late = {number: fee.amount for number, fee in state.late_fees.items()}
    dues = {due.number: Due(due.number, due.fees_minor + late.get(due.number, 0), due.interest_minor,
                            due.principal_minor) for due in _scheduled_dues(loan_schedule)}
    for repayment in repayments:
        if repayment.kind in PREPAYMENT_KINDS:
            first = _first_after(loan_schedule, repayment)
            loan_schedule = _rescheduled(loan_schedule, state, book, repayment, first)
            dues = {number: due for number, due in dues.items() if number < first} | \
                {due.number: due for due in _scheduled_dues(loan_schedule) if due.number >= first}
        else:
            dues = _cleared(dues) if repayment.kind == "payoff" else _paid(dues, repayment)
    principal_paid = sum(repayment.principal for repayment in repayments)
    instalments = tuple(_instalment_status(item, dues[item.number], today, late.get(item.number, 0))
                        for item in loan_schedule.instalments)
    outstanding = disbursed.principal - principal_paid
    unpaid_due = [item.due_on for item in instalments if item.status == "overdue"]
    days = (today - unpaid_due[0]).days if unpaid_due else 0
    status = "closed" if outstanding <= 0 and all(item.unpaid == 0 for item in instalments) else "active"
    written_off = postings.written_off.get(state.loan_id)
    if written_off is not None:   # nothing is owed to the bank's books any more, nor overdue
        status, outstanding, days = "written_off", 0, 0
        instalments = tuple(item if item.status == "paid" else replace(item, status="written_off")
                            for item in instalments)
    return Loan(state, status, loan_schedule, instalments, tuple(dues.values()), repayments, outstanding,
                sum(repayment.interest for repayment in repayments), sum(repayment.fees for repayment in repayments),
                principal_paid, days, today, tuple(postings.accrued.get(state.loan_id, ())), written_off)


def schedule_of(state: LoanState, book: LoanBook, disbursed: LoanDisbursed) -> Schedule:
    terms = state.terms
    assert terms is not None, "a loan is disbursed only once approved"
    key = (state.loan_id, disbursed.event_id, terms.event_id)
    if (known := book.schedules.get(key)) is None:
        known = book.schedules[key] = _schedule_of(state, book, disbursed, terms)
    return known


def _schedule_of(state: LoanState, book: LoanBook, disbursed: LoanDisbursed, terms: LoanReviewed) -> Schedule:
    product = book.product(state.application.product_id, state.application.product_version)
    assert product is not None, "an application names a product version on the log"
    rate = Decimal(terms.annual_rate_percent)
    return schedule(product.product(rate), terms.amount, terms.term, date.fromisoformat(disbursed.disbursed_on),
                    annual_rate_percent=rate)


def _first_after(loan_schedule: Schedule, repayment: LoanRepaid) -> int:
    """The number of the first instalment a prepayment on `paid_on` reschedules: the first not yet due."""
    paid_on = date.fromisoformat(repayment.paid_on)
    return next((item.number for item in loan_schedule.instalments if item.due_on > paid_on),
                len(loan_schedule.instalments) + 1)


def _rescheduled(loan_schedule: Schedule, state: LoanState, book: LoanBook, repayment: LoanRepaid,
                 first: int) -> Schedule:
    """The schedule after a prepayment: the instalments from `first` on (not yet due) replaced
    (core.loans.reschedule)."""
    kept = [item for item in loan_schedule.instalments if item.number < first]
    rest = [item for item in loan_schedule.instalments if item.number >= first]
    if not rest:
        return loan_schedule
    product = book.product(state.application.product_id, state.application.product_version)
    assert product is not None
    calculation = product.product(loan_schedule.annual_rate_percent)
    effect = PREPAYMENT_KINDS[repayment.kind]
    payment = rest[0].principal_minor if calculation.amortisation == "equal_principal" else rest[0].total_minor
    start = kept[-1].due_on if kept else loan_schedule.disbursed_on
    new = reschedule(calculation, loan_schedule.annual_rate_percent, repayment.outstanding_principal, start,
                     [item.due_on for item in rest], first, effect, payment)
    return replace(loan_schedule, instalments=(*kept, *new))


def _scheduled_dues(loan_schedule: Schedule) -> list[Due]:
    return [Due(item.number, item.fees_minor, item.interest_minor, item.principal_minor)
            for item in loan_schedule.instalments]


def _paid(dues: Mapping[int, Due], repayment: LoanRepaid) -> dict[int, Due]:
    """What the instalments still owe after a repayment: each of its posted parts (fees, interest, principal)
    pays the oldest instalments' owing of that kind first, so the fold says exactly what the books say."""
    left = {"fees_minor": repayment.fees, "interest_minor": repayment.interest,
            "principal_minor": repayment.principal}
    result: dict[int, Due] = {}
    for number in sorted(dues):
        owed = dues[number]
        changes: dict[str, int] = {}
        for part, amount in left.items():
            taken = min(amount, getattr(owed, part))
            changes[part] = getattr(owed, part) - taken
            left[part] = amount - taken
        result[number] = replace(owed, **changes)
    return result


def _cleared(dues: Mapping[int, Due]) -> dict[int, Due]:
    """A payoff settles every instalment (its interest part is the accrual to the payoff date, not the schedule's)."""
    return {number: Due(number, 0, 0, 0) for number in dues}


def _instalment_status(item: Any, still_owed: Due, today: date, late_fee: int) -> InstalmentStatus:
    unpaid = still_owed.fees_minor + still_owed.interest_minor + still_owed.principal_minor
    total = item.principal_minor + item.interest_minor + item.fees_minor + late_fee
    if unpaid == 0:
        status = "paid"
    elif item.due_on < today:
        status = "overdue"
    elif item.due_on == today:
        status = "due"
    else:
        status = "partly_paid" if unpaid < total else "upcoming"
    return InstalmentStatus(item.number, item.due_on, item.principal_minor, item.interest_minor,
                            item.fees_minor + late_fee, item.outstanding_principal_minor, total - unpaid, status)


# ---------------------------------------------------------------- repayments


@dataclass(frozen=True, slots=True)
class RepaymentParts:
    amount: int
    principal: int
    interest: int
    fees: int


def repayment_parts(loan: Loan, amount: int) -> RepaymentParts:
    """How a repayment of `amount` splits, or LoanError if the loan cannot take it."""
    if loan.status != "active":
        raise LoanError("loan_not_active", f"the loan is {loan.status}: it takes no repayment")
    if amount > loan.owed_by_schedule:
        owed = format_amount(loan.owed_by_schedule, loan.state.application.currency)
        raise LoanError("more_than_owed", f"the loan owes {owed} {loan.state.application.currency} by its schedule; "
                                          "to repay it all early, ask for a payoff quote")
    allocation = allocate_repayment(amount, loan.dues)
    return RepaymentParts(amount, allocation.principal_minor, allocation.interest_minor, allocation.fees_minor)


def prepayment_parts(loan: Loan, amount: int) -> RepaymentParts:
    """A prepayment of principal, or LoanError: it comes after everything due is paid, and leaves some principal
    (repaying all of it is the payoff quote's, which settles the interest accrued)."""
    if loan.status != "active":
        raise LoanError("loan_not_active", f"the loan is {loan.status}: it takes no prepayment")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise LoanError("invalid_amount", "a prepayment is a positive amount")
    due_now = [item for item in loan.instalments if item.due_on <= loan.today and item.unpaid]
    if due_now:
        raise LoanError("instalments_due", "pay what is due first (a repayment), then prepay")
    upcoming = loan.next_instalment
    if upcoming is not None and upcoming.paid:
        raise LoanError("instalment_partly_paid", "the next instalment is partly paid: pay the rest of it first")
    if amount >= loan.outstanding_principal:
        raise LoanError("more_than_owed", "to repay all the principal, pay the loan off by its payoff quote")
    return RepaymentParts(amount, amount, 0, 0)


def payoff_quote(loan: Loan, state_book: LoanBook) -> RepaymentParts:
    """What repays the loan in full on business day `loan.today`: every fee still owed, the interest of the
    instalments already due, interest accrued on the outstanding principal from the last due date passed (or
    disbursement) to today by the product's day count, less any interest already paid on the current period's
    instalment (paid ahead: it counts against the accrual, and is not refunded beyond it), and all principal
    left. Rounded half to even once."""
    if loan.status != "active" or loan.schedule is None:
        raise LoanError("loan_not_active", f"the loan is {loan.status}: there is nothing to pay off")
    past = [item for item in loan.instalments if item.due_on <= loan.today]
    dues = {due.number: due for due in loan.dues}
    fees = sum(due.fees_minor for due in loan.dues)
    interest_due = sum(dues[item.number].interest_minor for item in past)
    period_start = past[-1].due_on if past else loan.schedule.disbursed_on
    product = state_book.product(loan.state.application.product_id, loan.state.application.product_version)
    assert product is not None
    accrued = round(loan.outstanding_principal * Fraction(loan.schedule.annual_rate_percent) / 100
                    * day_count_fraction(product.day_count, period_start, loan.today))  # type: ignore[arg-type]
    current = next((item for item in loan.instalments if item.due_on > loan.today), None)
    paid_ahead = current.interest - dues[current.number].interest_minor if current is not None else 0
    interest = interest_due + max(0, accrued - paid_ahead)
    return RepaymentParts(fees + interest + loan.outstanding_principal, loan.outstanding_principal, interest, fees)


def late_fees_due(loan: Loan, book: LoanBook, charged_at: datetime) -> list[LoanLateFeeCharged]:
    """The late fees to charge on `loan.today`: one per instalment overdue (its due date passed unpaid) that has
    none yet, the product's late fee of what it still owes. A product without a late fee charges nothing."""
    application = loan.state.application
    product = book.product(application.product_id, application.product_version)
    if loan.status != "active" or product is None:
        return []
    calculation = product.product(loan.schedule.annual_rate_percent if loan.schedule else Decimal(0))
    charges = []
    for item in loan.instalments:
        if item.status == "overdue" and item.number not in loan.state.late_fees:
            amount = calculation.late_fee(item.unpaid)
            if amount > 0:
                charges.append(LoanLateFeeCharged(
                    event_id=loan_event_id(loan.state.loan_id, "late-fee", str(item.number)),
                    loan_id=loan.state.loan_id, instalment=item.number, amount=amount,
                    charged_on=loan.today.isoformat(), charged_at=charged_at))
    return charges


def collections_due(loan: Loan) -> list[tuple[InstalmentStatus, int]]:
    """The instalments the servicer collects from the linked account on `loan.today`: each one due or overdue
    and unpaid, with the amount owed up to and including it (older ones first, as allocation pays them)."""
    owed = 0
    due: list[tuple[InstalmentStatus, int]] = []
    for item in loan.instalments:
        if item.due_on > loan.today:
            break
        owed += item.unpaid
        if item.unpaid > 0:
            due.append((item, owed))
    return due[-1:]   # one command for everything owed so far: allocation pays the oldest first


# ---------------------------------------------------------------- interest accrual


@dataclass(frozen=True, slots=True)
class AccrualDue:
    command_id: str
    from_date: date
    through_date: date
    amount: int


def interest_earned_through(loan: Loan, day: date) -> int:
    """The interest `loan` has earned by the end of business date `day`, by its schedule as it stands: each
    instalment's interest spread evenly over its period's days (from the previous due date, or the disbursement
    date, up to the day before its own due date), floored, so it is whole by the end of the day before it is due."""
    if loan.schedule is None:
        return 0
    earned, start = 0, loan.schedule.disbursed_on
    for item in loan.instalments:
        days = (item.due_on - start).days
        elapsed = min(days, max(0, (day - start).days + 1))
        earned += item.interest * elapsed // days if days > 0 else (item.interest if day >= start else 0)
        start = item.due_on
    return earned


def accrual_due(loan: Loan, through: date) -> AccrualDue | None:
    """The accrual that brings an active loan's interest income up to what it has earned by the end of `through`
    (the last closed business date), over the dates after its last accrual; None when there is nothing to post.
    The amount is what was earned less what was recognised (accrued, or paid before it was accrued), so an accrual
    a prepayment overtook is corrected by the next one, and may be negative."""
    if loan.status != "active" or loan.schedule is None:
        return None
    last = loan.accrued_through
    first = last + timedelta(days=1) if last is not None else loan.schedule.disbursed_on
    if first > through:
        return None
    amount = interest_earned_through(loan, through) - loan.interest_recognised
    if amount == 0:
        return None
    return AccrualDue(accrual_command_id(loan.state.loan_id, through), first, through, amount)


# ---------------------------------------------------------------- the portfolio


@dataclass(frozen=True, slots=True)
class ProductPortfolio:
    product_id: str
    name: str
    currency: str
    loans: int
    outstanding_principal: int
    at_risk_30: int          # outstanding principal of loans more than 30 days past due (PAR30's numerator)
    at_risk_90: int
    arrears: int             # overdue instalments, unpaid
    interest_accrued: int = 0   # interest earned and not yet paid (the products' share of interest-receivable)

    def par(self, at_risk: int) -> Decimal:
        """Portfolio at risk, percent of outstanding principal, two places."""
        if self.outstanding_principal == 0:
            return Decimal(0)
        return (Decimal(at_risk) * 100 / Decimal(self.outstanding_principal)).quantize(Decimal("0.01"))


def portfolio(loans: Iterable[Loan], book: LoanBook) -> list[ProductPortfolio]:
    """Active loans summed per product."""
    rows: dict[str, list[Loan]] = {}
    for loan in loans:
        if loan.status == "active":
            rows.setdefault(loan.state.application.product_id, []).append(loan)
    result = []
    for product_id, members in sorted(rows.items()):
        product = book.product(product_id)
        result.append(ProductPortfolio(
            product_id, product.name if product else product_id, members[0].state.application.currency,
            len(members), sum(loan.outstanding_principal for loan in members),
            sum(loan.outstanding_principal for loan in members if loan.days_past_due > 30),
            sum(loan.outstanding_principal for loan in members if loan.days_past_due > 90),
            sum(loan.overdue for loan in members), sum(loan.interest_receivable for loan in members)))
    return result
