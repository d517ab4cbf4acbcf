"""Loans' interest on the accrual basis and write-offs: what a loan earns by the day (core/lending.py), the ledger's
accrual, repayment true-up and write-off decisions (core/ledger.py) and their legs (core/books.py). Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from core import commands as c
from core import events as e
from core.books import INTEREST_INCOME, INTEREST_RECEIVABLE, LOAN_LOSSES, LOANS, legs_of, unbalanced
from core.lending import accrual_due, interest_earned_through, loan_of
from core.ledger import AccountState, apply, decide
from core.money import MAX_MINOR_UNITS
from tests.unit.test_lending import (ASSESSED, DISBURSED, NOW, account, book, disburse_command, disbursed, postings,
                                     repaid, repay_command, reviewed)


def active_loan(*events: e.Event, today: date = DISBURSED):
    folded = book(ASSESSED, reviewed())
    return loan_of(folded.loans["L1"], folded, postings(disbursed(), *events), today)


def accrue_command(amount: int, first: date, through: date, command_id: str = "acc") -> c.AccrueLoanInterest:
    return c.AccrueLoanInterest(command_id=command_id, account_id="A1", issued_at=NOW, correlation_id=command_id,
                                loan_id="L1", amount=amount, currency="EUR", from_date=first.isoformat(),
                                through_date=through.isoformat())


def post(state: AccountState | None, command: c.Command) -> tuple[AccountState, list[e.Event]]:
    events = decide(state, command, NOW)
    for event in events:
        state = apply(state, event)
    assert state is not None
    return state, events


def signed(legs, ledger_account: str) -> int:
    """A ledger account's movement on its normal side (debit for assets and expenses, credit for income)."""
    sign = {INTEREST_RECEIVABLE: 1, LOANS: 1, LOAN_LOSSES: 1, INTEREST_INCOME: -1}[ledger_account]
    return sum(sign * (leg.amount if leg.side == "debit" else -leg.amount)
               for leg in legs if leg.ledger_account_id == ledger_account)


def test_each_instalments_interest_is_earned_by_the_day_and_whole_the_day_before_it_is_due() -> None:
    loan = active_loan()
    assert interest_earned_through(loan, DISBURSED - timedelta(days=1)) == 0
    earned, previous = 0, DISBURSED - timedelta(days=1)
    for item in loan.instalments:
        earned += item.interest
        assert interest_earned_through(loan, item.due_on - timedelta(days=1)) == earned
        daily = [interest_earned_through(loan, previous + timedelta(days=n)) for n in range((item.due_on - previous).days)]
        assert daily == sorted(daily), "earned interest never goes down within a period"
        previous = item.due_on - timedelta(days=1)
    assert interest_earned_through(loan, loan.instalments[-1].due_on + timedelta(days=400)) == \
        loan.schedule.total_interest_minor


def test_the_accrual_due_runs_from_the_day_after_the_last_one_and_is_earned_less_recognised() -> None:
    loan = active_loan(today=DISBURSED + timedelta(days=10))
    assert accrual_due(loan, DISBURSED - timedelta(days=1)) is None   # nothing closed since the disbursement
    first = accrual_due(loan, DISBURSED + timedelta(days=9))
    assert first is not None and first.from_date == DISBURSED and first.through_date == DISBURSED + timedelta(days=9)
    assert first.amount == interest_earned_through(loan, first.through_date) > 0
    accrued = e.LoanInterestAccrued(**_envelope("x1", 3), loan_id="L1", amount=first.amount, currency="EUR",
                                    from_date=first.from_date.isoformat(), through_date=first.through_date.isoformat(),
                                    receivable_after=first.amount)
    later = active_loan(accrued, today=DISBURSED + timedelta(days=20))
    assert later.interest_receivable == first.amount and later.accrued_through == first.through_date
    assert accrual_due(later, first.through_date) is None   # accrued through it already
    second = accrual_due(later, DISBURSED + timedelta(days=19))
    assert second is not None and second.from_date == DISBURSED + timedelta(days=10)
    assert second.amount == interest_earned_through(later, second.through_date) - first.amount
    assert second.command_id != first.command_id


def _envelope(event_id: str, sequence: int) -> dict:
    return {"event_id": event_id, "command_id": event_id, "correlation_id": event_id, "account_id": "A1",
            "occurred_at": NOW, "sequence": sequence}


def test_the_ledger_takes_each_date_once_in_order() -> None:
    state, _ = post(account(), disburse_command())
    state, [accrued] = post(state, accrue_command(500, DISBURSED, DISBURSED + timedelta(days=4)))
    assert isinstance(accrued, e.LoanInterestAccrued) and accrued.receivable_after == 500
    assert state.loan_accruals == {"L1": {"through": "2027-01-19", "receivable": 500}} and state.balance == 118_800
    [again] = decide(state, accrue_command(100, DISBURSED, DISBURSED + timedelta(days=4), "acc2"), NOW)
    assert isinstance(again, e.CommandRejected) and again.reason == "already_accrued"
    [gap] = decide(state, accrue_command(100, date(2027, 1, 22), date(2027, 1, 25), "acc3"), NOW)
    assert isinstance(gap, e.CommandRejected) and gap.reason == "not_next_date"
    [backwards] = decide(state, accrue_command(100, date(2027, 1, 25), date(2027, 1, 22), "acc4"), NOW)
    assert isinstance(backwards, e.CommandRejected) and backwards.reason == "invalid_date"
    [unknown] = decide(state, replace(accrue_command(100, date(2027, 1, 20), date(2027, 1, 20), "acc5"),
                                      loan_id="L2"), NOW)
    assert isinstance(unknown, e.CommandRejected) and unknown.reason == "no_outstanding_loan"
    # an adjustment reverses at most what is receivable
    state, [adjusted] = post(state, accrue_command(-800, date(2027, 1, 20), date(2027, 1, 20), "acc6"))
    assert adjusted.amount == -500 and adjusted.receivable_after == 0
    assert {(leg.side, leg.ledger_account_id, leg.amount) for leg in legs_of(adjusted)} == {
        ("debit", INTEREST_INCOME, 500), ("credit", INTEREST_RECEIVABLE, 500)}


def test_a_repayment_settles_the_accrual_first_and_paying_the_principal_off_trues_it_up() -> None:
    state, _ = post(account(balance=10_000), disburse_command())
    state, _ = post(state, accrue_command(1_500, DISBURSED, date(2027, 2, 14)))
    # interest beyond what is accrued is income at once
    state, [first] = post(state, repay_command(11_000, 9_000, 2_000))
    assert isinstance(first, e.LoanRepaid) and first.interest_accrued == 1_500
    assert state.loan_accruals["L1"]["receivable"] == 0
    legs = legs_of(first)
    assert unbalanced(legs) == {} and signed(legs, INTEREST_RECEIVABLE) == -1_500 and signed(legs, INTEREST_INCOME) == 500
    state, _ = post(state, accrue_command(700, date(2027, 2, 15), date(2027, 3, 1), "acc2"))
    # the last principal: the 700 accrued, of which 300 is paid, is trued up to what was paid
    state, events = post(state, replace(repay_command(111_300, 111_000, 300), command_id="r2"))
    repayment, true_up = events
    assert isinstance(repayment, e.LoanRepaid) and repayment.outstanding_principal == 0
    assert repayment.interest_accrued == 300
    assert isinstance(true_up, e.LoanInterestAccrued) and true_up.amount == -400 and true_up.receivable_after == 0
    assert true_up.event_id != repayment.event_id and true_up.sequence == repayment.sequence + 1
    assert state.loans == {} and state.loan_accruals == {}
    legs = [leg for event in (first, repayment, true_up) for leg in legs_of(event)] + \
        [leg for amount, through in ((1_500, date(2027, 2, 14)), (700, date(2027, 3, 1)))
         for leg in legs_of(e.LoanInterestAccrued(**_envelope(f"a{amount}", 3), loan_id="L1", amount=amount,
                                                  currency="EUR", from_date="2027-01-15",
                                                  through_date=through.isoformat(), receivable_after=0))]
    assert unbalanced(legs) == {}
    assert signed(legs, INTEREST_RECEIVABLE) == 0
    assert signed(legs, INTEREST_INCOME) == 2_300 == first.interest + repayment.interest   # income = interest paid


def test_a_write_off_takes_principal_and_accrued_interest_to_loan_losses() -> None:
    state, _ = post(account(), disburse_command())
    state, _ = post(state, accrue_command(2_400, DISBURSED, date(2027, 3, 1)))
    [refused] = decide(state, c.WriteOffLoan(command_id="w0", account_id="A1", issued_at=NOW, correlation_id="w0",
                                             loan_id="L1", currency="EUR", reason=" "), NOW)
    assert isinstance(refused, e.CommandRejected) and refused.reason == "missing_reason"
    command = c.WriteOffLoan(command_id="w", account_id="A1", issued_at=NOW, correlation_id="w", loan_id="L1",
                             currency="EUR", reason="uncollectable", submitted_by="admin-1")
    state, [written_off] = post(state, command)
    assert isinstance(written_off, e.LoanWrittenOff)
    assert (written_off.principal, written_off.interest, written_off.submitted_by) == (120_000, 2_400, "admin-1")
    assert state.loans == {} and state.loan_accruals == {} and state.balance == 118_800
    legs = legs_of(written_off)
    assert unbalanced(legs) == {}
    assert {(leg.side, leg.ledger_account_id, leg.amount) for leg in legs} == {
        ("debit", LOAN_LOSSES, 122_400), ("credit", LOANS, 120_000), ("credit", INTEREST_RECEIVABLE, 2_400)}
    [again] = decide(state, replace(command, command_id="w2"), NOW)
    assert isinstance(again, e.CommandRejected) and again.reason == "no_outstanding_loan"
    [accrual] = decide(state, accrue_command(10, date(2027, 3, 2), date(2027, 3, 2), "late"), NOW)
    assert isinstance(accrual, e.CommandRejected) and accrual.reason == "no_outstanding_loan"


def test_a_written_off_loan_reads_so_and_accrues_nothing() -> None:
    written_off = e.LoanWrittenOff(**_envelope("w", 3), loan_id="L1", principal=120_000, interest=0, currency="EUR",
                                   reason="uncollectable", submitted_by="admin-1")
    loan = active_loan(written_off, today=date(2027, 6, 1))
    assert loan.status == "written_off" and loan.outstanding_principal == 0 and loan.interest_receivable == 0
    assert loan.days_past_due == 0 and loan.overdue == 0   # months of instalments unpaid, none owed any more
    assert {item.status for item in loan.instalments} == {"written_off"}
    assert accrual_due(loan, date(2027, 5, 31)) is None


@pytest.mark.parametrize("amount", [0, MAX_MINOR_UNITS + 1, -MAX_MINOR_UNITS - 1])
def test_an_accrual_of_nothing_or_out_of_range_is_refused(amount: int) -> None:
    state, _ = post(account(), disburse_command())
    [refused] = decide(state, accrue_command(amount, DISBURSED, DISBURSED), NOW)
    assert isinstance(refused, e.CommandRejected) and refused.reason == "invalid_amount"


def test_old_repayments_without_accrual_put_their_interest_to_income() -> None:
    legs = legs_of(repaid("old", 10_000, 8_800, 1_200))
    assert signed(legs, INTEREST_INCOME) == 1_200 and signed(legs, INTEREST_RECEIVABLE) == 0
