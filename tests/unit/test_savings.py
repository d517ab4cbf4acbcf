"""Savings interest and the close of business (core/savings.py): pure, no server."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from core import events as e
from core.books import legs_of, unbalanced
from core.commands import CreditInterest
from core.ledger import AccountState, apply, decide
from core.savings import (SavingsBook, SavingsEnrolled, SavingsProductSet, close_dates, due_capitalisations,
                          progress)

NOW = datetime(2027, 1, 1, tzinfo=UTC)
PRODUCT = SavingsProductSet(event_id="p", product_id="saver", version=1, change="created", status="active",
                            name="Saver", currency="EUR",
                            rates=[{"effective_on": "2026-01-01", "annual_rate_percent": "2"}], day_count="ACT/365F",
                            set_by="admin", set_at=NOW)


def book(enrolled_on: date = date(2027, 1, 15)) -> SavingsBook:
    folded = SavingsBook()
    folded.apply(PRODUCT)
    folded.apply(SavingsEnrolled(event_id="en", account_id="A1", customer_id="C1", product_id="saver",
                                 enrolled_on=enrolled_on.isoformat(), enrolled_by="U1", enrolled_at=NOW))
    return folded


def test_closing_accrues_each_date_in_order_and_credits_each_month_after_its_last_day() -> None:
    folded = book()
    close = close_dates(folded, "A1", 1_000_000, date(2027, 3, 3), NOW)
    assert [a.accrual_date for a in close.accruals][:2] == ["2027-01-15", "2027-01-16"]
    assert len(close.accruals) == (date(2027, 3, 3) - date(2027, 1, 15)).days + 1
    assert [c.month for c in close.capitalisations] == ["2027-01", "2027-02"]
    january = sum(a.accrued for a in close.accruals if a.accrual_date.startswith("2027-01"))
    assert close.capitalisations[0].amount == january
    # February accrues on the balance with January's interest in it: compounding monthly
    assert {a.balance for a in close.accruals if a.accrual_date.startswith("2027-02")} == {1_000_000 + january}
    for accrual in close.accruals:
        folded.apply(accrual)
    assert [c.month for c in due_capitalisations(folded, "A1", "EUR")] == ["2027-01", "2027-02"]
    assert close_dates(folded, "A1", 1_000_000, date(2027, 3, 3), NOW).accruals == ()   # closed dates stay closed
    done = progress(folded, date(2027, 3, 4))
    assert (done.accounts, done.accounts_behind, done.accruals) == (1, 0, len(close.accruals))


@settings(max_examples=40, deadline=None)
@given(balance=st.integers(0, 10**9), days=st.integers(1, 120), limit=st.integers(1, 50))
def test_catching_up_in_pieces_accrues_exactly_what_one_run_does(balance: int, days: int, limit: int) -> None:
    """A job that closes a few dates a tick (or is killed between ticks) ends where one long run ends."""
    through = date(2027, 1, 15) + timedelta(days=days - 1)
    whole = close_dates(book(), "A1", balance, through, NOW, limit=10_000)
    pieces, folded, credited = [], book(), 0
    while len(pieces) < days:
        close = close_dates(folded, "A1", balance + credited, through, NOW, limit=limit)
        for accrual in close.accruals:
            folded.apply(accrual)
        credited += sum(c.amount for c in close.capitalisations)
        pieces.extend(close.accruals)
    assert pieces == list(whole.accruals)
    exact = sum(Fraction(a.balance) * Fraction(2, 100) / 365 for a in whole.accruals)
    posted = sum(a.accrued for a in whole.accruals)
    assert posted + Fraction(whole.accruals[-1].carried) == exact      # not a minor unit lost or invented


def test_an_accrual_out_of_order_or_seen_twice_is_not_taken() -> None:
    folded = book()
    first, second = close_dates(folded, "A1", 1_000_000, date(2027, 1, 16), NOW).accruals
    folded.apply(second)
    assert folded.accounts["A1"].last is None
    folded.apply(first)
    folded.apply(first)
    folded.apply(second)
    assert len(folded.accounts["A1"].accruals) == 2 and folded.accounts["A1"].last == second


def test_interest_credited_posts_from_interest_expense_to_the_customer() -> None:
    account = AccountState(account_id="A1", customer_id="C1", currency="EUR", overdraft_limit=0, balance=500,
                           sequence=1, status="frozen")
    command = CreditInterest(command_id="ci", account_id="A1", issued_at=NOW, correlation_id="ci", amount=1_698,
                             currency="EUR", period="2027-01")
    [event] = decide(account, command, NOW)   # credited to a frozen account too: the bank owes it
    assert isinstance(event, e.InterestCredited) and event.balance_after == 2_198
    assert apply(account, event).balance == 2_198  # type: ignore[union-attr]
    assert {(leg.side, leg.ledger_account_id) for leg in legs_of(event)} == {
        ("debit", "interest-expense"), ("credit", "customer:A1")}
    assert unbalanced(legs_of(event)) == {}
    [refused] = decide(replace(account, status="closed"), command, NOW)
    assert isinstance(refused, e.CommandRejected) and refused.reason == "account_closed"
