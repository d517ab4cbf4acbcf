"""Billers and the references customers pay them with, pure (issue 16 point 2).

A biller (a utility, a tax office, a card issuer) is kept by staff: its name, category, settlement IBAN, the format
of its customer references as a pattern, and optionally a check digit. A bill payment is refused before it moves
money when its reference does not fit: a wrong reference is the commonest reason a bill payment goes astray.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

CheckDigit = Literal["luhn"]
CHECK_DIGITS: tuple[CheckDigit, ...] = ("luhn",)
CATEGORIES = ("utilities", "telecom", "insurance", "tax", "credit_card", "rent", "education", "other")
MAX_PATTERN_LENGTH = 200
MAX_REFERENCE_LENGTH = 35      # an ISO 20022 structured creditor reference fits


class BillerError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True, slots=True)
class ReferenceRule:
    pattern: str                      # a regular expression the whole reference must match
    check_digit: CheckDigit | None = None


def checked_pattern(pattern: str) -> str:
    """The pattern as staff typed it, once it compiles and is of a sane size (refused otherwise)."""
    if not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        raise BillerError("invalid_pattern", f"reference_pattern: 1 to {MAX_PATTERN_LENGTH} characters")
    try:
        re.compile(pattern)
    except re.error as error:
        raise BillerError("invalid_pattern", f"reference_pattern: not a regular expression ({error})") from None
    return pattern


def luhn_valid(digits: str) -> bool:
    """Mod-10 (Luhn): every second digit from the right doubled, the sum a multiple of ten."""
    if not digits.isdigit() or not digits.isascii() or len(digits) < 2:
        return False
    total = 0
    for position, character in enumerate(reversed(digits)):
        value = int(character)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def normalised_reference(reference: str) -> str:
    """As people type it, without the spaces they put between groups."""
    return "".join(reference.split())


def check_reference(reference: str, rule: ReferenceRule) -> str:
    """The reference to send (spaces removed), or a BillerError saying what is wrong with it."""
    compact = normalised_reference(reference)
    if not compact or len(compact) > MAX_REFERENCE_LENGTH:
        raise BillerError("invalid_reference", f"reference: 1 to {MAX_REFERENCE_LENGTH} characters")
    if re.fullmatch(rule.pattern, compact) is None:
        raise BillerError("invalid_reference", "reference: not in this biller's format; check it on your bill")
    if rule.check_digit == "luhn" and not luhn_valid(compact):
        raise BillerError("invalid_reference", "reference: its check digit is wrong; check it on your bill")
    return compact
