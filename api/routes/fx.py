"""Currency exchange: the staff-managed rate table and quotes (core/fx.py prices; this module stores and serves).

Rates live in PostgreSQL (migrations/0007_fx.sql), append-only and effective-timed: `PUT /v1/admin/fx/rates`
adds entries (admins only, audit-recorded as `fx_rates_set`), `GET` shows the entries effective now and those
scheduled. Times are business time (infra/clock.py). `POST /v1/fx/quotes` prices an exchange at the rates
effective now and keeps the quote by id in `fx_quotes`, so a later transfer can execute it at exactly that rate
and amounts, or refuse it once expired (`quote_expired`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr

from api.deps import PlatformDep, utc_moment
from api.models import Currency
from api.problems import PROBLEM_JSON, Problem
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


_EFFECTIVE = """
    SELECT DISTINCT ON (base_currency, quote_currency) base_currency, quote_currency, mid_rate,
           spread_basis_points, effective_from, set_by, set_at
    FROM fx_rates WHERE effective_from <= $1
    ORDER BY base_currency, quote_currency, effective_from DESC, id DESC"""
_SCHEDULED = """
    SELECT base_currency, quote_currency, mid_rate, spread_basis_points, effective_from, set_by, set_at
    FROM fx_rates WHERE effective_from > $1 ORDER BY effective_from, id"""


def _line(row: asyncpg.Record) -> RateLine:
    return RateLine(base=row["base_currency"], quote=row["quote_currency"], mid=str(row["mid_rate"]),
                    spread_basis_points=row["spread_basis_points"], effective_from=row["effective_from"],
                    set_by=row["set_by"], set_at=row["set_at"])


async def _table(pool: asyncpg.Pool, now: datetime) -> RateTable:
    async with pool.acquire() as connection:
        effective = await connection.fetch(_EFFECTIVE, now)
        scheduled = await connection.fetch(_SCHEDULED, now)
    return RateTable(as_of=now, base_currency=fx.BASE_CURRENCY,
                     default_spread_basis_points=fx.DEFAULT_SPREAD_BASIS_POINTS,
                     rates=[_line(row) for row in effective], scheduled=[_line(row) for row in scheduled])


def _checked(entry: RateEntry, now: datetime) -> tuple[str, str, Decimal, int, datetime]:
    try:
        mid = Decimal(entry.mid)
        fx.check_rate(entry.base, entry.quote, mid)
    except (InvalidOperation, fx.FxError, MoneyError) as error:
        reason = getattr(error, "reason", "invalid_rate")
        raise Problem(422, "Invalid rate", str(error), reason) from None
    return entry.base, entry.quote, mid, entry.spread_basis_points, utc_moment(entry.effective_from) or now


@admin_router.get("/rates", response_model=RateTable, name="get_fx_rates",
                  summary="The currency-exchange rate table: entries effective now and those scheduled")
async def get_fx_rates(platform: PlatformDep) -> RateTable:
    return await _table(platform.pg, platform.time.now())


@admin_router.put("/rates", response_model=RateTable, name="set_fx_rates", responses=_UNPROCESSABLE,
                  summary="Add rate entries, each effective from a moment (default now); audit-recorded")
async def set_fx_rates(body: RatesChange, platform: PlatformDep) -> RateTable:
    now = platform.time.now()
    entries = [_checked(entry, now) for entry in body.rates]
    by = caller().user_id
    async with platform.pg.acquire() as connection:
        await connection.executemany(
            "INSERT INTO fx_rates (base_currency, quote_currency, mid_rate, spread_basis_points, effective_from, "
            "set_by) VALUES ($1, $2, $3, $4, $5, $6)", [(*entry, by) for entry in entries])
    await platform.access.audit.record("fx_rates_set", details={
        "rates": "; ".join(f"{base}/{quote} {mid} spread {spread}bp from {start.isoformat()}"
                           for base, quote, mid, spread, start in entries)})
    return await _table(platform.pg, now)


# ---------------------------------------------------------------- quotes


def _rates_of(table: RateTable) -> tuple[list[fx.Rate], fx.Spreads]:
    rates = [fx.Rate(line.base, line.quote, Decimal(line.mid), line.effective_from) for line in table.rates]
    newest: dict[str, RateLine] = {}
    for line in table.rates:   # a pair listed both ways: the newer entry's spread
        key = fx.pair_key(line.base, line.quote)
        if key not in newest or line.effective_from >= newest[key].effective_from:
            newest[key] = line
    return rates, fx.Spreads({key: line.spread_basis_points for key, line in newest.items()})


def _priced(body: QuoteRequest, table: RateTable) -> fx.Quote:
    rates, spreads = _rates_of(table)
    try:
        amount = parse_amount(body.amount, body.sell_currency if body.side == "sell" else body.buy_currency)
        return fx.quote(body.sell_currency, body.buy_currency, amount, body.side, rates, spreads, table.as_of,
                        QUOTE_TTL)
    except (fx.FxError, MoneyError) as error:
        raise Problem(422, "Cannot exchange", error.detail, error.reason) from None


async def _keep(pool: asyncpg.Pool, priced: fx.Quote, requested_by: str) -> None:
    async with pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO fx_quotes (id, requested_by, sell_currency, buy_currency, side, mid_rate, "
            "spread_basis_points, rate, inverse_rate, sell_amount, buy_amount, rounded_currency, position_amount, "
            "rounding_amount, remainder, created_at, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            priced.id, requested_by, priced.sell_currency, priced.buy_currency, priced.side, priced.mid_rate,
            priced.spread_basis_points, priced.rate, priced.inverse_rate, priced.sell_amount, priced.buy_amount,
            priced.rounded_currency, priced.position_amount, priced.rounding_amount, str(priced.remainder),
            priced.created_at, priced.expires_at)


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
    table = await _table(platform.pg, platform.time.now())
    priced = _priced(body, table)
    await _keep(platform.pg, priced, caller().user_id)
    return _view(priced)
