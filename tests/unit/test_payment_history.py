"""The payment history's pure part: confirmation numbers, filters and cursor pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.payment_history import (CursorError, HistoryEntry, HistoryFilter, confirmation_number, decode_cursor,
                                  page)

START = datetime(2026, 12, 1, tzinfo=UTC)


def entry(n: int, **fields: object) -> HistoryEntry:
    base: dict[str, object] = {"payment_id": f"p{n}", "type": "external", "account_id": "a1", "amount": 100 * n,
                               "currency": "EUR", "status": "settled", "created_at": START + timedelta(hours=n)}
    return HistoryEntry(**(base | fields))  # type: ignore[arg-type]


def test_a_confirmation_number_is_stable_readable_and_differs_between_payments() -> None:
    numbers = {confirmation_number(f"payment-{n}") for n in range(2000)}
    assert len(numbers) == 2000
    assert confirmation_number("payment-1") == confirmation_number("payment-1")
    assert all(len(n) == 11 and n[5] == "-" and not set(n) & set("ILOU") for n in numbers)


def test_pages_walk_every_entry_once_newest_first_even_with_equal_moments() -> None:
    entries = [entry(n) for n in range(7)] + [entry(10, payment_id="p3b", created_at=START + timedelta(hours=3))]
    seen: list[str] = []
    cursor = None
    while True:
        shown, cursor = page(entries, HistoryFilter(), 3, cursor)
        seen += [e.payment_id for e in shown]
        if cursor is None:
            break
    expected = sorted(entries, key=lambda e: e.sort_key, reverse=True)
    assert seen == [e.payment_id for e in expected] and len(seen) == 8


def test_filters_combine() -> None:
    entries = [entry(1), entry(2, status="returned"), entry(3, type="standing_order", status="paid",
                                                          to_account_id="a2"), entry(4, account_id="a9")]
    def ids(where: HistoryFilter) -> list[str]:
        return [e.payment_id for e in page(entries, where, 50)[0]]
    assert ids(HistoryFilter(status="returned")) == ["p2"]
    assert ids(HistoryFilter(type="standing_order")) == ["p3"]
    assert ids(HistoryFilter(account_ids=frozenset({"a1"}))) == ["p3", "p2", "p1"]
    assert ids(HistoryFilter(to_account_id="a2")) == ["p3"]
    assert ids(HistoryFilter(since=START + timedelta(hours=2), until=START + timedelta(hours=4))) == ["p3", "p2"]


@pytest.mark.parametrize("cursor", ["", "not base64!", "bm8tc2VwYXJhdG9y"])
def test_a_cursor_this_module_did_not_write_is_refused(cursor: str) -> None:
    with pytest.raises(CursorError):
        decode_cursor(cursor)
