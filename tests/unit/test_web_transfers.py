"""Which API call a transfer form makes: a transfer inside the bank, or a payment to another bank."""

from __future__ import annotations

from web.customer.transfers import _check, _request

FORM = {"from_account_id": "a1", "amount": " 15.00 ", "reference": "invoice 7"}


def test_an_account_at_another_bank_is_a_payment_with_the_reference_as_remittance() -> None:
    form = FORM | {"destination": "external", "creditor_name": " Erika ", "creditor_iban": "DE89 3704 0044 0532 0130 00"}
    assert _request(form, "EUR") == ("/v1/payments", {
        "from_account_id": "a1", "amount": "15.00", "currency": "EUR", "creditor_name": "Erika",
        "creditor_iban": "DE89 3704 0044 0532 0130 00", "remittance_information": "invoice 7"})


def test_a_payee_at_another_bank_is_paid_by_its_iban_and_one_here_by_a_transfer() -> None:
    form = FORM | {"destination": "payee", "payee_id": "p1"}
    external = {"payee_id": "p1", "name": "Joan", "iban": "DE89370400440532013000", "internal": False}
    path, body = _request(form, "EUR", external)
    assert path == "/v1/payments" and (body["creditor_name"], body["creditor_iban"]) == ("Joan", external["iban"])
    path, body = _request(form, "EUR", external | {"internal": True})
    assert path == "/v1/transfers" and body["payee_id"] == "p1" and body["reference"] == "invoice 7"


def test_another_bank_needs_a_name_and_an_iban() -> None:
    assert set(_check(FORM | {"destination": "external"})) == {"creditor_iban", "creditor_name"}
