"""A topic of records folded in memory by every API instance: loans (bank.loans), savings interest (bank.interest).

Each instance follows the topic from its beginning into a book (any fold with `apply(record)`), and counts its own
writes at once, so a caller reads their change in the answer to it. Changes on one instance are serialised by
`lock` (a route holds it while it reads the book and publishes); two instances changing one thing at the same
moment are both recorded, every reader folding them in log order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord

from api.problems import Problem
from infra.kafka import TopicFollower
from infra.topics import record_types
from schemas.codec import get_codec

log = logging.getLogger(__name__)


class Fold(Protocol):
    def apply(self, record: Any) -> None: ...


BookT = TypeVar("BookT", bound=Fold)


class RecordDesk(Generic[BookT]):
    def __init__(self, bootstrap: str, producer: AIOKafkaProducer, topic: str, book: BookT,
                 key_of: Callable[[Any], str]) -> None:
        """`producer`: the process's one producer, started and stopped by its owner (api/main.py)."""
        self._topic, self._key_of = topic, key_of
        self._codec = get_codec()
        self._types = record_types(topic)
        self.book = book
        self._follower = TopicFollower(bootstrap, topic, self._handle)
        self.caught_up = self._follower.caught_up
        self._producer = producer
        self.lock = asyncio.Lock()

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
                self.book.apply(self._codec.decode(record.value, record.headers, self._types))
            except ValueError as error:
                log.error("%s/%s/%s: skipped: %s", self._topic, record.partition, record.offset, error)

    async def publish(self, record: Any) -> None:
        value, headers = self._codec.encode(record)
        await self._producer.send_and_wait(self._topic, value, key=self._key_of(record).encode(), headers=headers)
        self.book.apply(record)


def ready(desk: RecordDesk[Any], what: str) -> None:
    """503 until the instance has read the topic (or when it stopped following it): its answers would be stale."""
    if desk.failure is not None or not desk.caught_up.is_set():
        problem = Problem(503, "Starting up", f"the API is still reading the {what}; retry in a moment", "not_ready")
        problem.headers = {"Retry-After": "1"}
        raise problem
