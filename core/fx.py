"""Currency exchange: a rate table, spreads, quotes and the legs a quote posts. Pure: no I/O, no floats.

The rate table is a log of staff changes (FxRatesSet on bank.fx.rates) folded into a RateBook by whoever prices.

A rate is the mid price of one unit of `base` in `quote` currency (EUR/USD 1.0850: one euro is 1.0850 dollars),
a Decimal of at most 10 significant digits, effective from a time; the newest entry effective at `now` applies.
A pair without a direct entry is read through its inverse, else crossed through EUR (the base currency); a
pair's spread is the same both ways, and a crossed pair without a spread of its own takes the default.

The customer's rate is the mid moved by the pair's spread (basis points) in the bank's favour, cut to 10
significant digits towards the bank. Amounts are integer minor units:

- **side "sell"**: the customer sells exactly `amount` of the sell currency; the buy amount is `amount x rate`
  rounded *down* to the buy currency's minor units.
- **side "buy"**: the customer buys exactly `amount` of the buy currency; the sell amount is `amount / rate`
  rounded *up* to the sell currency's minor units.

The rounding rule, and why: the customer-side amount is rounded in the bank's favour; the fx-position account is
carried at the exact amount rounded to the nearest minor unit (half even); the difference, 0 or 1 minor unit,
is posted to `fee-income` (the rounding account), so each currency's legs balance to the minor unit. The quote
also gives the exact sub-minor remainder (`remainder`, a fraction of one minor unit) for reconciliation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from typing import Any, Literal

from core.books import FX_POSITION, Leg, customer_account
from core.money import MAX_MINOR_UNITS, currency_digits

Side = Literal["sell", "buy"]

BASE_CURRENCY = "EUR"
RATE_DIGITS = 10                    # significant digits of a mid rate and of a customer rate
DEFAULT_SPREAD_BASIS_POINTS = 50    # 0.50 %: a pair without a configured spread
MAX_SPREAD_BASIS_POINTS = 5000
ROUNDING_ACCOUNT = "fee-income"     # the chart's income account takes the rounding (core.books.CHART)
BASIS_POINTS = 10_000


class FxError(ValueError):
    """A refused exchange; `reason` is machine-readable (no_rate, quote_expired, same_currency, invalid_rate...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Rate:
    """A line of the rate table: one `base` is `mid` units of `quote`, from `effective_from` on."""

    base: str
    quote: str
    mid: Decimal
    effective_from: datetime

    def __post_init__(self) -> None:
        check_rate(self.base, self.quote, self.mid)


def check_rate(base: str, quote: str, mid: Decimal) -> None:
    """Raises FxError (or MoneyError for an unknown currency) unless the entry is a usable rate."""
    currency_digits(base)
    currency_digits(quote)
    if base == quote:
        raise FxError("same_currency", f"a rate needs two currencies, not {base}/{quote}")
    if not mid.is_finite() or mid <= 0:
        raise FxError("invalid_rate", f"rate {base}/{quote} must be a positive decimal, not {mid}")
    if len(mid.normalize().as_tuple().digits) > RATE_DIGITS:
        raise FxError("invalid_rate", f"rate {base}/{quote} has more than {RATE_DIGITS} significant digits")


def pair_key(first: str, second: str) -> str:
    """The key of a pair in a spread table: the same for both directions ("EUR/USD" for USD->EUR too)."""
    low, high = sorted((first, second))
    return f"{low}/{high}"


@dataclass(frozen=True, slots=True)
class Spreads:
    """Spreads in basis points per pair (keys from pair_key), and the default for any other pair."""

    per_pair: Mapping[str, int]
    default: int = DEFAULT_SPREAD_BASIS_POINTS

    def of(self, sell_currency: str, buy_currency: str) -> int:
        return self.per_pair.get(pair_key(sell_currency, buy_currency), self.default)


@dataclass(frozen=True, slots=True)
class Quote:
    """A priced exchange. Rates are buy-currency units per sell-currency unit; amounts are minor units."""

    id: str
    sell_currency: str
    buy_currency: str
    side: Side
    mid_rate: Decimal
    spread_basis_points: int
    rate: Decimal                 # the customer's rate
    inverse_rate: Decimal         # sell-currency units per buy-currency unit (shown, never used to price)
    sell_amount: int
    buy_amount: int
    rounded_currency: str         # the currency of the customer-side amount that was rounded
    position_amount: int          # that side's exact amount, to the nearest minor unit: what fx-position carries
    rounding_amount: int          # position_amount vs the customer's amount: 0 or 1 minor unit, to the bank
    remainder: Fraction           # the exact sub-minor remainder kept by the bank, in minor units (0 <= r < 1)
    created_at: datetime
    expires_at: datetime


def effective_rate(rates: Iterable[Rate], base: str, quote: str, now: datetime) -> Fraction | None:
    """base->quote as an exact fraction: the newest entry effective at `now`, direct, inverse or through EUR."""
    table = _effective_table(rates, now)
    direct = _direct(table, base, quote)
    if direct is not None:
        return direct
    if BASE_CURRENCY in (base, quote):
        return None
    to_base, from_base = _direct(table, base, BASE_CURRENCY), _direct(table, BASE_CURRENCY, quote)
    return to_base * from_base if to_base is not None and from_base is not None else None


def _effective_table(rates: Iterable[Rate], now: datetime) -> dict[tuple[str, str], Rate]:
    """The newest entry per ordered pair among those already effective."""
    table: dict[tuple[str, str], Rate] = {}
    for rate in rates:
        current = table.get((rate.base, rate.quote))
        if rate.effective_from <= now and (current is None or rate.effective_from >= current.effective_from):
            table[(rate.base, rate.quote)] = rate
    return table


def _direct(table: Mapping[tuple[str, str], Rate], base: str, quote: str) -> Fraction | None:
    """A pair's entry, or its inverse's; the newer wins when both directions are listed."""
    forward, backward = table.get((base, quote)), table.get((quote, base))
    if forward is not None and (backward is None or forward.effective_from >= backward.effective_from):
        return Fraction(forward.mid)
    return 1 / Fraction(backward.mid) if backward is not None else None


def _significant(value: Fraction, rounding: str) -> Decimal:
    """A positive fraction as a Decimal of RATE_DIGITS significant digits, rounded as told."""
    context = Context(prec=RATE_DIGITS, rounding=rounding)
    # Divide as Decimals in a context wide enough to be exact enough, then cut to the digits, in one direction.
    wide = Context(prec=60, rounding=rounding)
    return context.plus(wide.divide(Decimal(value.numerator), Decimal(value.denominator)))


def quote(sell_currency: str, buy_currency: str, amount: int, side: Side, rates: Iterable[Rate],
          spreads: Spreads, now: datetime, ttl: timedelta, quote_id: str | None = None) -> Quote:
    """Price an exchange. Raises FxError (no_rate, same_currency, invalid_amount, amount_too_small,
    amount_too_large) or
    MoneyError."""
    sell_digits, buy_digits = currency_digits(sell_currency), currency_digits(buy_currency)
    if sell_currency == buy_currency:
        raise FxError("same_currency", f"nothing to exchange: both sides are {sell_currency}")
    if amount <= 0:
        raise FxError("invalid_amount", "the amount to exchange must be positive")
    mid = effective_rate(rates, sell_currency, buy_currency, now)
    if mid is None:
        raise FxError("no_rate", f"no {sell_currency}/{buy_currency} rate is effective, direct or through "
                                 f"{BASE_CURRENCY}")
    spread = spreads.of(sell_currency, buy_currency)
    # The bank gives fewer buy units per sell unit than the mid: both rounding and spread go its way.
    rate = _significant(mid * (BASIS_POINTS - spread) / BASIS_POINTS, ROUND_FLOOR)
    scale = Fraction(10) ** (buy_digits - sell_digits)   # buy minor units per sell minor unit at a rate of 1
    if side == "sell":
        exact = amount * Fraction(rate) * scale
        sell_amount, buy_amount = amount, _floor(exact)
        rounded_currency, customer_amount = buy_currency, buy_amount
    else:
        exact = amount / (Fraction(rate) * scale)
        sell_amount, buy_amount = _ceiling(exact), amount
        rounded_currency, customer_amount = sell_currency, sell_amount
    if max(sell_amount, buy_amount) > MAX_MINOR_UNITS:
        raise FxError("amount_too_large", "the exchange exceeds the maximum of one posting on one side")
    if buy_amount == 0:
        raise FxError("amount_too_small", f"{amount} minor units of {sell_currency} buy less than one minor "
                                          f"unit of {buy_currency}")
    position = _half_even(exact)
    return Quote(
        id=quote_id or uuid.uuid4().hex, sell_currency=sell_currency, buy_currency=buy_currency, side=side,
        mid_rate=_significant(mid, ROUND_HALF_EVEN), spread_basis_points=spread, rate=rate,
        inverse_rate=_significant(1 / Fraction(rate), ROUND_CEILING),
        sell_amount=sell_amount, buy_amount=buy_amount, rounded_currency=rounded_currency,
        position_amount=position, rounding_amount=abs(position - customer_amount),
        remainder=abs(exact - customer_amount), created_at=now, expires_at=now + ttl,
    )


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator


def _ceiling(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)


def _half_even(value: Fraction) -> int:
    return round(value)   # Fraction.__round__ rounds half to even


def check_not_expired(priced: Quote, now: datetime) -> None:
    """Raises FxError quote_expired once the quote's time is up (at expires_at exactly, it is up)."""
    if now >= priced.expires_at:
        raise FxError("quote_expired", f"quote {priced.id} expired at {priced.expires_at.isoformat()}")


def fx_legs(priced: Quote, from_account: str, to_account: str) -> tuple[Leg, ...]:
    """The legs executing a quote posts: per currency, debits equal credits to the minor unit.

    Sell currency: the customer's account debited, fx-position credited (plus rounding, side "buy").
    Buy currency: fx-position debited, the customer's account credited (plus rounding, side "sell").
    """
    if priced.side == "sell":
        sell_legs = _pair(customer_account(from_account), FX_POSITION, priced.sell_amount, priced.sell_currency)
        buy_legs = (Leg("debit", FX_POSITION, priced.position_amount, priced.buy_currency),
                    Leg("credit", customer_account(to_account), priced.buy_amount, priced.buy_currency))
        rounding = _rounding_leg(priced, priced.buy_currency)
    else:
        sell_legs = (Leg("debit", customer_account(from_account), priced.sell_amount, priced.sell_currency),
                     Leg("credit", FX_POSITION, priced.position_amount, priced.sell_currency))
        buy_legs = _pair(FX_POSITION, customer_account(to_account), priced.buy_amount, priced.buy_currency)
        rounding = _rounding_leg(priced, priced.sell_currency)
    # A tiny exchange can carry a zero position (a fraction of a unit paid as one unit): no leg of zero.
    return tuple(leg for leg in (*sell_legs, *buy_legs, *rounding) if leg.amount)


def _pair(debit: str, credit: str, amount: int, currency: str) -> tuple[Leg, Leg]:
    return Leg("debit", debit, amount, currency), Leg("credit", credit, amount, currency)


def _rounding_leg(priced: Quote, currency: str) -> Sequence[Leg]:
    """The customer-side rounding, credited to income; none when there was nothing to round.

    Side sell: fx-position was debited the exact amount (nearest unit), the customer got it rounded down, so the
    rounding account is credited the difference. Side buy: the customer paid the amount rounded up, fx-position
    takes the nearest unit, the difference again credited to income. The difference is never negative."""
    if priced.rounding_amount == 0:
        return ()
    return (Leg("credit", ROUNDING_ACCOUNT, priced.rounding_amount, currency),)


def exchange_of(priced: Quote) -> dict[str, Any]:
    """What an exchanged transfer carries of its quote (core.commands.Transfer.exchange): both sides, the position
    and the rounding, so the ledger posts the books' FX legs (core.books) exactly as the quote priced them."""
    return {"quote_id": priced.id, "rate": str(priced.rate), "sell_amount": priced.sell_amount,
            "sell_currency": priced.sell_currency, "buy_amount": priced.buy_amount,
            "buy_currency": priced.buy_currency, "position_amount": priced.position_amount,
            "rounding_amount": priced.rounding_amount, "rounded_currency": priced.rounded_currency}


# ---------------------------------------------------------------- the rate table, as a log of changes


@dataclass(frozen=True, slots=True, kw_only=True)
class FxRatesSet:
    """A staff change to the rate table (bank.fx.rates): entries, each a pair's mid rate and spread from a moment on.
    One record per change, so a change is on the log whole or not at all."""

    event_id: str
    entries: list[dict[str, Any]]   # [{"base", "quote", "mid_rate": decimal text, "spread_basis_points",
    #                                   "effective_from": datetime}]
    set_by: str
    set_at: datetime
    schema_version: int = 1


FX_TYPES: dict[str, type] = {"FxRatesSet": FxRatesSet}
FX_RATES_KEY = "fx-rates"   # every change under one key: one partition, one order


@dataclass(frozen=True, slots=True)
class RateEntry:
    """A line of the table with who set it and when."""

    rate: Rate
    spread_basis_points: int
    set_by: str
    set_at: datetime


@dataclass
class RateBook:
    """The rate table folded from bank.fx.rates, in log order; a record seen twice counts once."""

    entries: list[RateEntry] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def apply(self, record: FxRatesSet) -> None:
        if record.event_id in self._seen:
            return
        self._seen.add(record.event_id)
        for entry in record.entries:
            rate = Rate(entry["base"], entry["quote"], Decimal(entry["mid_rate"]), entry["effective_from"])
            self.entries.append(RateEntry(rate, entry["spread_basis_points"], record.set_by, record.set_at))

    def effective(self, now: datetime) -> list[RateEntry]:
        """Per ordered pair, the entry effective at `now` with the latest start (of equal starts, the later set)."""
        newest: dict[tuple[str, str], RateEntry] = {}
        for entry in self.entries:
            key = (entry.rate.base, entry.rate.quote)
            if entry.rate.effective_from <= now and (
                    key not in newest or entry.rate.effective_from >= newest[key].rate.effective_from):
                newest[key] = entry
        return [newest[key] for key in sorted(newest)]

    def scheduled(self, now: datetime) -> list[RateEntry]:
        """Entries not yet effective, soonest first."""
        return sorted((e for e in self.entries if e.rate.effective_from > now), key=lambda e: e.rate.effective_from)


def rates_and_spreads(entries: Sequence[RateEntry]) -> tuple[list[Rate], Spreads]:
    """What `quote` takes; a pair listed both ways takes the newer entry's spread."""
    newest: dict[str, RateEntry] = {}
    for entry in entries:
        key = pair_key(entry.rate.base, entry.rate.quote)
        if key not in newest or entry.rate.effective_from >= newest[key].rate.effective_from:
            newest[key] = entry
    return [entry.rate for entry in entries], Spreads({key: e.spread_basis_points for key, e in newest.items()})
