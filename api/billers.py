"""The billers directory (PostgreSQL, migrations/0013_billers.sql), kept by staff: who customers pay bills to."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.billers import ReferenceRule

_COLUMNS = "biller_id, name, category, iban, bic, reference_pattern, check_digit, active, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class Biller:
    biller_id: str
    name: str
    category: str
    iban: str                 # compact
    bic: str | None
    reference_pattern: str
    check_digit: str | None
    active: bool
    created_at: datetime
    updated_at: datetime

    @property
    def rule(self) -> ReferenceRule:
        return ReferenceRule(self.reference_pattern, "luhn" if self.check_digit == "luhn" else None)


class BillerExists(Exception):
    """Another biller has this name."""


def _biller(row: asyncpg.Record) -> Biller:
    return Biller(**{key: (str(value) if key == "biller_id" else value) for key, value in dict(row).items()})


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class BillerStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, **fields: Any) -> Biller:
        try:
            row = await self._pool.fetchrow(
                f"""INSERT INTO billers (biller_id, name, category, iban, bic, reference_pattern, check_digit)
                    VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}""",
                uuid.uuid4(), fields["name"], fields["category"], fields["iban"], fields.get("bic"),
                fields["reference_pattern"], fields.get("check_digit"))
        except asyncpg.UniqueViolationError:
            raise BillerExists(fields["name"]) from None
        return _biller(row)

    async def get(self, biller_id: str) -> Biller | None:
        key = _uuid(biller_id)
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM billers WHERE biller_id = $1", key) if key else None
        return _biller(row) if row is not None else None

    async def all(self, active_only: bool) -> list[Biller]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM billers WHERE active OR NOT $1 ORDER BY name",
                                      active_only)
        return [_biller(row) for row in rows]

    async def update(self, biller_id: str, **changes: Any) -> Biller | None:
        """Only the fields given change (None: unchanged)."""
        key = _uuid(biller_id)
        if key is None:
            return None
        names = [name for name, value in changes.items() if value is not None]
        if not names:
            return await self.get(biller_id)
        assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, start=2))
        try:
            row = await self._pool.fetchrow(
                f"UPDATE billers SET {assignments}, updated_at = now() WHERE biller_id = $1 RETURNING {_COLUMNS}",
                key, *(changes[name] for name in names))
        except asyncpg.UniqueViolationError:
            raise BillerExists(str(changes.get("name"))) from None
        return _biller(row) if row is not None else None
