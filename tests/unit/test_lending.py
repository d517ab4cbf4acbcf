"""Loans on the log (core/lending.py), their ledger rules and legs (core/ledger.py, core/books.py), and the built-in
credit scorer (core/credit.py): pure, no server."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from core import commands as c
from core import events as e
from core.books import legs_of, unbalanced
from core.credit import CreditHistory, CustomerFacts, assess
from core.lending import (LoanApplicantAnswered, LoanApplied, LoanAssessed, LoanBook, LoanPostings, LoanProductSet,
                          LoanReviewed, check_product, check_review, collections_due, delinquency_bucket, loan_of,
                          late_fees_due, payoff_quote, portfolio, prepayment_parts, repayment_parts)
from core.ledger import AccountState, apply, decide
from core.loans import LoanError

NOW = datetime(2027, 1, 15, 9, tzinfo=UTC)
DISBURSED = date(2027, 1, 15)


def product(**changes: object) -> LoanProductSet:
    return replace(LoanProductSet(
        event_id="p1", product_id="personal", version=1, change="created", status="active", name="Personal",
        currency="EUR", principal_min=50_000, principal_max=5_000_000, term_min=3, term_max=36,
        rates=[{"effective_on": "2027-01-01", "annual_rate_percent": "12"}], amortisation="equal_instalments",
        frequency="monthly", day_count="ACT/365F", grace_on_principal=0, late_fee_flat=0, late_fee_percent="0",
        origination_fee_flat=0, origination_fee_percent="1", origination_fee_on="disbursement", set_by="admin",
        set_at=NOW), **changes)


def applied(amount: int = 120_000, term: int = 12) -> LoanApplied:
    return LoanApplied(event_id="a1", loan_id="L1", customer_id="C1", product_id="personal", product_version=1,
                       account_id="A1", amount=amount, currency="EUR", term=term, purpose="car", applied_at=NOW,
                       applied_by="U1")


def reviewed(decision: str = "approve", reviewer: str = "R1", amount: int = 120_000, term: int = 12,
             needed: int = 1, number: int = 1) -> LoanReviewed:
    return LoanReviewed(event_id=f"r{number}", loan_id="L1", decision=decision, reviewer=reviewer, reason=None,
                        amount=amount, term=term, annual_rate_percent="12", approvals_needed=needed, reviewed_at=NOW)


ASSESSED = LoanAssessed(event_id="s1", loan_id="L1", score=70, recommendation="approve", reasons=[], inputs={},
                        bureau_score=700, bureau_report_id="CB-1", assessed_at=NOW)


def book(*records: object) -> LoanBook:
    folded = LoanBook()
    for record in (product(), applied(), *records):
        folded.apply(record)
    return folded


def envelope(event_id: str, sequence: int) -> dict:
    return {"event_id": event_id, "command_id": event_id, "correlation_id": event_id, "account_id": "A1",
            "occurred_at": NOW, "sequence": sequence}


def disbursed(principal: int = 120_000, fee: int = 1_200) -> e.LoanDisbursed:
    return e.LoanDisbursed(**envelope("d1", 2), loan_id="L1", principal=principal, fee=fee,
                           amount=principal - fee, currency="EUR", balance_after=principal - fee,
                           disbursed_on=DISBURSED.isoformat())


def repaid(event_id: str, amount: int, principal: int, interest: int, kind: str = "manual",
           outstanding: int = 0) -> e.LoanRepaid:
    return e.LoanRepaid(**envelope(event_id, 3), loan_id="L1", amount=amount, currency="EUR", principal=principal,
                        interest=interest, fees=amount - principal - interest, kind=kind, paid_on="2027-02-15",
                        balance_after=0, outstanding_principal=outstanding)


def postings(*events: e.Event) -> LoanPostings:
    folded = LoanPostings()
    for event in events:
        folded.apply(event)
    return folded


# ---------------------------------------------------------------- the lifecycle


def test_the_status_follows_assessment_decisions_and_answers() -> None:
    assert book().loans["L1"].decision_status == "assessing"
    assert book(ASSESSED).loans["L1"].decision_status == "in_review"
    assert book(ASSESSED, reviewed()).loans["L1"].decision_status == "approved"
    assert book(ASSESSED, reviewed(needed=2)).loans["L1"].decision_status == "awaiting_second_approval"
    assert book(ASSESSED, reviewed(needed=2), reviewed(reviewer="R2", needed=2, number=2)) \
        .loans["L1"].decision_status == "approved"
    offer = reviewed("counter_offer", amount=60_000)
    assert book(ASSESSED, offer).loans["L1"].decision_status == "offered"
    accept = LoanApplicantAnswered(event_id="x", loan_id="L1", answer="accept_offer", answered_by="U1", answered_at=NOW)
    decline = replace(accept, event_id="y", answer="decline_offer")
    assert book(ASSESSED, offer, accept).loans["L1"].decision_status == "approved"
    assert book(ASSESSED, offer, decline).loans["L1"].decision_status == "offer_declined"
    withdraw = replace(accept, event_id="z", answer="withdraw")
    assert book(ASSESSED, withdraw).loans["L1"].decision_status == "withdrawn"
    assert book(ASSESSED, replace(reviewed("reject"), reason="no")).loans["L1"].decision_status == "rejected"


def test_a_record_seen_twice_changes_nothing() -> None:
    folded = book(ASSESSED, reviewed(needed=2))
    folded.apply(reviewed(needed=2))   # the same event id again: a redelivery
    assert len(folded.loans["L1"].reviews) == 1
    assert folded.loans["L1"].decision_status == "awaiting_second_approval"


def test_reviews_are_refused_out_of_turn_or_by_the_same_pair_of_eyes() -> None:
    with pytest.raises(LoanError, match="assessing"):
        check_review(book().loans["L1"], "approve", "R1", reviewed(), None)
    with pytest.raises(LoanError) as refused:
        check_review(book(ASSESSED).loans["L1"], "reject", "R1", reviewed("reject"), " ")
    assert refused.value.reason == "reason_required"
    waiting = book(ASSESSED, reviewed(needed=2)).loans["L1"]
    with pytest.raises(LoanError) as refused:
        check_review(waiting, "approve", "R1", reviewed(needed=2, number=2), None)
    assert refused.value.reason == "same_reviewer"
    with pytest.raises(LoanError) as refused:
        check_review(waiting, "approve", "R2", reviewed(reviewer="R2", term=24, needed=2, number=2), None)
    assert refused.value.reason == "terms_differ"
    check_review(waiting, "approve", "R2", reviewed(reviewer="R2", needed=2, number=2), None)   # allowed
    with pytest.raises(LoanError) as refused:
        check_review(book(ASSESSED, reviewed()).loans["L1"], "approve", "R2", reviewed(), None)
    assert refused.value.reason == "not_reviewable"


def test_a_product_with_an_inverted_range_or_no_name_is_refused() -> None:
    with pytest.raises(LoanError):
        check_product(product(principal_min=900, principal_max=100))
    with pytest.raises(LoanError):
        check_product(product(name=" "))
    check_product(product())


# ---------------------------------------------------------------- repayments


def test_repayments_pay_the_oldest_instalment_first_and_the_loan_closes_when_all_is_paid() -> None:
    folded = book(ASSESSED, reviewed())
    today = DISBURSED + timedelta(days=1)
    loan = loan_of(folded.loans["L1"], folded, postings(disbursed()), today)
    assert loan.status == "active" and loan.outstanding_principal == 120_000
    assert len(loan.instalments) == 12 and loan.instalments[0].interest == 1_200   # 1 % a month
    parts = repayment_parts(loan, 500)
    assert (parts.interest, parts.principal, parts.fees) == (500, 0, 0)
    with pytest.raises(LoanError) as refused:
        repayment_parts(loan, loan.owed_by_schedule + 1)
    assert refused.value.reason == "more_than_owed"
    everything = repayment_parts(loan, loan.owed_by_schedule)
    assert everything.principal == 120_000 and everything.interest == loan.schedule.total_interest_minor  # type: ignore[union-attr]
    done = loan_of(folded.loans["L1"], folded, postings(disbursed(), repaid(
        "p1", everything.amount, everything.principal, everything.interest)), today)
    assert done.status == "closed" and done.outstanding_principal == 0
    assert all(item.status == "paid" for item in done.instalments)


def test_a_missed_instalment_is_overdue_with_days_past_due_and_a_bucket() -> None:
    folded = book(ASSESSED, reviewed())
    first_due = date(2027, 2, 15)
    loan = loan_of(folded.loans["L1"], folded, postings(disbursed()), first_due + timedelta(days=40))
    assert [item.status for item in loan.instalments[:3]] == ["overdue", "overdue", "upcoming"]
    assert loan.days_past_due == 40 and loan.bucket == "31-60"
    assert loan.overdue == loan.instalments[0].total + loan.instalments[1].total
    [(instalment, owed)] = collections_due(loan)
    assert instalment.number == 2 and owed == loan.overdue   # one collection for everything owed so far
    assert [delinquency_bucket(days) for days in (0, 1, 30, 31, 60, 61, 90, 91)] == \
        [None, "1-30", "1-30", "31-60", "31-60", "61-90", "61-90", "90+"]
    [row] = portfolio([loan], folded)
    assert row.loans == 1 and row.at_risk_30 == 120_000 and row.at_risk_90 == 0 and str(row.par(row.at_risk_30)) \
        == "100.00"


def test_a_missed_instalment_is_charged_its_late_fee_once_and_repayments_pay_it_first() -> None:
    folded = book(ASSESSED, reviewed(), product(version=1, late_fee_flat=1_500))
    folded.products["personal"] = [product(late_fee_flat=1_500)]
    today = date(2027, 2, 15) + timedelta(days=3)
    loan = loan_of(folded.loans["L1"], folded, postings(disbursed()), today)
    [charge] = late_fees_due(loan, folded, NOW)
    assert (charge.instalment, charge.amount) == (1, 1_500)
    folded.apply(charge)
    folded.apply(charge)   # a redelivery: charged once
    loan = loan_of(folded.loans["L1"], folded, postings(disbursed()), today)
    assert late_fees_due(loan, folded, NOW) == [] and loan.instalments[0].fees == 1_500
    parts = repayment_parts(loan, 2_000)
    assert (parts.fees, parts.interest, parts.principal) == (1_500, 500, 0)
    paid = loan_of(folded.loans["L1"], folded, postings(disbursed(), repaid("p", 2_000, 0, 500)), today)
    assert paid.instalments[0].paid == 2_000 and paid.fees_paid == 1_500


def test_a_payoff_charges_interest_accrued_by_the_day_less_interest_paid_ahead() -> None:
    folded = book(ASSESSED, reviewed())
    today = DISBURSED + timedelta(days=20)
    loan = loan_of(folded.loans["L1"], folded, postings(disbursed(), repaid("p1", 500, 0, 500)), today)
    quote = payoff_quote(loan, folded)
    accrued = round(120_000 * 0.12 * 20 / 365)
    assert quote.principal == 120_000 and quote.interest == accrued - 500 and quote.fees == 0
    closed = loan_of(folded.loans["L1"], folded, postings(disbursed(), repaid("p1", 500, 0, 500), repaid(
        "p2", quote.amount, quote.principal, quote.interest, kind="payoff")), today)
    assert closed.status == "closed"


# ---------------------------------------------------------------- the ledger and the books


def account(balance: int = 0, loans: dict[str, int] | None = None) -> AccountState:
    return AccountState(account_id="A1", customer_id="C1", currency="EUR", overdraft_limit=0, balance=balance,
                        sequence=1, loans=loans or {})


def disburse_command(principal: int = 120_000, fee: int = 1_200) -> c.DisburseLoan:
    return c.DisburseLoan(command_id="d", account_id="A1", issued_at=NOW, correlation_id="d", loan_id="L1",
                          principal=principal, fee=fee, currency="EUR", disbursed_on="2027-01-15")


def repay_command(amount: int, principal: int, interest: int) -> c.RepayLoan:
    return c.RepayLoan(command_id="r", account_id="A1", issued_at=NOW, correlation_id="r", loan_id="L1",
                       amount=amount, currency="EUR", principal=principal, interest=interest,
                       fees=amount - principal - interest, kind="manual", paid_on="2027-02-15")


def test_the_ledger_disburses_once_and_never_takes_more_principal_than_is_outstanding() -> None:
    [event] = decide(account(), disburse_command(), NOW)
    assert isinstance(event, e.LoanDisbursed) and event.amount == 118_800 and event.balance_after == 118_800
    state = apply(account(), event)
    assert state is not None and state.loans == {"L1": 120_000} and state.balance == 118_800
    [again] = decide(state, disburse_command(), NOW)
    assert isinstance(again, e.CommandRejected) and again.reason == "duplicate"
    [refused] = decide(state, repay_command(130_000, 121_000, 9_000), NOW)
    assert isinstance(refused, e.CommandRejected) and refused.reason == "more_than_owed"
    [short] = decide(replace(state, balance=100), repay_command(2_000, 800, 1_200), NOW)
    assert isinstance(short, e.CommandRejected) and short.reason == "insufficient_funds"
    [bad] = decide(state, replace(repay_command(2_000, 800, 1_200), interest=1_000), NOW)
    assert isinstance(bad, e.CommandRejected) and bad.reason == "invalid_amount"
    [paid] = decide(state, repay_command(10_000, 8_800, 1_200), NOW)
    assert isinstance(paid, e.LoanRepaid) and paid.outstanding_principal == 111_200
    after = apply(state, paid)
    assert after is not None and after.loans == {"L1": 111_200} and after.balance == 108_800


def test_an_account_repaying_a_loan_does_not_close() -> None:
    [refused] = decide(account(loans={"L1": 5_000}), c.CloseAccount(
        command_id="x", account_id="A1", issued_at=NOW, correlation_id="x"), NOW)
    assert isinstance(refused, e.CommandRejected) and refused.reason == "loan_outstanding"


def test_loan_events_post_balanced_legs_to_loans_income_and_the_customer() -> None:
    legs = legs_of(disbursed())
    assert unbalanced(legs) == {}
    assert {(leg.side, leg.ledger_account_id, leg.amount) for leg in legs} == {
        ("debit", "loans", 120_000), ("credit", "customer:A1", 118_800), ("credit", "fee-income", 1_200)}
    legs = legs_of(repaid("p", 10_500, 8_800, 1_200))
    assert unbalanced(legs) == {}
    assert {(leg.side, leg.ledger_account_id, leg.amount) for leg in legs} == {
        ("debit", "customer:A1", 10_500), ("credit", "loans", 8_800), ("credit", "interest-income", 1_200),
        ("credit", "fee-income", 500)}


# ---------------------------------------------------------------- the credit score


def test_the_score_reads_the_customers_history_and_the_bureau() -> None:
    history = CreditHistory()
    history.apply(e.AccountOpened(**envelope("o", 1), customer_id="C1", currency="EUR", overdraft_limit=0))
    for number in range(3):
        history.apply(e.FundsDeposited(**envelope(f"f{number}", number + 2), amount=50_000, currency="EUR",
                                       balance_after=50_000 * (number + 1)))
    history.apply(e.FundsDeposited(**envelope("f0", 2), amount=50_000, currency="EUR", balance_after=50_000))
    facts = history.facts("C1")
    assert facts.inflows == 150_000 and facts.credits == 3 and facts.accounts == {"A1": 150_000}
    strong = assess(facts, 10_000, 850, 0, 0)
    assert strong.score == 100 and strong.recommendation == "approve" and strong.inputs["inflows"] == 150_000
    weak = assess(CustomerFacts(), 10_000, 300, 2, 1)
    assert weak.score == 0 and weak.recommendation == "decline"
    assert "2 default(s) at the bureau" in weak.reasons and "1 loan(s) in arrears here" in weak.reasons
    unknown = assess(facts, 10_000, None, 0, 0)
    assert unknown.recommendation == "approve" and "no credit bureau file" in unknown.reasons


def test_a_prepayment_comes_after_what_is_due_and_reschedules_what_is_left() -> None:
    folded = book(ASSESSED, reviewed())
    overdue = loan_of(folded.loans["L1"], folded, postings(disbursed()), date(2027, 2, 20))
    with pytest.raises(LoanError) as refused:
        prepayment_parts(overdue, 10_000)
    assert refused.value.reason == "instalments_due"
    loan = loan_of(folded.loans["L1"], folded, postings(disbursed()), DISBURSED + timedelta(days=3))
    with pytest.raises(LoanError) as refused:
        prepayment_parts(loan, 120_000)
    assert refused.value.reason == "more_than_owed"
    parts = prepayment_parts(loan, 60_000)
    assert (parts.principal, parts.interest, parts.fees) == (60_000, 0, 0)
    prepaid = replace(repaid("pp", 60_000, 60_000, 0, kind="prepay_lower_instalment", outstanding=60_000),
                      paid_on=(DISBURSED + timedelta(days=3)).isoformat())
    after = loan_of(folded.loans["L1"], folded, postings(disbursed(), prepaid), DISBURSED + timedelta(days=3))
    assert len(after.instalments) == 12 and after.outstanding_principal == 60_000
    assert sum(item.principal for item in after.instalments) == 60_000
    assert after.instalments[0].total < loan.instalments[0].total
