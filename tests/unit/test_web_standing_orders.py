"""The standing-order form becomes the API's NewStandingOrder, or the form's own errors."""

from __future__ import annotations

from web.customer.standing_orders import order_body

CURRENCIES = {"a1": "EUR", "a2": "USD"}


def test_to_an_own_account_in_the_source_accounts_currency_with_optional_fields_left_out() -> None:
    form = {"from_account_id": "a2", "destination": "account:a9", "amount": " 10.00 ", "frequency": "weekly",
            "start_date": "2027-01-04", "reference": "", "end_date": "", "count": ""}
    body, errors = order_body(form, CURRENCIES)
    assert errors == {}
    assert body == {"from_account_id": "a2", "to_account_id": "a9", "amount": "10.00", "currency": "USD",
                    "frequency": "weekly", "start_date": "2027-01-04"}


def test_to_a_payee_with_an_end_a_count_and_a_reference() -> None:
    form = {"from_account_id": "a1", "destination": "payee:p1", "amount": "5", "frequency": "monthly",
            "start_date": "2027-01-31", "reference": "Rent", "end_date": "2027-12-31", "count": "12"}
    body, errors = order_body(form, CURRENCIES)
    assert errors == {}
    assert body["payee_id"] == "p1" and "to_account_id" not in body
    assert (body["reference"], body["end_date"], body["count"]) == ("Rent", "2027-12-31", 12)


def test_blank_or_unknown_fields_are_the_forms_errors() -> None:
    _, errors = order_body({"from_account_id": "nope", "destination": "", "amount": " ", "start_date": "",
                            "count": "twelve"}, CURRENCIES)
    assert set(errors) == {"from_account_id", "destination", "amount", "start_date", "count"}
