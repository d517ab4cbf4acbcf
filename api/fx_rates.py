"""The rate table the API prices from: bank.fx.rates folded in memory by every instance (api/record_desk.py).

Rates used to live in PostgreSQL (fx_rates, migrations/0009_fx.sql). An instance that finds the topic empty and
that table not empty publishes its rows once, each under an id derived from its row id, so two instances doing it
at once still fold each row once; the table is not written any more.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from api.record_desk import RecordDesk
from core import fx
from core.topics import FX_RATES

log = logging.getLogger(__name__)

FxRateDesk = RecordDesk[fx.RateBook]
_TABLE_ROWS = uuid.UUID("6f1c2d0e-9b7a-4c55-8e21-3a4f5b6c7d80")   # namespace of the ids of rows carried over


def fx_rate_desk(bootstrap: str, producer: AIOKafkaProducer) -> FxRateDesk:
    return RecordDesk(bootstrap, producer, FX_RATES, fx.RateBook(), lambda _record: fx.FX_RATES_KEY)


async def carry_over_table(desk: FxRateDesk, pool: asyncpg.Pool, timeout: float = 120.0) -> int:
    """Publish the rows of the old PostgreSQL rate table once the topic is read and found empty; how many. Runs
    beside the API's start-up: a failure is logged, and the next start tries again."""
    try:
        return await _carry_over(desk, pool, timeout)
    except Exception:   # noqa: BLE001 - a background job: logged, never the API's end
        log.exception("the PostgreSQL rate table was not carried over to %s", FX_RATES)
        return 0


async def _carry_over(desk: FxRateDesk, pool: asyncpg.Pool, timeout: float) -> int:
    await asyncio.wait_for(desk.caught_up.wait(), timeout)
    if desk.book.entries:
        return 0
    async with pool.acquire() as connection:
        rows = await connection.fetch("SELECT id, base_currency, quote_currency, mid_rate, spread_basis_points, "
                                      "effective_from, set_by, set_at FROM fx_rates ORDER BY id")
    async with desk.lock:
        for row in rows:
            await desk.publish(change_of_row(row))
    if rows:
        log.info("carried %s rate(s) of the PostgreSQL table over to %s", len(rows), FX_RATES)
    return len(rows)


def change_of_row(row: Mapping[str, Any]) -> fx.FxRatesSet:
    """A row of the old table as the change that set it, under an id derived from the row's."""
    entry = {"base": row["base_currency"], "quote": row["quote_currency"], "mid_rate": str(Decimal(row["mid_rate"])),
             "spread_basis_points": row["spread_basis_points"], "effective_from": row["effective_from"]}
    return fx.FxRatesSet(event_id=str(uuid.uuid5(_TABLE_ROWS, str(row["id"]))), entries=[entry],
                         set_by=row["set_by"], set_at=row["set_at"])
