"""The workers' consumer (streams/consumer.py) on a real broker: a partition its group has never committed starts
where Faust's group (the app id, which read these topics before) left it, and handled offsets are committed as far
as the agent's changelogs reflect them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from core.settings import Settings
from streams import consumer as consumer_module
from streams.consumer import WorkerConsumer, committed_offsets
from tests.integration.test_broker_contract import create_topic, produce_counts


class RecordingAgent:
    """An agent that keeps no state: every batch it handles is reflected at once (as after a per-batch snapshot)."""

    name = "recording"

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.handled: list[Any] = []
        self.saved_offsets: dict[int, int] = {}

    async def handle_with_retry(self, records: list[Any]) -> None:
        self.handled += records
        for record in records:
            self.saved_offsets[record.partition] = record.offset + 1

    async def assigned(self, partitions: set[int]) -> None:
        pass

    async def revoked(self, partitions: set[int]) -> None:
        pass

    async def snapshot_when_idle(self) -> None:
        pass


async def _commit_as(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    consumer.assign(list(offsets))
    try:
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
    finally:
        await consumer.stop()


def test_a_new_group_starts_where_fausts_group_left_off(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, app_id=f"app-{uuid.uuid4().hex[:8]}", worker_id="ledger-1",
                        commit_interval=0)
    monkeypatch.setattr(consumer_module, "settings", settings)

    async def scenario() -> None:
        topic = await create_topic(kafka_bootstrap, 2)
        await produce_counts(kafka_bootstrap, topic, {0: 10, 1: 10})
        await _commit_as(kafka_bootstrap, settings.app_id, {TopicPartition(topic, 0): 7})   # Faust's group
        agent = RecordingAgent(topic)
        worker = WorkerConsumer(batch_max=100)
        worker.add(agent)   # type: ignore[arg-type]
        await worker.start()
        try:
            for _ in range(100):
                if len(agent.handled) >= 13:
                    break
                await asyncio.sleep(0.1)
        finally:
            await worker.stop()
        by_partition = {p: [r.offset for r in agent.handled if r.partition == p] for p in (0, 1)}
        assert by_partition == {0: [7, 8, 9], 1: list(range(10))}   # partition 1: Faust's group had nothing
        committed = await committed_offsets(kafka_bootstrap, settings.worker_group)
        assert committed == {TopicPartition(topic, 0): 10, TopicPartition(topic, 1): 10}

    asyncio.run(scenario())
