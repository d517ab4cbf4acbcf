"""The offset guard puts back messages a consumer skipped, read from the real topic."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.gaps import LazyReader, OffsetGuard


async def _topic_with_records(bootstrap: str, count: int) -> tuple[str, list]:
    topic = f"guard-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for i in range(count):
        await producer.send_and_wait(topic, f"m{i}".encode(), partition=0)
    await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    records: list = []
    while len(records) < count:
        for batch in (await consumer.getmany(timeout_ms=1000)).values():
            records += batch
    await consumer.stop()
    return topic, records


def test_guard_fills_holes_and_a_late_start(kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        topic, records = await _topic_with_records(kafka_bootstrap, 10)
        reader = LazyReader(kafka_bootstrap, "read_committed")
        stored = {0: 2}  # the agent's table says offset 2 is next
        guard = OffsetGuard(topic, stored.get, reader)
        try:
            # The consumer delivered 5, 6 and 9: 2-4 were skipped at the start, 7-8 in the middle.
            completed = await guard.complete([records[5], records[6], records[9]])
            assert [m.offset for m in completed] == list(range(2, 10))
            assert [m.value for m in completed] == [f"m{i}".encode() for i in range(2, 10)]
            assert guard.advance(completed) == {0: 10}
            # Nothing to do for an empty batch, nor for a contiguous one from the expected offset.
            assert await guard.complete([]) == []
            guard.expected[0] = 3
            assert await guard.complete(records[3:5]) == records[3:5]
        finally:
            await reader.close()

    asyncio.run(scenario())


def test_guard_reads_a_partition_nobody_handled_from_its_start(kafka_bootstrap: str) -> None:
    """Offset 0 dropped while a fresh partition moved between workers: no stored offset, still re-read."""
    async def scenario() -> None:
        topic, records = await _topic_with_records(kafka_bootstrap, 4)
        reader = LazyReader(kafka_bootstrap, "read_committed")
        guard = OffsetGuard(topic, {}.get, reader)
        try:
            completed = await guard.complete([records[1], records[2]])
            assert [m.offset for m in completed] == [0, 1, 2]
        finally:
            await reader.close()

    asyncio.run(scenario())
