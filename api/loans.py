"""The API's read model of loans: bank.loans folded in memory (core.lending.LoanBook), like the standing orders.

Each API instance follows the topic from its beginning and counts its own writes at once, so a customer or a
reviewer reads their change in the answer to it. The money side (disbursements, repayments) is the ledger view's
(`LedgerView.loan_postings`). Decisions on one application are serialised on this instance by `lock`; two
instances deciding one application at the same moment would both be recorded, the fold reading them in log order.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer, ConsumerRecord

from core.lending import LoanBook, LoanProductSet, Record
from core.topics import LOANS
from infra.kafka import TopicFollower
from infra.producer import create_producer
from infra.topics import record_types
from schemas.codec import get_codec

log = logging.getLogger(__name__)


class LoanDesk:
    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._codec = get_codec()
        self._types = record_types(LOANS)
        self.book = LoanBook()
        self._follower = TopicFollower(bootstrap, LOANS, self._handle)
        self.caught_up = self._follower.caught_up
        self._producer: AIOKafkaProducer | None = None
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        self._producer = create_producer(self._bootstrap, linger_ms=1)
        await self._producer.start()
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()
        if self._producer is not None:
            await self._producer.stop()

    @property
    def failure(self) -> str | None:
        return self._follower.failure

    def _handle(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            try:
                self.book.apply(self._codec.decode(record.value, record.headers, self._types))
            except ValueError as error:
                log.error("%s/%s/%s: skipped: %s", LOANS, record.partition, record.offset, error)

    async def publish(self, record: Record) -> None:
        assert self._producer is not None, "started in the app's lifespan"
        value, headers = self._codec.encode(record)
        key = record.product_id if isinstance(record, LoanProductSet) else record.loan_id
        await self._producer.send_and_wait(LOANS, value, key=key.encode(), headers=headers)
        self.book.apply(record)
