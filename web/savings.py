"""Savings interest as the pages say it, for the customer's account page (web/customer/accounts.py) and the admin
panel's savings products (web/admin/savings.py): a product in one line, a month of interest and whether it is
paid, the API's refusals in words next to their field.

Every amount is the API's (accrued daily, rounded down, the remainder carried; credited after each month's last
day): nothing is added up here.
"""

from __future__ import annotations

from typing import Any

from web.client import ApiError
from web.forms import field_errors

DAY_COUNTS = [("ACT/365F", "ACT/365F (actual days, a 365-day year)"), ("ACT/360", "ACT/360 (actual days, a 360-day year)"),
              ("30/360", "30/360 (30-day months)")]
PRODUCT_FIELDS = ("name", "currency", "annual_rate_percent", "rate_effective_on", "day_count")
# refusals whose field the problem does not name: the first of these fields the form has
PRODUCT_REASONS = {"invalid_rate": ("annual_rate_percent",), "backdated_rate": ("rate_effective_on", "effective_on"),
                   "invalid_name": ("name",), "invalid_day_count": ("day_count",)}
# why the API does not let an account earn a product, in the customer's words
ENROLMENT_REFUSALS = {
    "unknown_savings_product": "That savings product is no longer offered: choose another.",
    "currency_mismatch": "That product pays interest in another currency than the account's: choose one in the "
                         "account's currency.",
    "account_not_open": "The account is not open: it cannot start earning interest.",
    "already_enrolled": "The account already earns the interest of another product.",
}


def product_summary(product: dict[str, Any]) -> str:
    """"Easy Saver: 2.5% a year"."""
    return f"{product['name']}: {product['annual_rate_percent']}% a year"


def products_in(products: list[dict[str, Any]], currency: str) -> list[dict[str, Any]]:
    """The offered products an account in `currency` may earn."""
    return [p for p in products if p["currency"] == currency and p.get("status", "active") == "active"]


def enrolment_refusal(error: ApiError) -> dict[str, list[str]]:
    """The API's refusal to enrol the account, next to the product's field."""
    words = ENROLMENT_REFUSALS.get(error.reason)
    return {"product_id": [words] if words else error.messages()}


def product_body(form: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The API's SavingsProductBody from the admin's form, or the form's own errors (blanks)."""
    errors: dict[str, list[str]] = {}
    for name, message in (("name", "Enter the product's name."), ("annual_rate_percent", "Enter the yearly rate.")):
        if not form.get(name, "").strip():
            errors[name] = [message]
    body = {name: form.get(name, "").strip() for name in ("name", "currency", "annual_rate_percent", "day_count")}
    if effective := form.get("rate_effective_on", "").strip():
        body["rate_effective_on"] = effective
    return body, errors


def product_refusal(error: ApiError, fields: tuple[str, ...], default: str) -> dict[str, list[str]]:
    """The API's refusal of a product or a rate change next to its field."""
    field = next((name for name in PRODUCT_REASONS.get(error.reason, ()) if name in fields), None)
    return {field: error.messages()} if field else field_errors(error, fields, default)
