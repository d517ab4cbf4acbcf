"""A plain idempotent producer for messages that must not wait on a Faust transaction.

Under exactly_once, Faust sends each message inside the transaction of its *destination* partition
number, committed only when that partition next commits consumed offsets. A saga step sent to a quiet
partition would stay invisible to read_committed readers until something else arrived there, and a
dead letter (a topic no agent consumes) has no transaction at all. Both are safe at-least-once: a
saga step has a deterministic command id the ledger deduplicates, and a dead letter is a copy for
operators. The caller awaits delivery before its source offsets are committed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from infra.producer import create_producer
from streams.app import at_shutdown, settings

_producer: AIOKafkaProducer | None = None
_lock = asyncio.Lock()


async def _get() -> AIOKafkaProducer:
    global _producer
    async with _lock:
        if _producer is None:
            producer = create_producer(settings.kafka, linger_ms=2)
            await producer.start()
            _producer = producer
    return _producer


async def send(topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]],
               partition: int | None = None) -> Any:
    """Returns the delivery future; await it before the source message's offset may be committed."""
    producer = await _get()
    return await producer.send(topic, value, key=key, headers=headers, partition=partition)


_snapshots_in_flight: set[asyncio.Future[Any]] = set()


async def send_all(records: list[tuple[str, int, bytes, bytes | None]]) -> None:
    """Send table changelog records (topic, partition, key, value), and wait until the broker has every one sent
    so far (an agent's records may have been sent by another agent's call): streams/tables.py `flush`."""
    if records:
        producer = await _get()
        for topic, partition, key, value in records:
            future = await producer.send(topic, value, key=key, partition=partition)
            _snapshots_in_flight.add(future)
            future.add_done_callback(_snapshots_in_flight.discard)
    if _snapshots_in_flight:
        await asyncio.gather(*list(_snapshots_in_flight))


@at_shutdown
async def _stop() -> None:
    if _producer is not None:
        await _producer.stop()
