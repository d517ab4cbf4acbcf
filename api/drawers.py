"""Tellers' drawers, the API's side (issue 14 point 4): decides with core/drawers.py and writes the drawer events
onto bank.ledger.events (keyed by `drawer:<staff id>`), then waits until its own ledger view has read them, so the
teller's next cash movement finds the drawer open.

Deciding needs the drawer's state (the ledger view folds drawer events: `LedgerView.drawers`) and, to count or
close, its balance in the books (the whole log folded with core/books.py, as the trial balance does). One decision
at a time per drawer on an instance (a lock); event ids derive from the drawer, its session and the step, so two
instances deciding the same step at once write one event twice, which every reader takes once.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from api.ledger_history import read_ledger_until
from api.ledger_view import LedgerView
from core import books
from core.audit import actor_header
from core.events import Event
from core.topics import LEDGER_EVENTS
from infra.logs import trace_header
from schemas.codec import get_codec


class DrawerDesk:
    def __init__(self, bootstrap: str, producer: AIOKafkaProducer) -> None:
        """`producer`: the process's one producer, started and stopped by its owner (api/main.py)."""
        self._bootstrap = bootstrap
        self._codec = get_codec()
        self._producer = producer
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def book_balance(self, staff_id: str, currency: str) -> int:
        """The drawer's balance in the books now (debits minus credits: the cash it should hold)."""
        now = datetime.now(UTC)
        folded = books.books_as_of(await read_ledger_until(self._bootstrap, now), now)
        return folded.balance(books.drawer(staff_id), currency)

    async def write(self, event: Event, view: LedgerView, timeout_s: float) -> dict[int, int]:
        """Put the event on the ledger log (with the caller and trace, like the ledger's own events) and wait until
        this instance's view has read it. Returns its position."""
        value, headers = self._codec.encode(event)
        meta = await self._producer.send_and_wait(LEDGER_EVENTS, value, key=event.account_id.encode(),
                                                  headers=headers + trace_header() + actor_header())
        position = {meta.partition: meta.offset + 1}
        await view.reach(position, timeout_s)
        return position
