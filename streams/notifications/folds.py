"""What the notifier must know beyond one record: whose a standing order or a loan is, where an application
stands, and what each loan owes. Folded in memory from the beginning of bank.standing-orders, bank.loans and (for
the loans' disbursements and repayments) bank.ledger.events at every start, like the scheduler's; no group.

The agent reads those topics with its own consumer group and may be ahead of these folds: before it handles a
record of bank.standing-orders or bank.loans it waits until the fold has read that far (`reached`), and a loan
decision is judged on the loan as it stood just after it (core.notifications.loan_as_of), whatever came later.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import ConsumerRecord

from core.lending import LOAN_POSTING_NAMES, LoanBook, LoanPostings, LoanState
from core.notifications import loan_as_of
from core.standing_orders import Orders
from core.topics import LEDGER_EVENTS, LOANS, STANDING_ORDERS
from infra.kafka import TopicFollower
from infra.topics import record_types
from schemas.codec import get_codec

log = logging.getLogger(__name__)

REACH_TIMEOUT_S = 120.0


class Folds:
    def __init__(self, bootstrap: str) -> None:
        self._codec = get_codec()
        self.orders = Orders()
        self.book = LoanBook()
        self.postings = LoanPostings()
        self.loan_positions: dict[str, int] = {}   # bank.loans event id -> its offset (a loan's records share a key)
        self.version = 0                             # one more per record folded: the reminders look again then
        self._followers = {
            STANDING_ORDERS: TopicFollower(bootstrap, STANDING_ORDERS, self._take(STANDING_ORDERS, self.orders.apply)),
            LOANS: TopicFollower(bootstrap, LOANS, self._take(LOANS, self._loan)),
            LEDGER_EVENTS: TopicFollower(bootstrap, LEDGER_EVENTS, self._take(LEDGER_EVENTS, self.postings.apply)),
        }

    async def start(self) -> None:
        for follower in self._followers.values():
            await follower.start()

    async def stop(self) -> None:
        for follower in self._followers.values():
            await follower.stop()

    @property
    def caught_up(self) -> bool:
        return all(follower.caught_up.is_set() for follower in self._followers.values())

    def _take(self, topic: str, fold: Any) -> Any:
        types = record_types(topic)

        def handle(records: list[ConsumerRecord[bytes, bytes]]) -> None:
            for record in records:
                name = self._codec.schema_name(record.value, record.headers)
                if topic == LEDGER_EVENTS and name not in LOAN_POSTING_NAMES:
                    continue   # only the loans' postings matter here: the rest is not decoded
                try:
                    value = self._codec.decode(record.value, record.headers, types)
                except ValueError as error:
                    if topic != LEDGER_EVENTS:   # the ledger's own readers report its records
                        log.error("notifier folds: skipped %s/%s/%s: %s", topic, record.partition, record.offset,
                                  error)
                    continue
                if topic == LOANS:
                    self.loan_positions.setdefault(value.event_id, record.offset)
                fold(value)
                self.version += 1

        return handle

    def _loan(self, record: Any) -> None:
        self.book.apply(record)

    async def reached(self, topic: str, partition: int, offset: int) -> None:
        """Wait until the fold of `topic` has read past `offset` on `partition` (the record the agent handles)."""
        follower = self._followers[topic]
        deadline = asyncio.get_running_loop().time() + REACH_TIMEOUT_S
        while follower.positions.get(partition, 0) <= offset:
            if follower.failure is not None:
                raise RuntimeError(follower.failure)
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the notifier's fold of {topic} did not reach offset {offset} of partition "
                                   f"{partition}")
            await asyncio.sleep(0.01)

    def loan(self, loan_id: str, event_id: str) -> LoanState | None:
        """The loan just after its record `event_id` (None: not one the log applied for)."""
        state = self.book.loans.get(loan_id)
        if state is None or event_id not in self.loan_positions:
            return None
        return loan_as_of(state, self.loan_positions, event_id)
