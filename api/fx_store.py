"""Where currency exchange keeps its rate table and its quotes: PostgreSQL (migrations/0009_fx.sql).

The route module (api/routes/fx.py) and, later, a transfer executing a quote both use this module: a transfer
loads its quote with `quote_by_id` and posts `core.fx.fx_legs` of exactly what the customer was quoted, after
`core.fx.check_not_expired`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

import asyncpg

from core import fx


@dataclass(frozen=True, slots=True)
class RateRow:
    """An entry of the table, with who set it and when."""

    rate: fx.Rate
    spread_basis_points: int
    set_by: str
    set_at: datetime


_COLUMNS = "base_currency, quote_currency, mid_rate, spread_basis_points, effective_from, set_by, set_at"
_EFFECTIVE = f"""
    SELECT DISTINCT ON (base_currency, quote_currency) {_COLUMNS}
    FROM fx_rates WHERE effective_from <= $1
    ORDER BY base_currency, quote_currency, effective_from DESC, id DESC"""
_SCHEDULED = f"SELECT {_COLUMNS} FROM fx_rates WHERE effective_from > $1 ORDER BY effective_from, id"
_QUOTE_COLUMNS = ("id, sell_currency, buy_currency, side, mid_rate, spread_basis_points, rate, inverse_rate, "
                  "sell_amount, buy_amount, rounded_currency, position_amount, rounding_amount, remainder, "
                  "created_at, expires_at")


def _row(record: asyncpg.Record) -> RateRow:
    rate = fx.Rate(record["base_currency"], record["quote_currency"], Decimal(record["mid_rate"]),
                   record["effective_from"])
    return RateRow(rate, record["spread_basis_points"], record["set_by"], record["set_at"])


async def effective_rows(pool: asyncpg.Pool, now: datetime) -> list[RateRow]:
    """Per ordered pair, the newest entry effective at `now`."""
    async with pool.acquire() as connection:
        return [_row(record) for record in await connection.fetch(_EFFECTIVE, now)]


async def scheduled_rows(pool: asyncpg.Pool, now: datetime) -> list[RateRow]:
    async with pool.acquire() as connection:
        return [_row(record) for record in await connection.fetch(_SCHEDULED, now)]


async def add_rates(pool: asyncpg.Pool, entries: Sequence[tuple[fx.Rate, int]], set_by: str) -> None:
    """Append entries (a rate and its pair's spread), all or none."""
    async with pool.acquire() as connection:
        await connection.executemany(
            "INSERT INTO fx_rates (base_currency, quote_currency, mid_rate, spread_basis_points, effective_from, "
            "set_by) VALUES ($1, $2, $3, $4, $5, $6)",
            [(rate.base, rate.quote, rate.mid, spread, rate.effective_from, set_by) for rate, spread in entries])


def rates_and_spreads(rows: Sequence[RateRow]) -> tuple[list[fx.Rate], fx.Spreads]:
    """What core.fx.quote takes; a pair listed both ways takes the newer entry's spread."""
    newest: dict[str, RateRow] = {}
    for row in rows:
        key = fx.pair_key(row.rate.base, row.rate.quote)
        if key not in newest or row.rate.effective_from >= newest[key].rate.effective_from:
            newest[key] = row
    return [row.rate for row in rows], fx.Spreads({key: row.spread_basis_points for key, row in newest.items()})


async def keep_quote(pool: asyncpg.Pool, quote: fx.Quote, requested_by: str) -> None:
    async with pool.acquire() as connection:
        await connection.execute(
            f"INSERT INTO fx_quotes ({_QUOTE_COLUMNS}, requested_by) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            quote.id, quote.sell_currency, quote.buy_currency, quote.side, quote.mid_rate,
            quote.spread_basis_points, quote.rate, quote.inverse_rate, quote.sell_amount, quote.buy_amount,
            quote.rounded_currency, quote.position_amount, quote.rounding_amount, str(quote.remainder),
            quote.created_at, quote.expires_at, requested_by)


async def quote_by_id(pool: asyncpg.Pool, quote_id: str) -> tuple[fx.Quote, str] | None:
    """A kept quote exactly as it was given, and who asked for it; None for an id never given."""
    async with pool.acquire() as connection:
        record = await connection.fetchrow(
            f"SELECT {_QUOTE_COLUMNS}, requested_by FROM fx_quotes WHERE id = $1", quote_id)
    if record is None:
        return None
    fields = {name: record[name] for name in _QUOTE_COLUMNS.split(", ")}
    fields["remainder"] = Fraction(fields["remainder"])
    return fx.Quote(**fields), record["requested_by"]
