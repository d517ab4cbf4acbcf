"""The API's read model of standing orders: bank.standing-orders folded in memory (core.standing_orders.Orders).

Each API instance follows the topic from its beginning (like the ledger view), and counts its own writes at once,
so a customer reads their change in the answer to it. A change is a whole new definition with the next version;
two instances changing one order at the same moment would both write the same version, and the first on the
topic wins (the other is ignored by every reader): changes are rare and per customer.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer, ConsumerRecord

from core.standing_orders import Orders, Record
from core.topics import STANDING_ORDERS
from infra.kafka import TopicFollower
from infra.topics import record_types
from schemas.codec import get_codec

log = logging.getLogger(__name__)


class StandingOrderBook:
    def __init__(self, bootstrap: str, producer: AIOKafkaProducer) -> None:
        """`producer`: the process's one producer, started and stopped by its owner (api/main.py)."""
        self._codec = get_codec()
        self._types = record_types(STANDING_ORDERS)
        self.orders = Orders()
        self._follower = TopicFollower(bootstrap, STANDING_ORDERS, self._handle)
        self.caught_up = self._follower.caught_up
        self._producer = producer
        self.lock = asyncio.Lock()   # one change at a time on this instance: versions follow one another

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

    @property
    def failure(self) -> str | None:
        return self._follower.failure

    def _handle(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            try:
                self.orders.apply(self._codec.decode(record.value, record.headers, self._types))
            except ValueError as error:
                log.error("%s/%s/%s: skipped: %s", STANDING_ORDERS, record.partition, record.offset, error)

    async def publish(self, record: Record) -> None:
        value, headers = self._codec.encode(record)
        await self._producer.send_and_wait(STANDING_ORDERS, value, key=record.order_id.encode(), headers=headers)
        self.orders.apply(record)
