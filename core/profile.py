"""A person's profile and contact details: phone numbers in E.164, dates of birth, countries, and the masks the
audit trail shows instead of the values (core stays pure: parsing only, no storage)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date

import phonenumbers
import pycountry

CODE_DIGITS = 6


class InvalidContact(ValueError):
    """A value that is not a phone number, date of birth or country; `reason` is the problem's reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def normalise_phone(text: str, default_region: str) -> str:
    """The number in E.164 (+4915112345678). Without a leading + it is read as a national number of
    `default_region`. Raises InvalidContact for text that is no number or a number no country assigns."""
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidContact("invalid_phone", "phone: not a phone number (digits, optionally starting with + "
                             "and the country code)") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidContact("invalid_phone", "phone: the number has the wrong length for its country")
    if not phonenumbers.is_valid_number(number):
        raise InvalidContact("invalid_phone", "phone: no such number is assigned in its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_date_of_birth(born: date, today: date) -> date:
    """A real date in the past (a person born today or later has no account to edit)."""
    if born >= today:
        raise InvalidContact("invalid_date_of_birth", "date_of_birth: must be in the past")
    if born.year < today.year - 150:
        raise InvalidContact("invalid_date_of_birth", "date_of_birth: more than 150 years ago")
    return born


def check_country(code: str) -> str:
    """An ISO 3166-1 alpha-2 code, upper case."""
    upper = code.strip().upper()
    if len(upper) != 2 or pycountry.countries.get(alpha_2=upper) is None:
        raise InvalidContact("invalid_country", f"country: {code!r} is not an ISO 3166-1 alpha-2 country code")
    return upper


def mask_email(email: str | None) -> str | None:
    """j***@e***.com: the first letter of the local part and of the domain, and the top-level domain."""
    if not email:
        return email
    local, _, domain = email.rpartition("@")
    name, dot, tld = domain.rpartition(".")
    if not name:
        name, tld, dot = domain, "", ""
    return f"{local[:1]}***@{name[:1]}***{dot}{tld}"


def mask_phone(phone: str | None) -> str | None:
    """+49*******12: the country code's first digits and the last two; the rest starred."""
    if not phone:
        return phone
    digits = phone.lstrip("+")
    try:
        country = str(phonenumbers.parse(phone).country_code)
    except phonenumbers.NumberParseException:
        country = digits[:1]
    hidden = max(len(digits) - len(country) - 2, 0)
    return f"+{country}{'*' * hidden}{digits[len(country) + hidden:]}"


def mask_text(text: str | None) -> str | None:
    """Names and address parts: the first letter, then stars (the trail says a field changed, not to what)."""
    if not text:
        return text
    return text[:1] + "***"


def new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(change_id: str, code: str) -> str:
    """Keyed by the change, so one code's hash says nothing about another change's."""
    return hmac.new(change_id.encode(), code.strip().encode(), hashlib.sha256).hexdigest()


def code_matches(change_id: str, code: str, expected_hash: str) -> bool:
    return hmac.compare_digest(code_hash(change_id, code), expected_hash)
