"""Currency exchange: the staff-managed rate table and quotes (core/fx.py prices; this module stores and serves).

Rates are a log, bank.fx.rates, append-only and effective-timed: `PUT /v1/admin/fx/rates` publishes one
FxRatesSet of entries (admins only, audit-recorded as `fx_rates_set`), every instance folds the topic
(api/fx_rates.py), and `GET` shows the entries effective now and those scheduled. Times are business time
(infra/clock.py). `POST /v1/fx/quotes` prices an exchange at the rates effective now and keeps the quote by id in
PostgreSQL's `fx_quotes`, so a later transfer can execute it at exactly that rate and amounts, or refuse it once
expired (`quote_expired`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr

from api import fx_store
from api.deps import Platform, PlatformDep, utc_moment
from api.models import Currency
from api.problems import PROBLEM_JSON, Problem
from api.record_desk import ready
from api.routes.auth import caller
from core import fx
from core.money import MoneyError, format_amount, parse_amount

admin_router = APIRouter(prefix="/v1/admin/fx", tags=["admin: currency exchange"])
router = APIRouter(prefix="/v1/fx", tags=["currency exchange"])

QUOTE_TTL = timedelta(seconds=60)
MAX_RATES_PER_PUT = 200
Basis = Annotated[int, Field(ge=0, le=fx.MAX_SPREAD_BASIS_POINTS, description="spread in basis points (1/100 %)")]
DecimalText = Annotated[StrictStr, Field(pattern=r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?$", max_length=30)]
_UNPROCESSABLE: dict[int | str, dict[str, Any]] = {
    422: {"description": "an unknown currency, a rate that is not positive or has more than 10 significant "
          "digits, no rate for the pair (`no_rate`), an amount too small to exchange",
          "content": {PROBLEM_JSON: {}}},
}


class RateEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: Currency
    quote: Currency
    mid: DecimalText = Field(description="one `base` is this many `quote` (at most 10 significant digits)",
                             examples=["1.0850"])
    spread_basis_points: Basis = fx.DEFAULT_SPREAD_BASIS_POINTS
    effective_from: AwareDatetime | None = Field(None, description="default: now (business time)")


class RatesChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rates: list[RateEntry] = Field(min_length=1, max_length=MAX_RATES_PER_PUT)


class RateLine(BaseModel):
    base: str
    quote: str
    mid: str
    spread_basis_points: int
    effective_from: datetime
    set_by: str
    set_at: datetime


class RateTable(BaseModel):
    as_of: datetime = Field(description="business time the table is read at")
    base_currency: str = Field(description="pairs without a direct rate are crossed through it")
    default_spread_basis_points: int
    rates: list[RateLine] = Field(description="per pair, the entry effective now")
    scheduled: list[RateLine] = Field(description="entries effective later")


class QuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sell_currency: Currency
    buy_currency: Currency
    amount: StrictStr = Field(description="a decimal string: of the sell currency (side sell) or of the buy "
                              "currency (side buy)", examples=["100.00"])
    side: Literal["sell", "buy"] = "sell"


class Rounding(BaseModel):
    currency: str = Field(description="the currency of the customer-side amount that was rounded")
    rule: str
    position_amount: str = Field(description="the exact amount to the nearest minor unit: what fx-position takes")
    rounding_amount: str = Field(description="what the rounding account (fee-income) takes: 0 or 1 minor unit")
    remainder_minor_units: str = Field(description="the exact sub-minor remainder kept, as a fraction of one "
                                       "minor unit", examples=["9/20"])


class QuoteView(BaseModel):
    quote_id: str
    sell_currency: str
    buy_currency: str
    side: Literal["sell", "buy"]
    mid_rate: str
    spread_basis_points: int
    rate: str = Field(description="buy-currency units per sell-currency unit, the customer's")
    inverse_rate: str = Field(description="sell-currency units per buy-currency unit")
    sell_amount: str
    buy_amount: str
    rounding: Rounding
    created_at: datetime
    expires_at: datetime


# ---------------------------------------------------------------- rates


def _line(entry: fx.RateEntry) -> RateLine:
    return RateLine(base=entry.rate.base, quote=entry.rate.quote, mid=str(entry.rate.mid),
                    spread_basis_points=entry.spread_basis_points, effective_from=entry.rate.effective_from,
                    set_by=entry.set_by, set_at=entry.set_at)


def _book(platform: Platform) -> fx.RateBook:
    ready(platform.fx_rates, "currency-exchange rates")
    return platform.fx_rates.book


def _table(book: fx.RateBook, now: datetime) -> RateTable:
    return RateTable(as_of=now, base_currency=fx.BASE_CURRENCY,
                     default_spread_basis_points=fx.DEFAULT_SPREAD_BASIS_POINTS,
                     rates=[_line(entry) for entry in book.effective(now)],
                     scheduled=[_line(entry) for entry in book.scheduled(now)])


def _checked(entry: RateEntry, now: datetime) -> tuple[fx.Rate, int]:
    try:
        rate = fx.Rate(entry.base, entry.quote, Decimal(entry.mid), utc_moment(entry.effective_from) or now)
    except (InvalidOperation, fx.FxError, MoneyError) as error:
        reason = getattr(error, "reason", "invalid_rate")
        raise Problem(422, "Invalid rate", str(error), reason) from None
    return rate, entry.spread_basis_points


@admin_router.get("/rates", response_model=RateTable, name="get_fx_rates",
                  summary="The currency-exchange rate table: entries effective now and those scheduled")
async def get_fx_rates(platform: PlatformDep) -> RateTable:
    return _table(_book(platform), platform.time.now())


@admin_router.put("/rates", response_model=RateTable, name="set_fx_rates", responses=_UNPROCESSABLE,
                  summary="Add rate entries, each effective from a moment (default now); audit-recorded")
async def set_fx_rates(body: RatesChange, platform: PlatformDep) -> RateTable:
    book, now = _book(platform), platform.time.now()
    entries = [_checked(entry, now) for entry in body.rates]
    change = fx.FxRatesSet(event_id=str(uuid.uuid4()), set_by=caller().user_id, set_at=now, entries=[
        {"base": rate.base, "quote": rate.quote, "mid_rate": str(rate.mid), "spread_basis_points": spread,
         "effective_from": rate.effective_from} for rate, spread in entries])
    async with platform.fx_rates.lock:
        await platform.fx_rates.publish(change)   # on the log, then in this instance's table: read at once
    await platform.access.audit.record("fx_rates_set", details={
        "rates": "; ".join(f"{rate.base}/{rate.quote} {rate.mid} spread {spread}bp from "
                           f"{rate.effective_from.isoformat()}" for rate, spread in entries)})
    return _table(book, now)


# ---------------------------------------------------------------- quotes


def _priced(body: QuoteRequest, book: fx.RateBook, now: datetime) -> fx.Quote:
    rates, spreads = fx.rates_and_spreads(book.effective(now))
    try:
        amount = parse_amount(body.amount, body.sell_currency if body.side == "sell" else body.buy_currency)
        return fx.quote(body.sell_currency, body.buy_currency, amount, body.side, rates, spreads, now, QUOTE_TTL)
    except (fx.FxError, MoneyError) as error:
        raise Problem(422, "Cannot exchange", error.detail, error.reason) from None


def _view(priced: fx.Quote) -> QuoteView:
    rounded = priced.rounded_currency
    rule = ("buy amount rounded down" if priced.side == "sell" else "sell amount rounded up") + \
        " to the currency's minor units, in the bank's favour"
    return QuoteView(
        quote_id=priced.id, sell_currency=priced.sell_currency, buy_currency=priced.buy_currency, side=priced.side,
        mid_rate=str(priced.mid_rate), spread_basis_points=priced.spread_basis_points, rate=str(priced.rate),
        inverse_rate=str(priced.inverse_rate), sell_amount=format_amount(priced.sell_amount, priced.sell_currency),
        buy_amount=format_amount(priced.buy_amount, priced.buy_currency),
        rounding=Rounding(currency=rounded, rule=rule,
                          position_amount=format_amount(priced.position_amount, rounded),
                          rounding_amount=format_amount(priced.rounding_amount, rounded),
                          remainder_minor_units=str(priced.remainder)),
        created_at=priced.created_at, expires_at=priced.expires_at)


@router.post("/quotes", response_model=QuoteView, status_code=201, name="create_fx_quote",
             responses=_UNPROCESSABLE, summary="Price a currency exchange; the quote is kept by id until it expires")
async def create_fx_quote(body: QuoteRequest, platform: PlatformDep) -> QuoteView:
    priced = _priced(body, _book(platform), platform.time.now())
    await fx_store.keep_quote(platform.pg, priced, caller().user_id)
    return _view(priced)
