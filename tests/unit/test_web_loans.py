"""The loan pages' pure parts: statuses and products in words, the forms as the API's bodies or the forms' own
errors, the API's refusals next to their field (in the product's terms, not minor units), the portfolio's bars."""

from __future__ import annotations

from web.admin.loans import decision_body, product_body
from web.charts import Bar, bar_chart
from web.client import ApiError
from web.lending import (REPAYMENT_KINDS, application_body, assessment_inputs, instalments, prepayment_body,
                         prepayment_refusal, product_summary, refusal, status_badge)

PRODUCT = {"product_id": "p1", "name": "Car loan", "currency": "EUR", "annual_rate_percent": "9.5",
           "principal_min": "500.00", "principal_max": "20000.00", "term_min": 3, "term_max": 24,
           "frequency": "monthly"}


def test_statuses_and_products_in_words() -> None:
    assert status_badge("in_review") == ("warning", "Being reviewed")
    assert status_badge("awaiting_second_approval", staff=True) == ("warning", "Awaiting a second approval")
    assert status_badge("closed") == ("", "Repaid") and status_badge("something_new") == ("", "Something new")
    assert instalments(1, "weekly") == "1 weekly instalment"
    assert product_summary(PRODUCT) == "Car loan: 9.5% a year, €500.00 to €20,000.00, 3 to 24 monthly instalments"


def test_the_application_form_becomes_the_apis_body_or_its_own_errors() -> None:
    form = {"product_id": "p1", "account_id": "a1", "amount": " 1000.00 ", "term": "6", "purpose": " a car "}
    body, errors = application_body(form, {"p1": PRODUCT}, {"a1": "EUR", "a2": "USD"})
    assert errors == {}
    assert body == {"product_id": "p1", "account_id": "a1", "amount": "1000.00", "term": 6, "purpose": "a car"}
    _, errors = application_body(form | {"account_id": "a2", "term": "six", "purpose": ""}, {"p1": PRODUCT},
                                 {"a1": "EUR", "a2": "USD"})
    assert set(errors) == {"account_id", "term", "purpose"} and "EUR" in errors["account_id"][0]
    _, errors = application_body({}, {}, {})
    assert set(errors) == {"product_id", "account_id", "amount", "term", "purpose"}


def test_refusals_go_next_to_their_field_in_the_products_terms() -> None:
    fields = ("product_id", "account_id", "amount", "term", "purpose")
    out_of_range = ApiError(422, {"reason": "principal_out_of_range",
                                  "detail": "the principal must be within the product's 50000..2000000"})
    assert refusal(out_of_range, fields, "amount", PRODUCT) == {
        "amount": ["Choose an amount from €500.00 to €20,000.00."]}
    term = ApiError(422, {"reason": "term_out_of_range", "detail": "3..24"})
    assert refusal(term, fields, "amount", PRODUCT) == {"term": ["Choose from 3 to 24 instalments."]}
    mismatch = ApiError(422, {"reason": "currency_mismatch", "detail": "the product lends EUR"})
    assert refusal(mismatch, fields, "amount") == {"account_id": ["the product lends EUR"]}
    owed = ApiError(422, {"reason": "more_than_owed", "detail": "the loan owes 100000 minor units"})
    assert "payoff quote" in refusal(owed, ("amount",), "amount")["amount"][0]
    refused = ApiError(409, {"reason": "same_reviewer", "detail": "another staff member"})
    assert refusal(refused, ("amount", "reason", "decision"), "decision") == {"decision": ["another staff member"]}


def test_the_prepayment_form_and_the_apis_refusals_next_to_its_fields() -> None:
    assert prepayment_body({"prepay_amount": " 200.00 ", "effect": "shorten_term"}) == (
        {"amount": "200.00", "effect": "shorten_term"}, {})
    assert set(prepayment_body({"prepay_amount": "", "effect": "sooner"})[1]) == {"prepay_amount", "effect"}
    for reason, words in (("instalments_due", "repay it first"), ("instalment_partly_paid", "partly paid"),
                          ("more_than_owed", "payoff quote"), ("loan_not_active", "no longer active")):
        found = prepayment_refusal(ApiError(409, {"reason": reason, "detail": "the API's words"}))
        assert list(found) == ["prepay_amount"] and words in found["prepay_amount"][0], reason
    funds = ApiError(422, {"reason": "insufficient_funds", "detail": "not enough money", "command_id": "c1"})
    assert prepayment_refusal(funds) == {"prepay_amount": ["not enough money"]}
    invalid = ApiError(422, {"detail": "invalid", "errors": [{"loc": ["body", "effect"], "msg": "bad"}]})
    assert list(prepayment_refusal(invalid)) == ["effect"]
    assert REPAYMENT_KINDS["prepay_shorten_term"] == "Principal repaid early: a shorter loan"


def test_the_assessments_amounts_in_the_currencys_decimals() -> None:
    shown = dict(assessment_inputs({"inflows": 30000, "credits": 2, "lowest_balance": -1250}, "EUR"))
    assert shown == {"Money coming in": "€300.00", "Payments in": "2", "Lowest balance": "\u2212€12.50"}


def test_the_decision_and_product_forms() -> None:
    body, errors = decision_body({"decision": "counter_offer", "amount": "3000.00", "term": "12",
                                  "annual_rate_percent": "13.5", "reason": " a year "})
    assert errors == {} and body == {"decision": "counter_offer", "amount": "3000.00", "term": 12,
                                     "annual_rate_percent": "13.5", "reason": "a year"}
    assert decision_body({"decision": "reject", "amount": "1.00", "reason": ""}) == ({"decision": "reject"}, {})
    assert set(decision_body({"decision": "approve", "term": "x"})[1]) == {"term"}
    assert set(decision_body({"decision": "maybe"})[1]) == {"decision"}
    body, errors = product_body({"name": "Car", "currency": "EUR", "principal_min": "500", "principal_max": "900",
                                 "term_min": "3", "term_max": "x", "annual_rate_percent": "", "late_fee": ""})
    assert set(errors) == {"term_max", "annual_rate_percent"}
    assert body["term_min"] == 3 and "late_fee" not in body


def test_bars_of_outstanding_principal_are_an_accessible_svg() -> None:
    svg = str(bar_chart([Bar("Car loan", "1000.00"), Bar("Home <loan>", "250.00"), Bar("Empty", "0.00")], "EUR",
                        "Outstanding principal, EUR", "outstanding-eur"))
    assert svg.startswith("<svg") and 'role="img"' in svg and 'id="outstanding-eur-title"' in svg
    assert "Car loan: €1,000.00; Home &lt;loan&gt;: €250.00; Empty: €0.00." in svg
    assert 'width="0.0"' in svg and "style=" not in svg and "<script" not in svg
    assert str(bar_chart([], "EUR", "none")) == ""
