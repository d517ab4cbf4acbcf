"""How the pages show amounts, times and identifiers. Pure functions, no arithmetic on money: the API's decimal
strings are shown as they are, with grouping and the currency's symbol, never added up or rounded here."""

from __future__ import annotations

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
