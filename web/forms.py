"""Forms: the API's refusals shown next to the field they concern."""

from __future__ import annotations

from web.client import ApiError

# Which form field an API refusal belongs to, by its reason, when the problem does not name the field itself.
REASON_FIELDS = {
    "weak_password": "password", "email_taken": "email", "wrong_password": "current_password",
    "blank": "name", "invalid_otp": "code", "invalid_iban": "iban", "unknown_account": "iban",
    "external_iban": "iban", "insufficient_funds": "amount", "invalid_amount": "amount",
    "currency_mismatch": "amount", "balance_limit": "amount", "unknown_payee": "payee_id",
}


def field_errors(error: ApiError, fields: tuple[str, ...], default: str) -> dict[str, list[str]]:
    """The API's problem, next to the field it concerns (the validation error's location, or its reason)."""
    field = error.field()
    if field not in fields:
        field = REASON_FIELDS.get(error.reason)
    if field not in fields:
        field = default
    return {field: error.messages()}
