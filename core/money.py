"""Money as integer minor units plus an ISO-4217 currency. Decimal strings at the edges; no float anywhere."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

# Minor-unit digits per ISO-4217 code (the ISO table's "E" column) for the currencies we accept.
CURRENCY_DIGITS: dict[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0,
    "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2,
    "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3, "LYD": 3,
    "MAD": 2, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PHP": 2, "PKR": 2,
    "PLN": 2, "QAR": 2, "RON": 2, "RSD": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3,
    "TRY": 2, "TWD": 2, "UAH": 2, "UGX": 0, "USD": 2, "VND": 0, "XAF": 0, "XOF": 0, "ZAR": 2,
}

# A posting's ceiling: keeps every sum of postings far inside Avro's signed 64-bit long.
MAX_MINOR_UNITS = 10**15
# An account's range: its balance stays within -MAX_BALANCE..+MAX_BALANCE minor units, and so does what it has
# held for review (core.ledger rejects a command that would leave it: `balance_limit`). Avro's long ends near
# 9.2 * 10**18, so a balance, a held total and a posting can be summed thousands of times over without overflow;
# only a reversal (money the account had before) may pass the ceiling, by at most its transfers in flight.
MAX_BALANCE_MINOR_UNITS = 10**15

_MAX_INT_DIGITS = len(str(MAX_MINOR_UNITS))   # more whole digits than this is over the ceiling in any currency
_AMOUNT = re.compile(r"^(?P<int>0|[1-9][0-9]*)(?:\.(?P<frac>[0-9]+))?$")


class MoneyError(ValueError):
    """Bad money input; `reason` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def currency_digits(currency: str) -> int:
    try:
        return CURRENCY_DIGITS[currency]
    except KeyError:
        raise MoneyError("unknown_currency", f"{currency!r} is not a supported ISO-4217 currency code") from None


def parse_amount(text: str, currency: str, *, allow_zero: bool = False) -> int:
    """Parse a positive (or, with allow_zero, non-negative) decimal string ("12.50") into minor units."""
    digits = currency_digits(currency)
    if not isinstance(text, str):
        raise MoneyError("invalid_amount", "amount must be a decimal string such as \"12.50\"")
    match = _AMOUNT.fullmatch(text)   # fullmatch: `$` alone would let a trailing newline through
    if match is None:
        raise MoneyError("invalid_amount", f"amount {_shown(text)} is not a plain positive decimal such as \"12.50\"")
    frac = match["frac"] or ""
    if len(match["int"]) > _MAX_INT_DIGITS:   # before int(): Python refuses to convert 4,300+ digits at all
        raise MoneyError("amount_too_large", f"amount {_shown(text)} exceeds the maximum of one posting")
    if len(frac) > digits:
        raise MoneyError(
            "too_many_decimals", f"{currency} has {digits} decimal place(s); {_shown(text)} has {len(frac)}"
        )
    minor: int = int(match["int"]) * 10**digits + int(frac.ljust(digits, "0") or "0")
    if minor < 0 or (minor == 0 and not allow_zero):
        raise MoneyError("non_positive_amount", "amount must be greater than zero")
    if minor > MAX_MINOR_UNITS:
        raise MoneyError("amount_too_large", f"amount {_shown(text)} exceeds the maximum of one posting")
    return minor


def _shown(text: str, limit: int = 32) -> str:
    """The input as an error message quotes it: not all of a 16 KB string."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def format_amount(minor: int, currency: str) -> str:
    """Minor units to a decimal string with exactly the currency's digits ("-3.05", "1000", "0.125")."""
    digits = currency_digits(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}" if digits else f"{sign}{whole}"


def amounts_per_currency(default: str, overrides: Mapping[str, str], setting: str) -> dict[str, int]:
    """An amount in every accepted currency, in its minor units: `overrides` (currency -> decimal string) where
    given, else `default` read in each currency's major units. Raises MoneyError naming the setting."""
    # Read once per setting's value: routes ask for limits on every request (parsing one amount per currency
    # each time was about 5 % of the API's CPU per command).
    return dict(_amounts_per_currency(default, tuple(sorted(overrides.items())), setting))


@lru_cache(maxsize=256)
def _amounts_per_currency(default: str, override_items: tuple[tuple[str, str], ...], setting: str) -> dict[str, int]:
    overrides = dict(override_items)
    unknown = sorted(set(overrides) - set(CURRENCY_DIGITS))
    if unknown:
        raise MoneyError("unknown_currency", f"{setting}: {', '.join(unknown)} not supported currencies")
    try:
        return {currency: parse_amount(overrides.get(currency, default), currency) for currency in CURRENCY_DIGITS}
    except MoneyError as error:
        raise MoneyError(error.reason, f"{setting}: {error.detail}") from None
