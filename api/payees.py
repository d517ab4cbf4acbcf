"""Customers' payees (PostgreSQL, migrations/0007_payees.sql): the people and companies they pay, by IBAN.

Every read and change names the customer: another customer's payee is found exactly like no payee at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.payees import Confirmation

_COLUMNS = "payee_id, customer_id, iban, name, nickname, internal, confirmation, added_at, updated_at"


@dataclass(frozen=True, slots=True)
class Payee:
    payee_id: str
    customer_id: str
    iban: str                # compact (no spaces)
    name: str
    nickname: str | None
    internal: bool           # an account of this bank
    confirmation: Confirmation
    added_at: datetime       # business time
    updated_at: datetime


class PayeeExists(Exception):
    """The customer has a payee with this IBAN already."""


def _payee(row: asyncpg.Record) -> Payee:
    return Payee(**{key: (str(value) if key == "payee_id" else value) for key, value in dict(row).items()})


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None   # no payee has such an id: the caller answers 404 as for any unknown one


class PayeeStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, *, customer_id: str, iban: str, name: str, nickname: str | None, internal: bool,
                  confirmation: Confirmation, added_at: datetime) -> Payee:
        row = await self._pool.fetchrow(
            f"""INSERT INTO payees (payee_id, customer_id, iban, name, nickname, internal, confirmation, added_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (customer_id, iban) DO NOTHING
                RETURNING {_COLUMNS}""",
            uuid.uuid4(), customer_id, iban, name, nickname, internal, confirmation, added_at)
        if row is None:
            raise PayeeExists(iban)
        return _payee(row)

    async def of_customer(self, customer_id: str) -> list[Payee]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM payees WHERE customer_id = $1 "
                                      f"ORDER BY added_at, payee_id", customer_id)
        return [_payee(row) for row in rows]

    async def get(self, payee_id: str, customer_id: str | None = None) -> Payee | None:
        """The payee; with `customer_id`, only if it is that customer's."""
        key = _uuid(payee_id)
        if key is None:
            return None
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM payees WHERE payee_id = $1", key)
        payee = _payee(row) if row is not None else None
        if payee is None or (customer_id is not None and payee.customer_id != customer_id):
            return None
        return payee

    async def rename(self, payee_id: str, customer_id: str, name: str, nickname: str | None,
                     confirmation: Confirmation) -> Payee | None:
        row = await self._pool.fetchrow(
            f"""UPDATE payees SET name = $3, nickname = $4, confirmation = $5, updated_at = now()
                WHERE payee_id = $1 AND customer_id = $2 RETURNING {_COLUMNS}""",
            _uuid(payee_id), customer_id, name, nickname, confirmation)
        return _payee(row) if row is not None else None

    async def remove(self, payee_id: str, customer_id: str) -> bool:
        key = _uuid(payee_id)
        if key is None:
            return False
        deleted: Any = await self._pool.fetchval(
            "DELETE FROM payees WHERE payee_id = $1 AND customer_id = $2 RETURNING payee_id", key, customer_id)
        return deleted is not None

    async def holder_name(self, customer_id: str) -> str | None:
        """The name on file of a customer (the users table): the name confirmation of payee compares with."""
        name = await self._pool.fetchval("SELECT name FROM users WHERE customer_id = $1", customer_id)
        return str(name) if name is not None else None
