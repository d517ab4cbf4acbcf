"""IBANs a client sends: parsed and checked with schwifty (core/account_numbers.py), answered as problems.

One place for the answers, so the ownership check (api/authz.py) and the routes say exactly the same: another
customer's IBAN looks like one no account has.
"""

from __future__ import annotations

from api.ledger_view import LedgerView
from api.problems import Problem
from core.account_numbers import Iban, InvalidIban


def parse_iban(view: LedgerView, text: str) -> Iban:
    """The IBAN, or a 422 problem (invalid_iban) saying why it is not one (structure, length, check digits)."""
    try:
        return view.numbering.parse(text)
    except InvalidIban as error:
        raise invalid_iban(text, str(error)) from None


def invalid_iban(text: str, why: str, field: str | None = None) -> Problem:
    where = f"{field}: " if field else ""
    return Problem(422, "Invalid IBAN", f"{where}{text!r} is not a valid IBAN: {why}", "invalid_iban")


def unknown_iban(text: str) -> Problem:
    """An IBAN of no account of ours, or of another customer's (for a customer): the same 404."""
    return Problem(404, "Unknown account", f"no account of this bank has the IBAN {text}", "unknown_account")


def external_iban(iban: Iban) -> Problem:
    return Problem(422, "External IBAN", f"{iban.formatted} is an account of another bank ({iban.country} "
                   f"{iban.bank_code}); transfers move money between accounts of this bank only. Pay other banks "
                   f"with POST /v1/payments", "external_iban")
