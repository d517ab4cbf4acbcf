"""Loan products, repayment schedules, day counts, daily accrual and repayment allocation. Pure: no I/O, no clock.

Apache Fineract is the reference for the rules; the README's "Loans: the calculation rules" shows a worked example.

Numbers. Money is integer minor units of the product's currency (core.money). Rates are `Decimal` percent per
year ("12.5" is 12.5 % nominal a year). Everything in between is an exact `fractions.Fraction`: a day-count
fraction such as 1/365 has no exact decimal, and exact arithmetic makes every rounding an explicit step.

Rounding. An amount due (instalment payment, interest of a period, a percentage fee) is rounded to minor units
half to even (Fineract's default rounding mode, `round()` of a Fraction), once, where it is computed. The last
instalment's principal is whatever principal is still outstanding, so principal repaid equals principal
disbursed to the minor unit and the last instalment absorbs every rounding of the ones before. Daily accrual is
the exception (`daily_accrual`): it posts whole minor units rounded down and carries the exact remainder to the
next day, so over any run of days the posted total never drifts from the exact total by a minor unit or more.

Interest per period (Fineract, interest calculation period "same as repayment period"):
- equal instalments: a regular period is 1/periods-per-year of a year whatever the convention, so its interest
  is outstanding x annual rate / periods per year and the payment is the classic annuity (numpy-financial's pmt):
  Fineract's schedule with 30-day months. The day-count convention applies to a broken first period only (a
  first due date that is not one period after disbursement): its interest counts the convention's days, and the
  level payment is the one that repays the loan exactly over that first period and the regular ones after it.
- equal principal: every period's interest is outstanding x annual rate x the convention's fraction of a year
  between its start and its due date (Fineract with actual days in the month), so a 31-day month under ACT/365F
  costs 31/365 of a year's interest and a 28-day one 28/365.

Grace on principal (Fineract's "grace on principal payment"): the first `grace_on_principal` instalments are
interest only; the principal is amortised over the instalments left.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from core.money import CURRENCY_DIGITS, MAX_MINOR_UNITS, format_amount

Amortisation = Literal["equal_instalments", "equal_principal"]
Frequency = Literal["monthly", "fortnightly", "weekly"]
DayCount = Literal["ACT/365F", "ACT/360", "30/360"]
FeeTiming = Literal["disbursement", "first_instalment"]

AMORTISATIONS: tuple[Amortisation, ...] = ("equal_instalments", "equal_principal")
PERIODS_PER_YEAR: dict[Frequency, int] = {"monthly": 12, "fortnightly": 26, "weekly": 52}
DAY_COUNTS: tuple[DayCount, ...] = ("ACT/365F", "ACT/360", "30/360")
FEE_TIMINGS: tuple[FeeTiming, ...] = ("disbursement", "first_instalment")

# A schedule longer than 50 years of months or 10 of weeks is a data-entry mistake, not a product.
MAX_INSTALMENTS = 600
MAX_ANNUAL_RATE_PERCENT = Decimal(100)
# A rate with more digits than this is a typing accident; it also bounds the size of the exact fractions.
RATE_DECIMAL_PLACES = 6

_HUNDRED = Fraction(100)


class LoanError(ValueError):
    """A product, schedule or rate change that breaks a rule; `reason` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --- rates -------------------------------------------------------------------------------------------------------


def _check_rate(percent: Decimal, what: str) -> None:
    if not isinstance(percent, Decimal) or not percent.is_finite():
        raise LoanError("invalid_rate", f"{what} must be a finite Decimal percent such as Decimal('12.5')")
    if not Decimal(0) <= percent <= MAX_ANNUAL_RATE_PERCENT:
        raise LoanError("invalid_rate", f"{what} {percent}% is outside 0..{MAX_ANNUAL_RATE_PERCENT}%")
    exponent = percent.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > RATE_DECIMAL_PLACES:
        raise LoanError("invalid_rate", f"{what} {percent}% has more than {RATE_DECIMAL_PLACES} decimal places")


def _annual_fraction(percent: Decimal) -> Fraction:
    """12.5 (percent) -> 1/8: Fraction(Decimal) is exact."""
    return Fraction(percent) / _HUNDRED


@dataclass(frozen=True)
class RateChange:
    effective_on: date
    annual_rate_percent: Decimal


@dataclass(frozen=True)
class RateSchedule:
    """A product's nominal annual rate over time: each change holds from its effective date until the next.

    Rates change only forward: `changed` refuses a change dated before `today` or before the latest change, so a
    rate a loan was priced at, or an accrual already run, is never rewritten."""

    changes: tuple[RateChange, ...]

    def __post_init__(self) -> None:
        if not self.changes:
            raise LoanError("invalid_rate", "a rate schedule needs at least one rate")
        for change in self.changes:
            _check_rate(change.annual_rate_percent, "annual rate")
        dates = [change.effective_on for change in self.changes]
        if any(later <= earlier for earlier, later in zip(dates, dates[1:], strict=False)):
            raise LoanError("invalid_rate", "rate changes must have strictly increasing effective dates")

    def rate_on(self, day: date) -> Decimal:
        """The nominal annual rate (percent) in force on `day`."""
        in_force = [change for change in self.changes if change.effective_on <= day]
        if not in_force:
            raise LoanError("no_rate", f"no rate is in force on {day.isoformat()}: the first is effective "
                                       f"{self.changes[0].effective_on.isoformat()}")
        return in_force[-1].annual_rate_percent

    def changed(self, effective_on: date, annual_rate_percent: Decimal, today: date) -> RateSchedule:
        """The schedule with a new rate from `effective_on` on, which must be today or later and after every
        change already made."""
        if effective_on < today:
            raise LoanError("backdated_rate", f"a rate cannot take effect in the past ({effective_on.isoformat()} "
                                              f"is before {today.isoformat()})")
        if effective_on <= self.changes[-1].effective_on:
            raise LoanError("backdated_rate", f"a change is already effective {self.changes[-1].effective_on}; "
                                              "a new one must come after it")
        return RateSchedule((*self.changes, RateChange(effective_on, annual_rate_percent)))


# --- products ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fee:
    """A fee: a flat amount plus a percentage of a base (the principal for origination, the overdue instalment
    for a late payment), the percentage rounded half to even to minor units."""

    flat_minor: int = 0
    percent: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if isinstance(self.flat_minor, bool) or not isinstance(self.flat_minor, int):
            raise LoanError("invalid_fee", "a fee's flat amount is an integer of minor units")
        if not 0 <= self.flat_minor <= MAX_MINOR_UNITS:
            raise LoanError("invalid_fee", f"a fee's flat amount must be within 0..{MAX_MINOR_UNITS} minor units")
        _check_rate(self.percent, "fee percentage")

    def amount(self, base_minor: int) -> int:
        return self.flat_minor + round(base_minor * Fraction(self.percent) / _HUNDRED)


NO_FEE = Fee()


@dataclass(frozen=True)
class LoanProduct:
    """A loan product as staff set it. Ranges are inclusive; `term` counts instalments."""

    currency: str
    principal_min_minor: int
    principal_max_minor: int
    term_min: int
    term_max: int
    annual_rate_percent: Decimal
    amortisation: Amortisation = "equal_instalments"
    frequency: Frequency = "monthly"
    day_count: DayCount = "ACT/365F"
    grace_on_principal: int = 0
    late_payment_fee: Fee = NO_FEE
    origination_fee: Fee = NO_FEE
    # Fineract's "disbursement" charge is taken from the amount disbursed; "first_instalment" adds it to the
    # first instalment's fees instead.
    origination_fee_on: FeeTiming = "disbursement"

    def __post_init__(self) -> None:
        if self.currency not in CURRENCY_DIGITS:
            raise LoanError("unknown_currency", f"{self.currency!r} is not a supported ISO-4217 currency code")
        _check_range("principal", self.principal_min_minor, self.principal_max_minor, 1, MAX_MINOR_UNITS)
        _check_range("term", self.term_min, self.term_max, 1, MAX_INSTALMENTS)
        _check_rate(self.annual_rate_percent, "annual rate")
        _check_choice("amortisation", self.amortisation, AMORTISATIONS)
        _check_choice("frequency", self.frequency, tuple(PERIODS_PER_YEAR))
        _check_choice("day_count", self.day_count, DAY_COUNTS)
        _check_choice("origination_fee_on", self.origination_fee_on, FEE_TIMINGS)
        if not isinstance(self.grace_on_principal, int) or not 0 <= self.grace_on_principal < self.term_min:
            raise LoanError("invalid_grace", "grace on principal must be 0 or more instalments, fewer than the "
                                             "shortest term")

    def late_fee(self, overdue_minor: int) -> int:
        """The fee charged once for a missed instalment of `overdue_minor` still unpaid."""
        return self.late_payment_fee.amount(overdue_minor)


def _check_range(name: str, low: int, high: int, floor: int, ceiling: int) -> None:
    for value in (low, high):
        if isinstance(value, bool) or not isinstance(value, int):
            raise LoanError(f"invalid_{name}", f"the {name} range holds integers")
    if not floor <= low <= high <= ceiling:
        raise LoanError(f"invalid_{name}", f"the {name} range {low}..{high} must be ordered within {floor}..{ceiling}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise LoanError(f"invalid_{name}", f"{name} {value!r} is not one of {', '.join(choices)}")


# --- dates and day counts ----------------------------------------------------------------------------------------


def add_months(anchor: date, months: int) -> date:
    """The same day of the month `months` later, clamped to the month's last day (31 Jan + 1 -> 28/29 Feb).

    Due dates are always counted from the anchor, never from the previous due date, so a loan due on the 31st
    returns to the 31st after February (31 Jan, 28 Feb, 31 Mar, 30 Apr, ...)."""
    month_index = anchor.month - 1 + months
    year, month = anchor.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(anchor.day, calendar.monthrange(year, month)[1]))


def add_periods(anchor: date, frequency: Frequency, periods: int) -> date:
    if frequency == "monthly":
        return add_months(anchor, periods)
    return anchor + timedelta(days=periods * (7 if frequency == "weekly" else 14))


def days_30_360(start: date, end: date) -> int:
    """Days between two dates under 30/360 Bond Basis (ISDA 2006 section 4.16(f), the US "30/360"):
    a 31st start counts as the 30th; a 31st end counts as the 30th only when the start is the 30th or 31st.
    February is not adjusted (31 Jan -> 28 Feb is 28 days; 28 Feb -> 31 Mar is 33)."""
    start_day = min(start.day, 30)
    end_day = min(end.day, 30) if start_day == 30 else end.day
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + end_day - start_day


def day_count_fraction(convention: DayCount, start: date, end: date) -> Fraction:
    """The exact fraction of a year from `start` (included) to `end` (excluded) under the convention:
    ACT/365F actual days / 365 (leap years too), ACT/360 actual days / 360, 30/360 `days_30_360` / 360."""
    if end < start:
        raise LoanError("invalid_period", f"the period ends ({end}) before it starts ({start})")
    if convention == "ACT/365F":
        return Fraction((end - start).days, 365)
    if convention == "ACT/360":
        return Fraction((end - start).days, 360)
    if convention == "30/360":
        return Fraction(days_30_360(start, end), 360)
    raise LoanError("invalid_day_count", f"day count {convention!r} is not one of {', '.join(DAY_COUNTS)}")


# --- daily accrual -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accrual:
    """One day's interest: `exact` minor units, `posted_minor` whole minor units to post to the books, and the
    sub-minor `carried` remainder (0 <= carried < 1) to hand to the next day's accrual."""

    exact: Fraction
    posted_minor: int
    carried: Fraction


def daily_accrual(balance_minor: int, annual_rate_percent: Decimal, convention: DayCount, day: date,
                  carried: Fraction = Fraction(0)) -> Accrual:
    """Interest on `balance_minor` for the single day `day` (from `day` to the next), posted rounded down with
    the remainder carried.

    The day's share of a year is the convention's fraction from `day` to `day + 1`: 1/365 under ACT/365F (29 Feb
    included), 1/360 under ACT/360, and under 30/360 `days_30_360(day, day + 1)`/360: one day for most days, none
    for the 30th of a 31-day month, 3 (2 in a leap year) for the last day of February, so every calendar month
    accrues exactly 30/360. Rounding down and carrying means sum(posted) + final carried == sum(exact) exactly,
    over any number of days: not a minor unit is lost or invented. Negative balances (a credit) accrue nothing."""
    if carried < 0 or carried >= 1:
        raise LoanError("invalid_carry", "the carried remainder is a fraction of one minor unit, 0 <= carry < 1")
    _check_rate(annual_rate_percent, "annual rate")
    fraction = day_count_fraction(convention, day, day + timedelta(days=1))
    exact = max(balance_minor, 0) * _annual_fraction(annual_rate_percent) * fraction
    total = exact + carried
    posted = total.numerator // total.denominator
    return Accrual(exact=exact, posted_minor=posted, carried=total - posted)


# --- schedules ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instalment:
    number: int
    due_on: date
    principal_minor: int
    interest_minor: int
    fees_minor: int
    outstanding_principal_minor: int   # after this instalment is paid

    @property
    def total_minor(self) -> int:
        return self.principal_minor + self.interest_minor + self.fees_minor


@dataclass(frozen=True)
class Schedule:
    currency: str
    principal_minor: int
    annual_rate_percent: Decimal
    disbursed_on: date
    # The origination fee taken at disbursement (0 when it is charged on the first instalment, or none).
    fee_at_disbursement_minor: int
    instalments: tuple[Instalment, ...] = field(default_factory=tuple)

    @property
    def total_principal_minor(self) -> int:
        return sum(instalment.principal_minor for instalment in self.instalments)

    @property
    def total_interest_minor(self) -> int:
        return sum(instalment.interest_minor for instalment in self.instalments)

    @property
    def total_fees_minor(self) -> int:
        return sum(instalment.fees_minor for instalment in self.instalments)

    @property
    def total_due_minor(self) -> int:
        return sum(instalment.total_minor for instalment in self.instalments)


def annuity_payment(principal: Fraction, periodic_rate: Fraction, periods: int,
                    first_period_rate: Fraction | None = None) -> Fraction:
    """The exact level payment repaying `principal` over `periods` at `periodic_rate` (numpy-financial's pmt), or,
    with `first_period_rate`, the one that repays it exactly when the first period (a broken one) costs that rate
    instead: P * (1 + first) = A * (1 + annuity factor of the periods - 1 regular ones). With first ==
    periodic_rate the two agree."""
    if first_period_rate is None:
        if periodic_rate == 0:
            return principal / periods
        growth = (1 + periodic_rate) ** periods
        return principal * periodic_rate * growth / (growth - 1)
    rest = periods - 1
    rest_factor = Fraction(rest) if periodic_rate == 0 else (1 - (1 + periodic_rate) ** -rest) / periodic_rate
    return principal * (1 + first_period_rate) / (1 + rest_factor)


def due_dates(frequency: Frequency, term: int, disbursed_on: date, first_due: date | None) -> list[date]:
    """Instalment due dates: one period after disbursement, or from `first_due`, every period after."""
    if first_due is None:
        return [add_periods(disbursed_on, frequency, number) for number in range(1, term + 1)]
    if not disbursed_on < first_due < add_periods(disbursed_on, frequency, 2):
        raise LoanError("invalid_first_due", "the first due date must come after disbursement and before two "
                                             "periods have passed")
    return [add_periods(first_due, frequency, number) for number in range(term)]


def schedule(product: LoanProduct, principal_minor: int, term: int, disbursed_on: date,
             first_due: date | None = None, *, annual_rate_percent: Decimal | None = None) -> Schedule:
    """The repayment schedule of `principal_minor` over `term` instalments, disbursed on `disbursed_on`.

    `annual_rate_percent` is the rate the loan was approved at (a counter-offer, or the product's
    `RateSchedule.rate_on` the approval date); the product's rate by default."""
    _check_loan(product, principal_minor, term)
    rate = product.annual_rate_percent if annual_rate_percent is None else annual_rate_percent
    _check_rate(rate, "annual rate")
    dates = due_dates(product.frequency, term, disbursed_on, first_due)
    rates = period_rates(product, rate, disbursed_on, dates)
    periodic = _annual_fraction(rate) / PERIODS_PER_YEAR[product.frequency]
    # A broken first period inside the grace is interest only: the annuity then runs over regular periods.
    broken_first = rates[0] != periodic and product.grace_on_principal == 0
    payment = round(annuity_payment(Fraction(principal_minor), periodic, term - product.grace_on_principal,
                                    rates[0] if broken_first else None))
    fee = product.origination_fee.amount(principal_minor)
    instalments: list[Instalment] = []
    balance = principal_minor
    for number, (due_on, period_rate) in enumerate(zip(dates, rates, strict=True), start=1):
        interest = round(balance * period_rate)
        principal = _principal_part(product.amortisation, number, term, product.grace_on_principal, balance,
                                    principal_minor, payment - interest)
        balance -= principal
        fees = fee if number == 1 and product.origination_fee_on == "first_instalment" else 0
        instalments.append(Instalment(number, due_on, principal, interest, fees, balance))
    return Schedule(product.currency, principal_minor, rate, disbursed_on,
                    fee if product.origination_fee_on == "disbursement" else 0, tuple(instalments))


PrepaymentEffect = Literal["shorten_term", "lower_instalment"]
PREPAYMENT_EFFECTS: tuple[PrepaymentEffect, ...] = ("shorten_term", "lower_instalment")


def reschedule(product: LoanProduct, annual_rate_percent: Decimal, balance_minor: int, period_start: date,
               dates: Sequence[date], first_number: int, effect: PrepaymentEffect,
               payment_minor: int) -> tuple[Instalment, ...]:
    """The instalments left after a prepayment leaves `balance_minor` of principal at `period_start` (the last due
    date passed, or disbursement), over the remaining due `dates` (Fineract's "reschedule on prepayment").

    - `lower_instalment`: the same dates, the balance amortised over them afresh (a new level payment, or a new
      equal principal share), the last instalment absorbing rounding as always.
    - `shorten_term`: the same instalment (`payment_minor`, the regular one before the prepayment; for equal
      principal its principal share) until the balance is repaid: fewer instalments, the last one smaller.
    Interest of each period is counted as in `schedule` (the first remaining period on the new balance)."""
    if effect not in PREPAYMENT_EFFECTS:
        raise LoanError("invalid_effect", f"a prepayment shortens the term or lowers the instalment, not {effect!r}")
    if not dates or balance_minor <= 0:
        return ()
    rates = period_rates(product, annual_rate_percent, period_start, dates)
    periodic = _annual_fraction(annual_rate_percent) / PERIODS_PER_YEAR[product.frequency]
    count = len(dates)
    if effect == "lower_instalment":
        if product.amortisation == "equal_principal":
            payment_minor = balance_minor // count
        else:
            broken = rates[0] != periodic
            payment_minor = round(annuity_payment(Fraction(balance_minor), periodic, count,
                                                  rates[0] if broken else None))
    instalments: list[Instalment] = []
    balance = balance_minor
    for offset, (due_on, period_rate) in enumerate(zip(dates, rates, strict=True)):
        interest = round(balance * period_rate)
        if product.amortisation == "equal_principal":
            principal = min(payment_minor, balance)
        else:
            principal = min(max(payment_minor - interest, 0), balance)
        if offset == count - 1:
            principal = balance
        balance -= principal
        instalments.append(Instalment(first_number + offset, due_on, principal, interest, 0, balance))
        if balance == 0 and effect == "shorten_term":   # a lower instalment keeps every date, as `schedule` does
            break
    return tuple(instalments)


def period_rates(product: LoanProduct, annual_rate_percent: Decimal, disbursed_on: date,
                 dates: Sequence[date]) -> list[Fraction]:
    """Each period's share of the annual rate: what the outstanding principal is multiplied by for the period's
    interest. Equal instalments: 1/periods-per-year of it for a regular period; otherwise (equal principal, or a
    broken first period) the day-count convention's fraction of a year from the period's start to its due date."""
    annual = _annual_fraction(annual_rate_percent)
    periodic = annual / PERIODS_PER_YEAR[product.frequency]
    regular_first = add_periods(disbursed_on, product.frequency, 1)
    rates: list[Fraction] = []
    for start, end in zip([disbursed_on, *dates[:-1]], dates, strict=True):
        regular = start != disbursed_on or end == regular_first
        if product.amortisation == "equal_instalments" and regular:
            rates.append(periodic)
        else:
            rates.append(annual * day_count_fraction(product.day_count, start, end))
    return rates


def _principal_part(amortisation: Amortisation, number: int, term: int, grace: int, balance: int,
                    principal_minor: int, annuity_principal: int) -> int:
    """The principal of instalment `number`: none in grace, all that is left in the last, else by the method.

    Equal principal rounds the share down (principal // instalments), so the last, absorbing the remainder, is
    never smaller than the others. An annuity's principal is the rounded payment less the period's interest,
    never more than what is outstanding (a broken first period or tiny loans could otherwise overshoot)."""
    if number <= grace:
        return 0
    if number == term:
        return balance
    if amortisation == "equal_principal":
        return min(principal_minor // (term - grace), balance)
    return min(max(annuity_principal, 0), balance)


def _check_loan(product: LoanProduct, principal_minor: int, term: int) -> None:
    if isinstance(principal_minor, bool) or not isinstance(principal_minor, int):
        raise LoanError("invalid_principal", "the principal is an integer of minor units")
    if not product.principal_min_minor <= principal_minor <= product.principal_max_minor:
        low, high = (format_amount(minor, product.currency)
                     for minor in (product.principal_min_minor, product.principal_max_minor))
        raise LoanError("principal_out_of_range", f"the principal must be within the product's {low}..{high} "
                                                  f"{product.currency}")
    if isinstance(term, bool) or not isinstance(term, int) or not product.term_min <= term <= product.term_max:
        raise LoanError("term_out_of_range", f"the term must be within the product's "
                                             f"{product.term_min}..{product.term_max} instalments")


# --- repayment allocation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """What is still unpaid of one instalment."""

    number: int
    fees_minor: int
    interest_minor: int
    principal_minor: int


@dataclass(frozen=True)
class Allocation:
    """How a repayment was split: per instalment what it paid (`Due` amounts here are *paid*, not owed), and
    what is left over (a prepayment, for the caller to apply as the customer chose)."""

    paid: tuple[Due, ...]
    unallocated_minor: int

    @property
    def fees_minor(self) -> int:
        return sum(part.fees_minor for part in self.paid)

    @property
    def interest_minor(self) -> int:
        return sum(part.interest_minor for part in self.paid)

    @property
    def principal_minor(self) -> int:
        return sum(part.principal_minor for part in self.paid)


def dues_of(loan_schedule: Schedule) -> tuple[Due, ...]:
    """A schedule's instalments as amounts owed (before any payment)."""
    return tuple(Due(instalment.number, instalment.fees_minor, instalment.interest_minor,
                     instalment.principal_minor) for instalment in loan_schedule.instalments)


def allocate_repayment(amount_minor: int, dues: Sequence[Due]) -> Allocation:
    """Split a repayment over what is owed: instalment by instalment, oldest (lowest number) first, and within
    one instalment fees (late fees included) -> interest -> principal, Fineract's default "penalties, fees,
    interest, principal" order. The next instalment gets nothing until the one before is paid in full."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise LoanError("invalid_amount", "a repayment is a positive integer of minor units")
    left = amount_minor
    paid: list[Due] = []
    for due in sorted(dues, key=lambda owed: owed.number):
        if min(due.fees_minor, due.interest_minor, due.principal_minor) < 0:
            raise LoanError("invalid_due", f"instalment {due.number} owes a negative amount")
        if left == 0:
            break
        fees = min(left, due.fees_minor)
        left -= fees
        interest = min(left, due.interest_minor)
        left -= interest
        principal = min(left, due.principal_minor)
        left -= principal
        if fees or interest or principal:
            paid.append(Due(due.number, fees, interest, principal))
    return Allocation(tuple(paid), left)


def with_late_fee(due: Due, product: LoanProduct) -> Due:
    """The instalment owed with the product's late fee added (charged once per missed instalment: the caller
    records that it has been charged)."""
    overdue = due.fees_minor + due.interest_minor + due.principal_minor
    return replace(due, fees_minor=due.fees_minor + product.late_fee(overdue))
