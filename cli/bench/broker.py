"""The raw broker baseline: plain aiokafka produce and consume, the limit a Kafka-native system can approach."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from infra.producer import create_producer
from infra.kafka import create_admin_client, create_consumer, seek_to_beginning


async def raw_broker(bootstrap: str, records: int, size: int, partitions: int,
                     progress: Any = None) -> dict[str, Any]:
    """Produce `records` records of `size` bytes (keyed, idempotent, acks=all: what the platform's producers
    do) onto a scratch topic with `partitions` partitions, then consume them all; records/s of each."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = create_admin_client(bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    task = progress.add_task("raw broker: produce", total=records) if progress else None
    producer = create_producer(bootstrap, linger_ms=5, max_batch_size=1024 * 1024)
    await producer.start()
    value = os.urandom(size)
    keys = [uuid.uuid4().hex.encode() for _ in range(10_000)]
    started = time.monotonic()
    try:
        futures = []
        for n in range(records):
            futures.append(await producer.send(topic, value, key=keys[n % len(keys)]))
            if task is not None and n % 5000 == 0:
                progress.update(task, completed=n)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    produced_s = time.monotonic() - started
    if task is not None:
        progress.update(task, completed=records, description="raw broker: consume")
        progress.reset(task, total=records)
    consumed_s = await _consume_all(bootstrap, topic, records, progress, task)
    return {"records": records, "record_bytes": size, "partitions": partitions,
            "produce_per_s": round(records / produced_s), "consume_per_s": round(records / consumed_s)}


async def _consume_all(bootstrap: str, topic: str, records: int, progress: Any, task: Any) -> float:
    consumer = create_consumer(bootstrap=bootstrap, group_id=None, enable_auto_commit=False,
                               max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await seek_to_beginning(consumer, tps)
        seen = 0
        started = time.monotonic()
        while seen < records:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                seen += len(batch)
            if task is not None:
                progress.update(task, completed=seen)
        return time.monotonic() - started
    finally:
        await consumer.stop()


async def wait_for_quiet(bootstrap: str, topics: list[str], still_s: float = 2.0, timeout: float = 300.0) -> float:
    """Wait until none of `topics` has grown for `still_s` seconds (the platform has worked off its backlog), at
    most `timeout`; returns the seconds waited. Between measurements, so one does not pay for the last one's queue."""
    consumer = create_consumer(bootstrap=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    started = time.monotonic()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        last, since = None, time.monotonic()
        while time.monotonic() - since < still_s and time.monotonic() - started < timeout:
            ends = await consumer.end_offsets(tps)
            if ends != last:
                last, since = ends, time.monotonic()
            await asyncio.sleep(0.25)
    finally:
        await consumer.stop()
    return round(time.monotonic() - started, 1)
