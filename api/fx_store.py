"""Where currency exchange keeps its quotes: PostgreSQL (migrations/0009_fx.sql). The rate table is a topic
(bank.fx.rates, api/fx_rates.py).

The route module (api/routes/fx.py) and a transfer executing a quote both use this module: a transfer loads its
quote with `quote_by_id` and posts `core.fx.fx_legs` of exactly what the customer was quoted, after
`core.fx.check_not_expired`.
"""

from __future__ import annotations

from fractions import Fraction

import asyncpg

from core import fx


_QUOTE_COLUMNS = ("id, sell_currency, buy_currency, side, mid_rate, spread_basis_points, rate, inverse_rate, "
                  "sell_amount, buy_amount, rounded_currency, position_amount, rounding_amount, remainder, "
                  "created_at, expires_at")


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
