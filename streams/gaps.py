"""A guard against messages a consumer skipped: each agent keeps its own next offset per partition.

faust-streaming 0.15.3 has a race at the end of table recovery: records fetched between resuming the
stream partitions and seeking them to the committed offsets are dropped, and the recorded offset gap
lets the commit move past them (seen after a worker SIGKILL under load). An agent that trusted Faust's
offsets alone would lose those commands. So each agent records, in its own table, the next offset it
expects per partition; a batch that starts beyond it, or has a hole, is completed by re-reading the
range from the topic. Re-reading is harmless: commands and saga steps are deduplicated by id.

The batch engine now consumes its topics itself (streams/consumer.py), outside that race; the guard stays as a
check on any consumer's offsets (a record skipped is a command lost), at the cost of one position per partition
and snapshot in the commands table.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.kafka import TailPoll, group_less_consumer

log = logging.getLogger(__name__)


class OffsetGuard:
    def __init__(self, topic: str, stored: Callable[[int], int | None],
                 reader: Callable[[], Any]) -> None:
        self.topic = topic
        self._stored = stored          # partition -> next offset from the agent's table, or None
        self._reader = reader          # async () -> started AIOKafkaConsumer (group-less)
        self.expected: dict[int, int] = {}

    def forget(self) -> None:
        """After a rebalance the table (restored from its changelog) knows better than memory."""
        self.expected.clear()

    async def complete(self, messages: Sequence[Any]) -> list[Any]:
        """The batch's messages with every skipped one of their partitions put back, in offset order."""
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for message in messages:
            by_partition[message.partition].append(message)
        complete: list[Any] = []
        for partition, received in by_partition.items():
            expected = self.expected.get(partition, self._stored(partition))
            if expected is None:
                # Nobody ever handled this partition: its first records can be the dropped ones too (seen by
                # `bank chaos`: a partition's offset 0, produced while it moved to a second worker at start-up).
                expected = await self._log_start(partition)
            offsets = [m.offset for m in received]
            start = min(expected, min(offsets))
            if len(set(offsets)) == max(offsets) - start + 1:
                complete += sorted(received, key=lambda m: m.offset)
                continue
            log.warning("%s/%s: offsets %s..%s arrived with gaps (expected from %s); re-reading the range",
                        self.topic, partition, min(offsets), max(offsets), expected)
            complete += await self._read(partition, start, max(offsets) + 1)
        return complete

    def advance(self, messages: Iterable[Any]) -> dict[int, int]:
        """Next expected offset per partition after these messages were handled."""
        for message in messages:
            self.expected[message.partition] = max(self.expected.get(message.partition, 0), message.offset + 1)
        return dict(self.expected)

    async def _log_start(self, partition: int) -> int:
        reader: AIOKafkaConsumer = await self._reader()
        tp = TopicPartition(self.topic, partition)
        return int((await reader.beginning_offsets([tp]))[tp])

    async def _read(self, partition: int, start: int, end: int) -> list[Any]:
        reader: AIOKafkaConsumer = await self._reader()
        tp = TopicPartition(self.topic, partition)
        reader.assign([tp])
        reader.seek(tp, start)
        records: list[Any] = []
        poll = TailPoll()
        while await reader.position(tp) < end:
            batch = await poll(reader, [tp])
            records += [r for r in batch.get(tp, []) if r.offset < end]
        return records


class LazyReader:
    """A group-less consumer, started on first use; one per agent (assign() is not shareable)."""

    def __init__(self, bootstrap: str, isolation_level: str) -> None:
        self._bootstrap, self._isolation = bootstrap, isolation_level
        self._consumer: AIOKafkaConsumer | None = None

    async def __call__(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = group_less_consumer(self._bootstrap, isolation_level=self._isolation)
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
