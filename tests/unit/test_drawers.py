"""Tellers' drawers (core/drawers.py) and their legs in the books (core/books.py): open with a float from the
vault, count, close with the over/short to suspense; every event balanced, a closed drawer at zero."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core import events as e
from core.books import SUSPENSE, VAULT, Books, drawer, legs_of, unbalanced
from core.drawers import DrawerError, Drawers, check_cash, close_drawer, count_drawer, open_drawer

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 5, 9, tzinfo=UTC)
TELLER = "user-teller-1"
TILL = drawer(TELLER)


def _cash(kind: type[e.FundsDeposited] | type[e.FundsWithdrawn], event_id: str, amount: int) -> e.Event:
    return kind(event_id=event_id, command_id=event_id, correlation_id=event_id, account_id="acc-1",
                occurred_at=NOW, sequence=2, amount=amount, currency="EUR", balance_after=amount, channel="cash")


def test_opening_moves_the_float_from_the_vault_and_a_second_opening_is_refused() -> None:
    drawers = Drawers()
    opened = open_drawer(None, TELLER, "EUR", 50_000, TELLER, NOW)
    assert legs_of(opened) and unbalanced(legs_of(opened)) == {}
    assert {(leg.side, leg.ledger_account_id, leg.amount) for leg in legs_of(opened)} == {
        ("debit", TILL, 50_000), ("credit", VAULT, 50_000)}
    drawers.apply(opened)
    with pytest.raises(DrawerError) as refused:
        open_drawer(drawers.get(TELLER), TELLER, "EUR", 0, TELLER, NOW)
    assert refused.value.reason == "drawer_open"


def test_a_short_close_posts_the_shortage_to_suspense_and_leaves_the_drawer_at_zero() -> None:
    books, drawers = Books(), Drawers()
    opened = open_drawer(None, TELLER, "EUR", 10_000, TELLER, NOW)
    for event in (opened, _cash(e.FundsDeposited, "dep-1", 5_000), _cash(e.FundsWithdrawn, "wd-1", 2_000)):
        books.apply(event, actor=TELLER)
        drawers.apply(event)
    book = books.balance(TILL, "EUR")
    assert book == 13_000   # float + cash in - cash out
    counted = count_drawer(drawers.get(TELLER), TELLER, 12_900, book, TELLER, NOW)
    assert (counted.difference, legs_of(counted)) == (-100, ())   # a count records, posts nothing
    drawers.apply(counted)
    closed = close_drawer(drawers.get(TELLER), TELLER, 12_500, book, TELLER, NOW)
    assert closed.difference == -500 and unbalanced(legs_of(closed)) == {}
    books.apply(closed, actor=TELLER)
    drawers.apply(closed)
    assert books.balance(TILL, "EUR") == 0
    assert books.balance(SUSPENSE, "EUR") == 500        # debit: money the bank is missing, to be explained
    assert books.balance(VAULT, "EUR") == -10_000 + 12_500
    assert books.trial_balance("EUR").total == 0
    assert drawers.get(TELLER).status == "closed"  # type: ignore[union-attr]
    with pytest.raises(DrawerError) as refused:
        count_drawer(drawers.get(TELLER), TELLER, 0, 0, TELLER, NOW)
    assert refused.value.reason == "drawer_not_open"


def test_an_over_close_credits_suspense_and_an_exact_one_posts_no_difference() -> None:
    opened = open_drawer(None, TELLER, "EUR", 1_000, TELLER, NOW)
    drawers = Drawers()
    drawers.apply(opened)
    over = close_drawer(drawers.get(TELLER), TELLER, 1_200, 1_000, TELLER, NOW)
    legs = legs_of(over)
    assert ("credit", SUSPENSE, 200) in {(leg.side, leg.ledger_account_id, leg.amount) for leg in legs}
    assert unbalanced(legs) == {}
    exact = close_drawer(drawers.get(TELLER), TELLER, 1_000, 1_000, TELLER, NOW)
    assert all(leg.ledger_account_id != SUSPENSE for leg in legs_of(exact))


def test_a_reopened_drawer_is_a_new_session_with_new_event_ids() -> None:
    drawers = Drawers()
    first = open_drawer(None, TELLER, "EUR", 0, TELLER, NOW)
    drawers.apply(first)
    drawers.apply(close_drawer(drawers.get(TELLER), TELLER, 0, 0, TELLER, NOW))
    again = open_drawer(drawers.get(TELLER), TELLER, "USD", 0, TELLER, NOW)
    assert again.event_id != first.event_id and again.sequence == 3
    drawers.apply(again)
    drawers.apply(first)   # a redelivered old event changes nothing
    assert (drawers.get(TELLER).session, drawers.get(TELLER).currency) == (2, "USD")  # type: ignore[union-attr]


def test_cash_needs_the_tellers_drawer_open_in_its_currency() -> None:
    drawers = Drawers()
    with pytest.raises(DrawerError) as never:
        check_cash(drawers.get(TELLER), TELLER, "EUR")
    assert never.value.reason == "drawer_not_open"
    drawers.apply(open_drawer(None, TELLER, "EUR", 0, TELLER, NOW))
    check_cash(drawers.get(TELLER), TELLER, "EUR")
    with pytest.raises(DrawerError) as other:
        check_cash(drawers.get(TELLER), TELLER, "USD")
    assert other.value.reason == "drawer_currency"
