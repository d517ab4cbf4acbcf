"""How the pages show amounts, times and identifiers. Pure functions, no arithmetic on money: the API's decimal
strings are shown as they are, with grouping and the currency's symbol, never added up or rounded here."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF ", "SEK": "SEK ", "BHD": "BHD ",
           "KWD": "KWD ", "PLN": "PLN ", "NOK": "NOK ", "DKK": "DKK "}
MINUS = "\u2212"   # a real minus sign, not a hyphen


def money(amount: str | None, currency: str | None = None) -> str:
    """`"-1234.5", "EUR"` → `−€1,234.5` (the digits exactly as the API wrote them, grouped in thousands)."""
    if amount is None or amount == "":
        return ""
    text = str(amount).strip()
    try:
        Decimal(text)
    except InvalidOperation:
        return text
    negative = text.startswith("-")
    digits = text.lstrip("+-")
    whole, _, fraction = digits.partition(".")
    grouped = f"{int(whole or '0'):,}"
    body = grouped + (f".{fraction}" if fraction else "")
    symbol = SYMBOLS.get(currency or "", f"{currency} " if currency else "")
    return f"{MINUS if negative else ''}{symbol}{body}"


def is_negative(amount: str | None) -> bool:
    return bool(amount) and str(amount).strip().startswith("-")


def when(value: str | datetime | None, with_time: bool = True) -> str:
    """An ISO timestamp from the API, shown in UTC (the statements' months are UTC months too)."""
    if value is None or value == "":
        return ""
    moment = value if isinstance(value, datetime) else _parse(str(value))
    if moment is None:
        return str(value)
    return moment.strftime("%d %b %Y, %H:%M UTC" if with_time else "%d %b %Y")


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


_DURATION = re.compile(r"(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.\d+)?S)?)?")
_DURATION_UNITS = (("day", "days"), ("h", "h"), ("min", "min"), ("s", "s"))


def duration(text: str | None) -> str:
    """An ISO 8601 duration from the API (days at most: PnDTnHnMn.nS) for a person: `P1330DT2H12M9.6S` →
    `1,330 days 2 h 12 min 9 s` (whole seconds). Anything else is shown as it came."""
    match = _DURATION.fullmatch(text or "")
    if match is None or text in ("P", "PT", "-P", "-PT"):
        return text or ""
    sign, *amounts = match.groups()
    shown = [f"{int(amount):,} {one if int(amount) == 1 else many}"
             for amount, (one, many) in zip(amounts, _DURATION_UNITS, strict=True) if amount and int(amount)]
    return (MINUS if sign and shown else "") + (" ".join(shown) or "0 s")


def short_id(identifier: str | None) -> str:
    return (identifier or "")[:8]


TRANSACTION_TYPES = {
    "deposit": "Deposit", "withdrawal": "Withdrawal", "transfer_out": "Transfer out", "transfer_in": "Transfer in",
    "transfer_reversal": "Transfer returned", "interest": "Interest",
}
CHANNELS = {"cash": "cash", "card": "card", "transfer": "transfer"}


def describe(transaction: dict[str, object]) -> str:
    """A posting in words: "Deposit (cash)", "Transfer out"."""
    kind = TRANSACTION_TYPES.get(str(transaction.get("type")), str(transaction.get("type", "")).replace("_", " "))
    channel = transaction.get("channel")
    if kind in ("Deposit", "Withdrawal") and channel in ("cash", "card"):
        return f"{kind} ({channel})"
    return kind
