"""infra.kafka against the real broker: the follower's caught-up signal and start at the end, the reader's ranges,
end offsets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from core.topics import LEDGER_EVENTS
from infra.kafka import (TopicFollower, TopicMissing, end_offsets, group_less_consumer, partitions_of, read_topic,
                         seek_to_beginning, stop_consumer)
from infra.producer import create_producer

PARTITIONS = 3


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=120))


async def scratch_topic(bootstrap: str) -> str:
    name = f"test-infra-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
        assert all(error[1] == 0 for error in response.topic_errors), response
    finally:
        await admin.close()
    return name


async def produce(bootstrap: str, topic: str, values: list[str]) -> None:
    """One acknowledged record per value, spread over the partitions in turn."""
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        for n, value in enumerate(values):
            await producer.send_and_wait(topic, value.encode(), partition=n % PARTITIONS)
    finally:
        await producer.stop()


class Seen:
    """A slow handler: a batch takes a while, so a caught-up signal sent before the handler finished shows."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.at_caught_up: list[str] | None = None

    async def handle(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        await asyncio.sleep(0.05)
        self.values += [record.value.decode() for record in records if record.value is not None]

    def caught_up(self) -> None:
        self.at_caught_up = list(self.values)


async def until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


def test_a_follower_from_the_beginning_is_caught_up_once_it_has_handled_what_was_there(kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        topic = await scratch_topic(kafka_bootstrap)
        before = [f"before-{n}" for n in range(60)]
        await produce(kafka_bootstrap, topic, before)
        seen = Seen()
        follower = TopicFollower(kafka_bootstrap, topic, seen.handle, max_records=7, on_caught_up=seen.caught_up)
        assert not follower.caught_up.is_set()
        await follower.start()
        try:
            await asyncio.wait_for(follower.caught_up.wait(), 30)
            assert sorted(seen.at_caught_up or []) == sorted(before)   # every record, handled, at the signal
            assert follower.start_ends == {p: 20 for p in range(PARTITIONS)}
            after = [f"after-{n}" for n in range(9)]
            await produce(kafka_bootstrap, topic, after)
            await until(lambda: len(seen.values) == len(before) + len(after))
            assert sorted(seen.values) == sorted(before + after)
            await until(lambda: follower.positions == {p: 23 for p in range(PARTITIONS)})
            assert await follower.end_offsets() == {p: 23 for p in range(PARTITIONS)}
        finally:
            await follower.stop()

    run(scenario)


def test_a_follower_is_caught_up_over_a_tail_of_transaction_markers(kafka_bootstrap: str) -> None:
    """Under exactly_once every batch of an agent ends its partitions with a commit marker, which gives a poll no
    record (tests/integration/test_broker_contract.py): the follower still reaches the ends, committed records
    handled, aborted ones not."""
    async def scenario() -> None:
        topic = await scratch_topic(kafka_bootstrap)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"follower-{uuid.uuid4()}")
        await producer.start()
        try:
            for values, commit in ((["a", "b"], True), (["c"], False), (["d"], True)):
                await producer.begin_transaction()
                for value in values:
                    await producer.send_and_wait(topic, value.encode(), partition=0)
                await (producer.commit_transaction() if commit else producer.abort_transaction())
        finally:
            await producer.stop()
        seen = Seen()
        follower = TopicFollower(kafka_bootstrap, topic, seen.handle)
        await follower.start()
        try:
            await asyncio.wait_for(follower.caught_up.wait(), 30)
            assert sorted(seen.values) == ["a", "b", "d"]
            assert follower.positions[0] == follower.start_ends[0] > 4   # past the markers
        finally:
            await follower.stop()

    run(scenario)


def test_a_follower_from_the_end_is_caught_up_at_once_and_sees_only_what_comes_next(kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        topic = await scratch_topic(kafka_bootstrap)
        await produce(kafka_bootstrap, topic, [f"old-{n}" for n in range(30)])
        seen = Seen()
        follower = TopicFollower(kafka_bootstrap, topic, seen.handle, start="end")
        await follower.start()
        try:
            await asyncio.wait_for(follower.caught_up.wait(), 5)
            assert follower.positions == {p: 10 for p in range(PARTITIONS)}
            new = [f"new-{n}" for n in range(6)]
            await produce(kafka_bootstrap, topic, new)
            await until(lambda: len(seen.values) >= len(new))
            await asyncio.sleep(1)   # nothing older arrives late
            assert sorted(seen.values) == sorted(new)
        finally:
            await follower.stop()

    run(scenario)


def test_an_empty_topic_is_caught_up_at_once_and_a_missing_one_is_named(kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        topic = await scratch_topic(kafka_bootstrap)
        follower = TopicFollower(kafka_bootstrap, topic, lambda records: None)
        await follower.start()
        try:
            await asyncio.wait_for(follower.caught_up.wait(), 5)
        finally:
            await follower.stop()
        missing = TopicFollower(kafka_bootstrap, f"no-such-topic-{uuid.uuid4().hex[:8]}", lambda records: None)
        with pytest.raises(TopicMissing, match="does not exist"):
            await missing.start()
        with pytest.raises(TopicMissing):
            await read_topic(kafka_bootstrap, missing.topic)

    run(scenario)


def test_the_reader_reads_a_whole_topic_or_a_range(kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        topic = await scratch_topic(kafka_bootstrap)
        values = [f"v{n}" for n in range(30)]   # partition p holds v{p}, v{p+3}, ... at offsets 0..9
        await produce(kafka_bootstrap, topic, values)
        progress: list[tuple[int, int]] = []
        whole = await read_topic(kafka_bootstrap, topic, progress=lambda done, total: progress.append((done, total)))
        assert sorted(r.value for r in whole.records) == sorted(v.encode() for v in values)
        assert whole.starts == {p: 0 for p in range(PARTITIONS)} and whole.ends == {p: 10 for p in range(PARTITIONS)}
        assert progress[-1] == (30, 30)
        for partition in range(PARTITIONS):   # per-partition order
            assert [r.offset for r in whole.records if r.partition == partition] == list(range(10))

        part = await read_topic(kafka_bootstrap, topic, starts={1: 2}, ends={1: 5})
        assert [(r.partition, r.offset, r.value) for r in part.records] == [
            (1, offset, f"v{1 + 3 * offset}".encode()) for offset in (2, 3, 4)]

    run(scenario)


def test_end_offsets_cover_every_partition_of_existing_topics(kafka_bootstrap: str, topics_applied: Any) -> None:
    async def scenario() -> None:
        topic = await scratch_topic(kafka_bootstrap)
        await produce(kafka_bootstrap, topic, [f"v{n}" for n in range(4)])
        ends = await end_offsets(kafka_bootstrap, [topic, LEDGER_EVENTS, f"no-such-topic-{uuid.uuid4().hex[:8]}"])
        assert {(tp.partition, end) for tp, end in ends.items() if tp.topic == topic} == {(0, 2), (1, 1), (2, 1)}
        assert {tp.topic for tp in ends} == {topic, LEDGER_EVENTS}   # the missing topic has no entries
        assert len([tp for tp in ends if tp.topic == LEDGER_EVENTS]) >= 1

    run(scenario)


def test_seek_to_beginning_right_after_assign_never_lands_at_the_end(kafka_bootstrap: str) -> None:
    """aiokafka's own seek_to_beginning, made while the fetcher's default ("latest") reset is in flight, can land at
    the end (an API restarted under `bank chaos` began with an empty ledger view). infra.kafka.seek_to_beginning
    seeks explicitly: over many fresh consumers, every one starts at the first offset."""
    async def scenario() -> None:
        topic = await scratch_topic(kafka_bootstrap)
        await produce(kafka_bootstrap, topic, [f"v{n}" for n in range(6)])
        starts = []
        for _ in range(40):
            consumer = group_less_consumer(kafka_bootstrap)
            await consumer.start()
            try:
                partitions = partitions_of(consumer, topic)
                consumer.assign(partitions)
                await consumer.end_offsets(partitions)    # what TopicFollower does between the two: a chance to race
                await seek_to_beginning(consumer, partitions)
                starts.append(tuple([await consumer.position(tp) for tp in partitions]))
            finally:
                await stop_consumer(consumer)
        assert set(starts) == {(0, 0, 0)}, starts

    run(scenario)
