"""Loans as the pages say them, for the customer app (web/customer/loans.py) and the admin panel
(web/admin/loans.py): statuses, instalments and repayments in words, a product in one line, the application form
as the API's LoanApplication, and the API's refusals next to their field.

The assessment's inputs count in minor units: the pages say them in the currency's decimals. A range refused is
said in the product's terms ("Choose an amount from ... to ...").
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from core.money import MoneyError, format_amount
from web.client import ApiError
from web.formatting import money
from web.forms import field_errors

# (badge, words) by the API's status: the customer's words, then staff's
CUSTOMER_STATUSES = {
    "assessing": ("warning", "Being assessed"), "in_review": ("warning", "Being reviewed"),
    "awaiting_second_approval": ("warning", "Being reviewed"), "offered": ("warning", "Offer waiting for you"),
    "approved": ("ok", "Approved: being paid out"), "rejected": ("bad", "Not approved"),
    "withdrawn": ("", "Withdrawn"), "offer_declined": ("", "Offer declined"),
    "disbursement_failed": ("bad", "Could not be paid out"), "active": ("ok", "Active"), "closed": ("", "Repaid"),
    "written_off": ("bad", "Written off"),
}
STAFF_STATUSES = {
    "assessing": ("warning", "Being assessed"), "in_review": ("warning", "In review"),
    "awaiting_second_approval": ("warning", "Awaiting a second approval"),
    "offered": ("warning", "Counter-offer sent"), "approved": ("ok", "Approved"), "rejected": ("bad", "Rejected"),
    "withdrawn": ("", "Withdrawn"), "offer_declined": ("", "Offer declined"),
    "disbursement_failed": ("bad", "Disbursement failed"), "active": ("ok", "Active"), "closed": ("", "Closed"),
    "written_off": ("bad", "Written off"),
}
INSTALMENT_STATUSES = {"paid": ("ok", "Paid"), "partly_paid": ("warning", "Partly paid"), "due": ("warning", "Due"),
                       "overdue": ("bad", "Overdue"), "upcoming": ("", "Upcoming"), "written_off": ("", "Written off")}
REPAYMENT_KINDS = {"manual": "Repayment", "scheduled": "Instalment collected", "payoff": "Paid off",
                   "prepay_lower_instalment": "Principal repaid early: lower instalments",
                   "prepay_shorten_term": "Principal repaid early: a shorter loan"}
# a prepayment's choice: what the instalments left become
PREPAYMENT_EFFECTS = {"lower_instalment": "Lower my instalment", "shorten_term": "Shorten my loan"}
PREPAYMENT_FIELDS = ("prepay_amount", "effect")
# why the API refuses a prepayment, in the customer's words (its own detail for any other reason)
PREPAYMENT_REFUSALS = {
    "instalments_due": "An instalment is due: repay it first (above), then repay principal early.",
    "instalment_partly_paid": "Your next instalment is partly paid: repay the rest of it first (above), then "
                              "repay principal early.",
    "more_than_owed": "That is all the principal the loan still owes, or more. To repay all of it now, pay the "
                      "loan off by its payoff quote.",
    "loan_not_active": "The loan is no longer active: it takes no early repayment.",
}
RECOMMENDATIONS = {"approve": ("ok", "Approve"), "refer": ("warning", "Refer to a reviewer"),
                   "decline": ("bad", "Decline")}
PERIODS = {"monthly": "monthly", "fortnightly": "fortnightly", "weekly": "weekly"}
WITHDRAWABLE = ("assessing", "in_review", "awaiting_second_approval", "offered")
REVIEWABLE = ("in_review", "awaiting_second_approval")
APPLICATION_FIELDS = ("product_id", "account_id", "amount", "term", "purpose")
# the assessment's inputs, in words; the money ones are minor units of the loan's currency
INPUTS = {"inflows": "Money coming in", "credits": "Payments in", "balance": "Balance now",
          "lowest_balance": "Lowest balance", "overdraft_postings": "Postings into overdraft",
          "loans_outstanding": "Loans outstanding here", "loans_in_arrears": "Loans in arrears here",
          "instalment": "Instalment of these terms", "bureau_defaults": "Defaults at the credit bureau"}
MONEY_INPUTS = frozenset({"inflows", "balance", "lowest_balance", "instalment"})
# refusals whose field the problem does not name; a few in words of our own (the API's count in minor units)
REASON_FIELDS = {"currency_mismatch": "account_id", "unknown_account": "account_id",
                 "account_not_open": "account_id", "unknown_loan_product": "product_id",
                 "principal_out_of_range": "amount", "term_out_of_range": "term", "more_than_owed": "amount",
                 "invalid_rate": "annual_rate_percent", "backdated_rate": "effective_on",
                 "reason_required": "reason", "insufficient_funds": "amount"}
MORE_THAN_OWED = "That is more than the loan owes by its schedule. To repay all of it now, get a payoff quote."


def status_badge(status: str, staff: bool = False) -> tuple[str, str]:
    """The badge class and the words of a loan's status ("in_review" → "Being reviewed" for its customer)."""
    return (STAFF_STATUSES if staff else CUSTOMER_STATUSES).get(status, ("", status.replace("_", " ").capitalize()))


def instalments(count: int | str, frequency: str) -> str:
    """"12 monthly instalments", "1 weekly instalment"."""
    plural = "" if str(count) == "1" else "s"
    return f"{count} {PERIODS.get(frequency, frequency)} instalment{plural}"


def product_summary(product: dict[str, Any]) -> str:
    """A product in one line: its name, rate today, amounts and terms."""
    currency = product["currency"]
    return (f"{product['name']}: {product['annual_rate_percent']}% a year, "
            f"{money(product['principal_min'], currency)} to {money(product['principal_max'], currency)}, "
            f"{product['term_min']} to {instalments(product['term_max'], product['frequency'])}")


def charged(amount: str | None) -> bool:
    """Whether the API's amount (a fee) is more than nothing."""
    try:
        return Decimal(amount or "0") > 0
    except InvalidOperation:
        return False


def assessment_inputs(inputs: dict[str, int], currency: str) -> list[tuple[str, str]]:
    """What the scorer saw, in words, its amounts in the currency's decimals."""
    shown = []
    for name, value in inputs.items():
        text = str(value)
        if name in MONEY_INPUTS:
            try:
                text = money(format_amount(int(value), currency), currency)
            except MoneyError:   # a currency the platform does not know: the number as it came
                pass
        shown.append((INPUTS.get(name, name.replace("_", " ").capitalize()), text))
    return shown


def application_body(form: dict[str, str], products: dict[str, dict[str, Any]],
                     currencies: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The API's LoanApplication from the form, or the form's own errors (blanks, an account in another
    currency than the loan's). `currencies`: the customer's open accounts' currencies by account id."""
    errors: dict[str, list[str]] = {}
    product = products.get(form.get("product_id", ""))
    currency = currencies.get(form.get("account_id", ""))
    if product is None:
        errors["product_id"] = ["Choose a loan."]
    if currency is None:
        errors["account_id"] = ["Choose the account the loan is paid into."]
    elif product is not None and currency != product["currency"]:
        errors["account_id"] = [f"Choose an account in {product['currency']}: the loan is paid into it and repaid "
                                "from it."]
    amount, term, purpose = (form.get(name, "").strip() for name in ("amount", "term", "purpose"))
    if not amount:
        errors["amount"] = ["Enter how much you want to borrow."]
    if not term.isdigit():
        errors["term"] = ["Enter the number of instalments, a whole number."]
    if not purpose:
        errors["purpose"] = ["Tell us what the loan is for."]
    body = {"product_id": form.get("product_id", ""), "account_id": form.get("account_id", ""), "amount": amount,
            "term": int(term) if term.isdigit() else term, "purpose": purpose}
    return body, errors


def refusal(error: ApiError, fields: tuple[str, ...], default: str,
            product: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """The API's refusal next to its field; a range refused in the product's terms, not in minor units."""
    field = REASON_FIELDS.get(error.reason)
    if field not in fields:
        return field_errors(error, fields, default)
    if product is not None and error.reason == "principal_out_of_range":
        return {field: [f"Choose an amount from {money(product['principal_min'], product['currency'])} to "
                        f"{money(product['principal_max'], product['currency'])}."]}
    if product is not None and error.reason == "term_out_of_range":
        return {field: [f"Choose from {product['term_min']} to {product['term_max']} instalments."]}
    if error.reason == "more_than_owed":
        return {field: [MORE_THAN_OWED]}
    return {field: error.messages()}


def prepayment_body(form: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The API's Prepayment {amount, effect} from the form, or the form's own errors (no amount, no choice)."""
    amount, effect = form.get("prepay_amount", "").strip(), form.get("effect", "")
    errors: dict[str, list[str]] = {}
    if not amount:
        errors["prepay_amount"] = ["Enter the amount of principal to repay early."]
    if effect not in PREPAYMENT_EFFECTS:
        errors["effect"] = ["Choose a lower instalment or a shorter loan."]
    return {"amount": amount, "effect": effect}, errors


def prepayment_refusal(error: ApiError) -> dict[str, list[str]]:
    """The API's refusal of a prepayment next to the form's field: a choice refused next to the choice, anything
    else (a reason above, an amount the API cannot read, the account's funds) next to the amount."""
    if error.field() == "effect":
        return {"effect": ["Choose a lower instalment or a shorter loan."]}
    words = PREPAYMENT_REFUSALS.get(error.reason)
    return {"prepay_amount": [words] if words else error.messages()}
