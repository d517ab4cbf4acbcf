"""The allocation of account numbers (PostgreSQL): one per new account, unique across API instances.

The rules (why a serial, why unique by construction) are in core/account_numbers.py; the table and sequence in
migrations/0006_account_numbers.sql.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from core.account_numbers import MAX_SKIPPED_BODIES, AccountNumbering, NumberingError

_EXISTING = "SELECT account_number FROM account_numbers WHERE account_id = $1"
# ON CONFLICT DO NOTHING: a concurrent retry of the same request took the account id first (read it again), or
# the number is taken (draw the next serial). Either way nothing is overwritten.
_CLAIM = """INSERT INTO account_numbers (account_id, account_number, serial) VALUES ($1, $2, $3)
            ON CONFLICT DO NOTHING RETURNING account_number"""


class AccountNumberAllocator:
    def __init__(self, pool: asyncpg.Pool, numbering: AccountNumbering) -> None:
        self._pool = pool
        self.numbering = numbering

    async def allocate(self, account_id: str, taken: Callable[[str], bool]) -> str:
        """The account's number: the one it was given before (a retry), else a new one. `taken`: whether an
        account on the log already has a number (the API's ledger view knows them all): allocation never gives
        one twice, but a number written onto the log by another producer is passed over all the same."""
        async with self._pool.acquire() as conn:
            for _ in range(MAX_SKIPPED_BODIES):
                existing = await conn.fetchval(_EXISTING, account_id)
                if existing is not None:
                    return str(existing)
                serial = int(await conn.fetchval("SELECT nextval('account_number_serial')"))
                number = self.numbering.number_of_serial(serial)
                if number is None or taken(number):   # a body with no check digit in the bank's method, or
                    continue                              # a number someone else put on the log: skip the serial
                claimed = await conn.fetchval(_CLAIM, account_id, number, serial)
                if claimed is not None:
                    return str(claimed)
        raise NumberingError(f"no account number could be allocated for {account_id} in {MAX_SKIPPED_BODIES} draws")
