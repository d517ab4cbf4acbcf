"""Loan schedules, day counts, accrual and allocation (core/loans.py), against numpy-financial and published
figures. numpy-financial computes in floats: it is an oracle only, the code under test never sees a float."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import numpy_financial as npf
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from core.loans import (
    PERIODS_PER_YEAR,
    Due,
    Fee,
    LoanError,
    LoanProduct,
    RateChange,
    RateSchedule,
    add_months,
    add_periods,
    allocate_repayment,
    day_count_fraction,
    daily_accrual,
    days_30_360,
    dues_of,
    reschedule,
    schedule,
    with_late_fee,
)
from core.money import CURRENCY_DIGITS


def product(**overrides: object) -> LoanProduct:
    fields: dict[str, object] = {
        "currency": "EUR", "principal_min_minor": 1, "principal_max_minor": 10**12, "term_min": 1,
        "term_max": 600, "annual_rate_percent": Decimal(12),
    }
    fields.update(overrides)
    return LoanProduct(**fields)  # type: ignore[arg-type]


# --- published examples ------------------------------------------------------------------------------------------


def test_textbook_12_month_loan_at_12_percent() -> None:
    # The standard textbook amortisation example: 10,000.00 over 12 months at 12% nominal (1% a month) is 888.49
    # a month (e.g. Brealey, Myers & Allen's and most amortisation-table tutorials; checked by hand here:
    # 10000 * 0.01 / (1 - 1.01**-12) = 888.4878...). The first rows, by hand: interest 10000.00 * 1% = 100.00,
    # principal 788.49, balance 9211.51; interest 92.1151 -> 92.12, principal 796.37, balance 8415.14.
    loan = schedule(product(), 1_000_000, 12, date(2026, 1, 15))
    rows = loan.instalments
    assert [row.total_minor for row in rows[:-1]] == [88_849] * 11
    assert (rows[0].interest_minor, rows[0].principal_minor, rows[0].outstanding_principal_minor) == (
        10_000, 78_849, 921_151)
    assert (rows[1].interest_minor, rows[1].principal_minor, rows[1].outstanding_principal_minor) == (
        9_212, 79_637, 841_514)
    # The last absorbs the roundings: it repays the 879.67 left, plus 1% interest on it (8.7967 -> 8.80).
    assert (rows[-1].principal_minor, rows[-1].interest_minor, rows[-1].total_minor) == (87_967, 880, 88_847)
    assert loan.total_principal_minor == 1_000_000
    assert loan.total_interest_minor == 66_186


def test_wikipedia_mortgage_example() -> None:
    # Wikipedia, "Mortgage calculator" (section "Monthly payment formula"): a 200,000 home loan at a fixed 6.5%
    # a year over 30 years has a fixed monthly payment of $1,264.14. By hand: r = 0.065/12,
    # 200000 * r / (1 - (1 + r)**-360) = 1264.136...
    loan = schedule(product(currency="USD", annual_rate_percent=Decimal("6.5")), 20_000_000, 360, date(2026, 3, 1))
    assert {row.total_minor for row in loan.instalments[:-1]} == {126_414}
    assert loan.instalments[0].interest_minor == 108_333   # 200000 * 0.065 / 12 = 1083.333...
    assert loan.total_principal_minor == 20_000_000


def test_equal_principal_by_hand() -> None:
    # 1,200.00 over 12 months, equal principal, 12% under 30/360 from the 15th: every period is 30/360 of a year,
    # so the interest is 1% of the balance: 12.00, 11.00, ... 1.00; principal 100.00 each.
    loan = schedule(product(amortisation="equal_principal", day_count="30/360"), 120_000, 12, date(2026, 1, 15))
    assert [row.principal_minor for row in loan.instalments] == [10_000] * 12
    assert [row.interest_minor for row in loan.instalments] == [1_200 - 100 * number for number in range(12)]
    assert loan.total_interest_minor == 7_800


def test_equal_principal_counts_actual_days() -> None:
    # 3,650.00 at 10% ACT/365F from 31 January: February (28 days) costs 3650 * 0.10 * 28/365 = 28.00, March (31)
    # on the 2,433.34 left after the first third (365000 // 3 = 121666 minor units)... by hand below.
    loan = schedule(product(amortisation="equal_principal", annual_rate_percent=Decimal(10)), 365_000, 3,
                    date(2026, 1, 31))
    assert [row.due_on for row in loan.instalments] == [date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]
    assert loan.instalments[0].interest_minor == 2_800
    assert loan.instalments[1].interest_minor == round(Fraction(365_000 - 121_666) * Fraction(1, 10) * Fraction(31, 365))
    assert [row.principal_minor for row in loan.instalments] == [121_666, 121_666, 121_668]


# --- numpy-financial as the oracle -------------------------------------------------------------------------------

rates = st.decimals(min_value=Decimal(0), max_value=Decimal(30), places=3)
frequencies = st.sampled_from(list(PERIODS_PER_YEAR))
currencies = st.sampled_from(["EUR", "JPY", "BHD", "KWD", "USD", "CLP"])


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")   # npf at a 0% rate
@settings(max_examples=200, deadline=None)
@example(currency="EUR", rate=Decimal("0.001"), frequency="weekly", term=1, major=4_538_626, day_count="ACT/365F",
         disbursed=date(2000, 1, 1))   # numpy's float noise at a tiny rate straddles a half: excused, not failed
@given(currency=currencies, rate=rates, frequency=frequencies, term=st.integers(1, 360),
       major=st.integers(100, 5_000_000), day_count=st.sampled_from(["ACT/365F", "ACT/360", "30/360"]),
       disbursed=st.dates(date(2000, 1, 1), date(2080, 12, 31)))
def test_equal_instalments_match_numpy_financial(currency: str, rate: Decimal, frequency: str, term: int,
                                                 major: int, day_count: str, disbursed: date) -> None:
    principal = major * 10 ** CURRENCY_DIGITS[currency]
    loan = schedule(product(currency=currency, frequency=frequency, day_count=day_count,
                            annual_rate_percent=rate), principal, term, disbursed)
    periodic = float(rate) / 100 / PERIODS_PER_YEAR[frequency]   # type: ignore[index]
    exact_payment = -npf.pmt(periodic, term, principal)
    # Loans whose payment outweighs the compounded rounding of the payment (see the tolerance below) by the time
    # of the last instalment: below that (10,000 yen over 360 months at 0%, a 27.78-yen payment rounded to 28)
    # the schedule still repays the principal exactly, but the overshoot is absorbed before the last instalment.
    growth = ((1 + periodic) ** term - 1) / periodic if periodic else term
    assume(exact_payment / (1 + periodic) > growth + 1)
    payment = loan.instalments[0].total_minor
    # numpy's float error: pmt computes ((1 + r)**n - 1) / r, which cancels catastrophically at tiny rates (at
    # 0.001% a year, weekly, on 4.5 million it is off by 0.22 minor units); a relative 1e-15 of the principal
    # over the rate bounds it, and 1e-6 covers the rest.
    noise = 1e-6 + (1e-15 * principal / periodic if periodic else 0)
    # The payment is the oracle's rounded to minor units: both round the same exact value, so they disagree only
    # when the oracle's noise straddles a half, which is excused.
    if abs(exact_payment % 1 - 0.5) > noise:
        assert payment == round(exact_payment)
    assert all(row.total_minor == payment for row in loan.instalments[:-1])
    # Per period: ours differs from the exact (unrounded) schedule only through roundings. Each instalment's
    # interest is rounded (at most 1/2 a minor unit) and the payment was rounded (by |d| <= 1/2); both shift the
    # balance, and a balance error grows by (1 + r) a period. So after k - 1 periods the balance is off by at most
    # (1/2 + |d|) * ((1 + r)**(k-1) - 1) / r, the interest by r times that plus its own 1/2:
    #   tolerance_k = 1/2 + (1/2 + |d|) * ((1 + r)**(k-1) - 1)
    # which is below one minor unit for short loans and, up to 15% a year, never more than one minor unit per
    # period elapsed (asserted; above that, decades of compounding let the payment's rounding grow faster: the
    # bound still holds), numpy's noise aside. Principal = payment - interest, so it adds |d|.
    drift = 0.5 + abs(payment - exact_payment) + noise
    for row in loan.instalments:
        k = row.number
        tolerance = 0.5 + drift * ((1 + periodic) ** (k - 1) - 1) + noise
        assert tolerance <= k or rate > 15 or noise > 0.1
        assert abs(row.interest_minor - -npf.ipmt(periodic, k, term, principal)) <= tolerance
        if k < term:
            assert abs(row.principal_minor - -npf.ppmt(periodic, k, term, principal)) <= tolerance + abs(
                payment - exact_payment)
    # The last repays what is left: the oracle's last principal plus the whole balance drift.
    last = loan.instalments[-1]
    assert abs(last.principal_minor - -npf.ppmt(periodic, term, term, principal)) <= (
        drift * ((1 + periodic) ** term - 1) / periodic if periodic else drift * term) + noise


# --- properties --------------------------------------------------------------------------------------------------

products = st.builds(
    lambda currency, rate, frequency, amortisation, day_count, grace, fee_on, fee_percent: product(
        currency=currency, annual_rate_percent=rate, frequency=frequency, amortisation=amortisation,
        day_count=day_count, grace_on_principal=grace, origination_fee=Fee(flat_minor=500, percent=fee_percent),
        origination_fee_on=fee_on, term_min=grace + 1),
    currencies, st.decimals(min_value=Decimal(0), max_value=Decimal(25), places=2), frequencies,
    st.sampled_from(["equal_instalments", "equal_principal"]), st.sampled_from(["ACT/365F", "ACT/360", "30/360"]),
    st.integers(0, 6), st.sampled_from(["disbursement", "first_instalment"]),
    st.decimals(min_value=Decimal(0), max_value=Decimal(3), places=2),
)


@settings(max_examples=300, deadline=None)
@given(loan_product=products, extra_term=st.integers(1, 120), major=st.integers(10_000, 2_000_000),
       disbursed=st.dates(date(2000, 1, 1), date(2080, 12, 31)), first_due_days=st.none() | st.integers(1, 40))
def test_schedule_properties(loan_product: LoanProduct, extra_term: int, major: int, disbursed: date,
                             first_due_days: int | None) -> None:
    term = loan_product.grace_on_principal + extra_term
    principal = major * 10 ** CURRENCY_DIGITS[loan_product.currency]
    # A first due date before two periods have passed (the schedule refuses a later one).
    longest = {"monthly": 40, "fortnightly": 27, "weekly": 13}[loan_product.frequency]
    first_due = None if first_due_days is None else disbursed + timedelta(days=(first_due_days - 1) % longest + 1)
    loan = schedule(loan_product, principal, term, disbursed, first_due)
    rows = loan.instalments
    assert len(rows) == term
    assert loan.total_principal_minor == principal   # principal repaid == principal disbursed, exactly
    fee = loan_product.origination_fee.amount(principal)
    assert loan.total_due_minor == principal + loan.total_interest_minor + loan.total_fees_minor
    assert loan.total_fees_minor + loan.fee_at_disbursement_minor == fee
    assert all(row.principal_minor >= 0 and row.interest_minor >= 0 and row.outstanding_principal_minor >= 0
               for row in rows)
    assert rows[-1].outstanding_principal_minor == 0
    grace = loan_product.grace_on_principal
    assert all(row.principal_minor == 0 and row.outstanding_principal_minor == principal for row in rows[:grace])
    balances = [principal] + [row.outstanding_principal_minor for row in rows[grace:]]
    # A first period longer than a regular one can cost more interest than an annuity's payment: that instalment
    # then repays no principal (it is never negative), so strictly decreasing holds from the next one on.
    long_first = first_due is not None and first_due > add_periods(disbursed, loan_product.frequency, 1)
    decreasing = balances[1:] if long_first and grace == 0 else balances
    assert all(later < earlier for earlier, later in zip(decreasing, decreasing[1:], strict=False))
    assert all(later <= earlier for earlier, later in zip(balances, balances[1:], strict=False))
    assert all(earlier.due_on < later.due_on for earlier, later in zip(rows, rows[1:], strict=False))


@settings(max_examples=100, deadline=None)
@given(loan_product=products, term=st.integers(1, 360), principal=st.integers(1, 2_000),
       disbursed=st.dates(date(2000, 1, 1), date(2080, 12, 31)))
def test_tiny_loans_still_repay_exactly(loan_product: LoanProduct, term: int, principal: int, disbursed: date) -> None:
    # A payment of a few minor units over many instalments: rounding it can repay the principal before the last
    # instalment. The principal part is then capped at what is outstanding: never negative, never overpaid.
    term = max(term, loan_product.term_min)
    loan = schedule(loan_product, principal, term, disbursed)
    assert loan.total_principal_minor == principal
    assert all(row.principal_minor >= 0 and row.outstanding_principal_minor >= 0 for row in loan.instalments)
    assert loan.instalments[-1].outstanding_principal_minor == 0


@pytest.mark.parametrize("currency", ["JPY", "BHD", "KWD"])
def test_currencies_with_zero_and_three_minor_units(currency: str) -> None:
    # 1,000,000 yen or 10,000.000 dinars over 12 months at 12%: the payment is 88,848.79 -> 88,849 yen, and
    # 888.4878867 -> 888.488 dinars (three decimals).
    principal = 1_000_000 if currency == "JPY" else 10_000_000
    loan = schedule(product(currency=currency), principal, 12, date(2026, 5, 20))
    expected = 88_849 if currency == "JPY" else 888_488
    assert {row.total_minor for row in loan.instalments[:-1]} == {expected}
    assert loan.total_principal_minor == principal


# --- due dates ---------------------------------------------------------------------------------------------------


def test_monthly_due_dates_clamp_to_the_month_end_and_come_back() -> None:
    loan = schedule(product(), 100_000, 5, date(2024, 1, 31))
    assert [row.due_on for row in loan.instalments] == [
        date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30), date(2024, 5, 31), date(2024, 6, 30)]
    assert add_months(date(2023, 11, 30), 3) == date(2024, 2, 29)
    assert add_months(date(2023, 12, 15), 1) == date(2024, 1, 15)


def test_weekly_and_fortnightly_due_dates() -> None:
    weekly = schedule(product(frequency="weekly"), 100_000, 3, date(2026, 1, 1))
    fortnightly = schedule(product(frequency="fortnightly"), 100_000, 2, date(2026, 1, 1))
    assert [row.due_on for row in weekly.instalments] == [date(2026, 1, 8), date(2026, 1, 15), date(2026, 1, 22)]
    assert [row.due_on for row in fortnightly.instalments] == [date(2026, 1, 15), date(2026, 1, 29)]


def test_broken_first_period_counts_its_days() -> None:
    # Disbursed 10 January, first due 1 March: 50 days at 12% ACT/365F on 10,000.00 = 164.38 (16438.356...),
    # then monthly from 1 March on the 1st.
    loan = schedule(product(), 1_000_000, 3, date(2026, 1, 10), date(2026, 3, 1))
    assert [row.due_on for row in loan.instalments] == [date(2026, 3, 1), date(2026, 4, 1), date(2026, 5, 1)]
    assert loan.instalments[0].interest_minor == 16_438
    assert loan.total_principal_minor == 1_000_000
    # The level payment accounts for the longer first period: P * (1 + 0.12 * 50/365) / (1 + a(2 periods at 1%))
    # = 3,421.90 (342189.62 minor units), so the last instalment differs from the others by roundings only
    # (3,421.88: the 3,388.00 left plus 1% interest, 33.88).
    assert [row.total_minor for row in loan.instalments] == [342_190, 342_190, 342_188]
    with pytest.raises(LoanError) as error:
        schedule(product(), 1_000_000, 3, date(2026, 1, 10), date(2026, 3, 10))
    assert error.value.reason == "invalid_first_due"


def test_grace_on_principal_is_interest_only_then_an_annuity_over_the_rest() -> None:
    loan = schedule(product(grace_on_principal=2, term_min=3), 1_000_000, 14, date(2026, 1, 15))
    assert [(row.principal_minor, row.interest_minor) for row in loan.instalments[:2]] == [(0, 10_000)] * 2
    assert {row.total_minor for row in loan.instalments[2:-1]} == {88_849}   # the 12-month annuity


# --- day counts --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end", "days"), [
    # ISDA 2006 4.16(f) 30/360 Bond Basis cases
    (date(2026, 1, 31), date(2026, 2, 28), 28),    # February is not adjusted
    (date(2026, 2, 28), date(2026, 3, 31), 33),    # start not the 30th/31st: the 31st end stays 31
    (date(2026, 1, 30), date(2026, 3, 31), 60),    # start the 30th: the 31st end counts as the 30th
    (date(2026, 1, 31), date(2026, 3, 31), 60),    # start the 31st -> 30th, then the end too
    (date(2026, 1, 15), date(2026, 3, 31), 76),
    (date(2026, 1, 15), date(2027, 1, 15), 360),
    (date(2024, 2, 29), date(2024, 3, 31), 32),
])
def test_30_360_end_of_month_rules(start: date, end: date, days: int) -> None:
    assert days_30_360(start, end) == days
    assert day_count_fraction("30/360", start, end) == Fraction(days, 360)


def test_act_360_and_act_365f_over_a_leap_year() -> None:
    start, end = date(2024, 1, 1), date(2025, 1, 1)   # 366 actual days
    assert day_count_fraction("ACT/365F", start, end) == Fraction(366, 365)
    assert day_count_fraction("ACT/360", start, end) == Fraction(366, 360)
    assert day_count_fraction("30/360", start, end) == 1
    # 29 February counts as a day under both actual conventions
    assert day_count_fraction("ACT/365F", date(2024, 2, 28), date(2024, 3, 1)) == Fraction(2, 365)
    assert day_count_fraction("ACT/360", date(2023, 2, 28), date(2023, 3, 1)) == Fraction(1, 360)


# --- daily accrual -----------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(balance=st.integers(0, 10**11), rate=rates, convention=st.sampled_from(["ACT/365F", "ACT/360", "30/360"]),
       start=st.dates(date(2000, 1, 1), date(2080, 1, 1)), days=st.integers(1, 400))
def test_daily_accrual_never_loses_a_minor_unit(balance: int, rate: Decimal, convention: str, start: date,
                                                days: int) -> None:
    carried = Fraction(0)
    posted = 0
    exact = Fraction(0)
    for offset in range(days):
        accrual = daily_accrual(balance, rate, convention, start + timedelta(days=offset), carried)  # type: ignore[arg-type]
        assert 0 <= accrual.carried < 1 and accrual.posted_minor >= 0
        posted, exact, carried = posted + accrual.posted_minor, exact + accrual.exact, accrual.carried
    assert posted + carried == exact   # nothing lost, nothing invented
    assert exact - 1 < posted <= exact


def test_daily_accrual_of_a_month_by_hand() -> None:
    # 10,000.00 at 3.65% ACT/365F accrues exactly 1.00 a day; at 1% it accrues 0.2739726... a day: 31 days post
    # 8.49 (849.315... minor units, floor) with 0.315... carried.
    assert daily_accrual(1_000_000, Decimal("3.65"), "ACT/365F", date(2026, 1, 1)).posted_minor == 100
    carried, posted = Fraction(0), 0
    for day in range(1, 32):
        accrual = daily_accrual(1_000_000, Decimal(1), "ACT/365F", date(2026, 1, day), carried)
        posted, carried = posted + accrual.posted_minor, accrual.carried
    assert posted == 849
    assert carried == Fraction(1_000_000 * 31, 100 * 365) - 849
    # 30/360: a 31-day month and February accrue 30 days each
    for month_days in (range(1, 32), range(1, 29)):
        month = 1 if len(month_days) == 31 else 2
        total = sum(daily_accrual(3_600_000, Decimal(10), "30/360", date(2026, month, day)).exact
                    for day in month_days)
        assert total == 3_600_000 * Fraction(1, 10) * Fraction(30, 360)


# --- allocation --------------------------------------------------------------------------------------------------


def test_allocation_pays_fees_then_interest_then_principal_oldest_first() -> None:
    dues = [Due(2, 0, 900, 79_000), Due(1, 1_500, 1_000, 78_000)]
    allocation = allocate_repayment(2_000, dues)
    assert allocation.paid == (Due(1, 1_500, 500, 0),)
    allocation = allocate_repayment(1_500 + 1_000 + 78_000 + 100, dues)
    assert allocation.paid == (Due(1, 1_500, 1_000, 78_000), Due(2, 0, 100, 0))
    assert allocation.unallocated_minor == 0
    allocation = allocate_repayment(200_000, dues)
    assert (allocation.fees_minor, allocation.interest_minor, allocation.principal_minor) == (1_500, 1_900, 157_000)
    assert allocation.unallocated_minor == 200_000 - 1_500 - 1_900 - 157_000


@settings(max_examples=100, deadline=None)
@given(amount=st.integers(1, 2_000_000), loan_product=products)
def test_allocation_conserves_the_amount(amount: int, loan_product: LoanProduct) -> None:
    loan = schedule(loan_product, 1_000_000, loan_product.term_min + 3, date(2026, 1, 1))
    allocation = allocate_repayment(amount, dues_of(loan))
    assert allocation.fees_minor + allocation.interest_minor + allocation.principal_minor + (
        allocation.unallocated_minor) == amount
    assert allocation.unallocated_minor == max(0, amount - loan.total_due_minor)


def test_late_fee_is_added_to_the_instalment_fees() -> None:
    late = product(late_payment_fee=Fee(flat_minor=1_000, percent=Decimal(2)))
    assert with_late_fee(Due(1, 0, 1_000, 9_000), late) == Due(1, 1_000 + 200, 1_000, 9_000)


# --- products and rates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"currency": "XXX"}, "unknown_currency"),
    ({"principal_min_minor": 0}, "invalid_principal"),
    ({"principal_min_minor": 10, "principal_max_minor": 5}, "invalid_principal"),
    ({"term_max": 601}, "invalid_term"),
    ({"annual_rate_percent": Decimal(-1)}, "invalid_rate"),
    ({"annual_rate_percent": Decimal("NaN")}, "invalid_rate"),
    ({"annual_rate_percent": Decimal("1.0000001")}, "invalid_rate"),
    ({"amortisation": "flat"}, "invalid_amortisation"),
    ({"frequency": "daily"}, "invalid_frequency"),
    ({"day_count": "ACT/ACT"}, "invalid_day_count"),
    ({"grace_on_principal": 1}, "invalid_grace"),   # the shortest term is 1: no instalment would repay
])
def test_product_validation(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(LoanError) as error:
        product(**overrides)
    assert error.value.reason == reason


def test_schedule_refuses_out_of_range_loans() -> None:
    narrow = product(principal_min_minor=100_000, principal_max_minor=200_000, term_min=6, term_max=12)
    for principal, term, reason in [(99_999, 6, "principal_out_of_range"), (100_000, 13, "term_out_of_range")]:
        with pytest.raises(LoanError) as error:
            schedule(narrow, principal, term, date(2026, 1, 1))
        assert error.value.reason == reason


def test_rates_change_only_forward() -> None:
    rates_over_time = RateSchedule((RateChange(date(2026, 1, 1), Decimal(12)),))
    changed = rates_over_time.changed(date(2026, 6, 1), Decimal("10.5"), today=date(2026, 5, 20))
    assert changed.rate_on(date(2026, 5, 31)) == Decimal(12)
    assert changed.rate_on(date(2026, 6, 1)) == Decimal("10.5")
    with pytest.raises(LoanError) as error:
        changed.changed(date(2026, 5, 1), Decimal(9), today=date(2026, 4, 1))   # before the latest change
    assert error.value.reason == "backdated_rate"
    with pytest.raises(LoanError) as error:
        changed.changed(date(2026, 7, 1), Decimal(9), today=date(2026, 7, 2))   # in the past
    assert error.value.reason == "backdated_rate"
    with pytest.raises(LoanError) as error:
        changed.rate_on(date(2025, 12, 31))
    assert error.value.reason == "no_rate"
    # a loan approved under a rate keeps it: the schedule takes the rate in force on the approval date
    loan = schedule(product(), 1_000_000, 12, date(2026, 6, 2), annual_rate_percent=changed.rate_on(date(2026, 6, 2)))
    assert loan.annual_rate_percent == Decimal("10.5")
    assert loan.instalments[0].interest_minor == 8_750   # 10000.00 * 10.5% / 12


def test_the_readme_worked_example() -> None:
    # README, "Loans: the calculation rules": 3,000.00 EUR at 12% over 3 months from 31 January 2026, 1% fee.
    with_fee = product(origination_fee=Fee(percent=Decimal(1)))
    loan = schedule(with_fee, 300_000, 3, date(2026, 1, 31))
    assert [(row.principal_minor, row.interest_minor, row.total_minor, row.outstanding_principal_minor)
            for row in loan.instalments] == [(99_007, 3_000, 102_007, 200_993), (99_997, 2_010, 102_007, 100_996),
                                             (100_996, 1_010, 102_006, 0)]
    assert (loan.fee_at_disbursement_minor, loan.total_interest_minor) == (3_000, 6_020)
    equal_principal = schedule(product(amortisation="equal_principal"), 300_000, 3, date(2026, 1, 31))
    assert [row.interest_minor for row in equal_principal.instalments] == [2_762, 2_038, 986]


# --- rescheduling after a prepayment -----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(balance=st.integers(1_000, 10_000_000), count=st.integers(1, 60), rate=st.integers(0, 3000))
def test_a_lower_instalment_reamortises_the_balance_over_the_same_dates(balance: int, count: int, rate: int) -> None:
    annual = Decimal(rate) / 100
    start = date(2027, 1, 31)
    dates = [add_months(start, n) for n in range(1, count + 1)]
    new = reschedule(product(annual_rate_percent=annual), annual, balance, start, dates, 5, "lower_instalment", 0)
    assert [item.number for item in new] == list(range(5, 5 + count)) and [i.due_on for i in new] == dates
    assert sum(item.principal_minor for item in new) == balance and new[-1].outstanding_principal_minor == 0
    expected = round(-npf.pmt(float(annual) / 1200, count, balance)) if annual else round(balance / count)
    assert abs(new[0].total_minor - expected) <= 1     # numpy-financial in floats, ours exact


@settings(max_examples=60, deadline=None)
@given(balance=st.integers(10_000, 1_000_000), count=st.integers(2, 36), share=st.integers(2, 10))
def test_a_shorter_term_keeps_the_instalment_until_the_balance_is_repaid(balance: int, count: int,
                                                                          share: int) -> None:
    start = date(2027, 3, 15)
    dates = [add_months(start, n) for n in range(1, count + 1)]
    calculation = product()
    payment = reschedule(calculation, Decimal(12), balance * share, start, dates, 1, "lower_instalment", 0)[0]
    new = reschedule(calculation, Decimal(12), balance, start, dates, 1, "shorten_term", payment.total_minor)
    assert len(new) <= count and sum(item.principal_minor for item in new) == balance
    assert all(item.total_minor == payment.total_minor for item in new[:-1])
    assert new[-1].total_minor <= payment.total_minor or len(new) == count
    with pytest.raises(LoanError):
        reschedule(calculation, Decimal(12), balance, start, dates, 1, "skip", 0)  # type: ignore[arg-type]
