"""A process's business time: real time, or (BANK_CLOCK_CONTROL) real time plus the offset on bank.clock.

Every process that decides by business time (the API for commands' issued_at, the standing-order scheduler)
builds one `BusinessTime` from its settings and reads `now()` from it. With the setting on, each process follows
the compacted clock topic from its beginning with its own group-less consumer, so they all read the same
business time whoever moved it; `start()` returns once the topic has been read to its end, so a process never
starts on a business time older than the live one. With the setting off (production) the topic is not even read:
a record someone wrote there cannot move a production clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer, ConsumerRecord

from core.clock import CLOCK_KEY, Clock, ClockSet, ControlledClock, SystemClock
from core.topics import CLOCK
from infra.kafka import TopicFollower
from infra.producer import create_producer
from infra.records import Headers
from infra.topics import record_types

log = logging.getLogger(__name__)


class RecordCodec(Protocol):
    """What the clock needs of the platform's codec (schemas/codec.py `get_codec()`, which callers pass in)."""

    def encode(self, record: Any) -> tuple[bytes, list[tuple[str, bytes]]]: ...
    def decode(self, value: bytes | None, headers: Headers, expected: Collection[str] | None = None) -> Any: ...


class ClockControlOff(RuntimeError):
    """Business time is real time here (BANK_CLOCK_CONTROL is off): nobody may move it."""


class BusinessTime:
    def __init__(self, bootstrap: str, controlled: bool, codec: RecordCodec) -> None:
        self._bootstrap = bootstrap
        self.controlled = controlled
        self._controlled = ControlledClock() if controlled else None
        self.clock: Clock = self._controlled if self._controlled is not None else SystemClock()
        self._follower = TopicFollower(bootstrap, CLOCK, self._observe) if controlled else None
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._codec = codec

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def controlled_clock(self) -> ControlledClock:
        if self._controlled is None:
            raise ClockControlOff("BANK_CLOCK_CONTROL is off: business time is real time")
        return self._controlled

    @property
    def failure(self) -> str | None:
        """Why business time no longer follows the clock topic, if it stopped (then it would stand still)."""
        return self._follower.failure if self._follower is not None else None

    async def start(self, timeout_s: float = 60.0) -> None:
        if self._follower is None:
            return
        await self._follower.start()
        await asyncio.wait_for(self._follower.caught_up.wait(), timeout_s)

    async def stop(self) -> None:
        if self._follower is not None:
            await self._follower.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, move: ClockSet) -> None:
        """Put a move on the clock topic for every process, and count it here at once (read your own write)."""
        clock = self.controlled_clock
        producer = await self._started_producer()
        value, headers = self._codec.encode(move)
        await producer.send_and_wait(CLOCK, value, key=CLOCK_KEY.encode(), headers=headers)
        clock.observe(move)

    async def _started_producer(self) -> AIOKafkaProducer:
        async with self._producer_lock:   # staff move the clock rarely: the producer starts on the first move
            if self._producer is None:
                producer = create_producer(self._bootstrap, linger_ms=1)
                await producer.start()
                self._producer = producer
            return self._producer

    def _observe(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        clock = self.controlled_clock
        for record in records:
            try:
                move = self._codec.decode(record.value, record.headers, record_types(CLOCK))
            except ValueError as error:   # the codec's DecodeError
                log.error("%s/%s/%s: not a clock move, ignored: %s", CLOCK, record.partition, record.offset, error)
                continue
            if isinstance(move, ClockSet):
                clock.observe(move)
