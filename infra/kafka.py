"""Reading topics: a group-less consumer, end offsets, a reader of a whole topic (or a range of it) and a follower;
and the factories of every consumer and admin client, which add the process's Kafka security settings
(infra/kafka_security.py; producers: infra/producer.py).

Readers here never join a consumer group: nothing is committed and nothing is left to clean up, so any number of
them can read the same topic. They read committed data only unless told otherwise: after exactly_once traffic
a log also holds aborted records and transaction markers. Progress is measured by the consumer's position,
never by the offset of the last record seen, since markers and compaction leave gaps in the offsets.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from infra.kafka_security import client_options

log = logging.getLogger(__name__)

IsolationLevel = Literal["read_committed", "read_uncommitted"]
Progress = Callable[[int, int], None]   # (offsets read so far, offsets to read in all)
Sink = Callable[[list[ConsumerRecord[bytes, bytes]]], None]   # takes the records of one fetch
Positions = dict[int, int]              # partition -> offset
FETCH_BYTES = 8 * 1024 * 1024           # per partition and fetch: readers of whole topics want big fetches
TAIL_POLL_MS = 1           # see TailPoll
IDLE_TAIL_POLL_MS = 500


class TailPoll:
    """The polls of a read up to known end offsets. A tail that ends in a transaction marker (every transactional
    producer's, so under exactly_once every batch's) gives no record, yet a poll moves the position past it, and
    aiokafka's getmany waits out its whole timeout for a record all the same (tests/integration/
    test_broker_contract.py): one second a partition made each exactly_once batch of the ledger wait 1 to 6 s. So a
    poll waits TAIL_POLL_MS while the read moves (records already fetched come back at once whatever the timeout),
    and twice as long after each poll that moved nothing, up to IDLE_TAIL_POLL_MS: a broker out of reach is asked a
    couple of times a second, not spun on."""

    def __init__(self) -> None:
        self.timeout_ms = TAIL_POLL_MS
        self._positions: list[int] | None = None

    async def __call__(self, consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition],
                       max_records: int | None = None) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        positions = [await consumer.position(tp) for tp in partitions]
        moved = positions != self._positions
        self.timeout_ms = TAIL_POLL_MS if moved else min(self.timeout_ms * 2, IDLE_TAIL_POLL_MS)
        self._positions = positions
        fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = await consumer.getmany(
            *partitions, timeout_ms=self.timeout_ms, max_records=max_records)
        return fetched


class TopicMissing(RuntimeError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic} does not exist; run `bank topics apply`")
        self.topic = topic


def create_consumer(*topics: str, bootstrap: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer (not started) with the process's Kafka security settings; `topics` and `options` are
    AIOKafkaConsumer's."""
    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, **(client_options() | options))


def create_admin_client(bootstrap: str, **options: Any) -> AIOKafkaAdminClient:
    """An admin client (not started) with the process's Kafka security settings; `options` are
    AIOKafkaAdminClient's."""
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_options() | options))


def group_less_consumer(bootstrap: str, *, isolation_level: IsolationLevel = "read_committed",
                        **options: Any) -> AIOKafkaConsumer:
    """A consumer that belongs to no group and commits nothing (not started): the caller assigns partitions."""
    return create_consumer(bootstrap=bootstrap, group_id=None, enable_auto_commit=False,
                           isolation_level=isolation_level, **options)


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer, even one stopped right after it started."""
    # aiokafka's group-less coordinator starts a task at start(); cancelled before its first step (no await in
    # between), stop() raises that task's CancelledError. One turn of the loop lets it start.
    await asyncio.sleep(0)
    await consumer.stop()


async def seek_to_beginning(consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> None:
    """Position assigned partitions at their first offsets, for sure.

    Not aiokafka's `seek_to_beginning`: right after `assign()` the fetcher already asks the broker for the default
    reset offsets (auto_offset_reset, "latest" unless told), and aiokafka 0.14 applies that answer to any partition
    still awaiting a reset, whichever strategy it now awaits: a `seek_to_beginning` made while the "latest" request
    is in flight lands at the END. A view folded from the log then starts empty and calls itself caught up (an API
    restarted under `bank chaos` answered 404 for every account). An explicit `seek` to the offsets asked for here
    leaves no reset pending, so a late answer changes nothing."""
    partitions = list(partitions)
    for tp, offset in (await consumer.beginning_offsets(partitions)).items():
        consumer.seek(tp, offset)


async def seek_to_end(consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> None:
    """Position assigned partitions at their end offsets, by an explicit `seek` (see `seek_to_beginning`)."""
    partitions = list(partitions)
    for tp, offset in (await consumer.end_offsets(partitions)).items():
        consumer.seek(tp, offset)


def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, in order, from a started consumer's metadata (TopicMissing if none)."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise TopicMissing(topic)
    return [TopicPartition(topic, partition) for partition in sorted(partitions)]


@functools.lru_cache(maxsize=1 << 18)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner sends a keyed record to among `partitions` (murmur2, the same in
    aiokafka's producers and the Java client's). Remembered: keys repeat (an account's, a customer's), and
    aiokafka's murmur2 is pure Python: with every send hashing its key again, about 4 % of a busy worker."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def default_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's DefaultPartitioner, with the keyed partition remembered (`partition_for`): the producers' own."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[partition_for(key, len(all_partitions))]


async def end_offsets(bootstrap: str, topics: Iterable[str],
                      isolation_level: IsolationLevel = "read_committed") -> dict[TopicPartition, int]:
    """The end offset of every partition of `topics` (the last stable offset under read_committed); a topic
    that does not exist has no entries."""
    consumer = group_less_consumer(bootstrap, isolation_level=isolation_level)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, partition) for topic in topics
                      for partition in sorted(consumer.partitions_for_topic(topic) or ())]
        return dict(await consumer.end_offsets(partitions)) if partitions else {}
    finally:
        await stop_consumer(consumer)


@dataclass
class TopicSnapshot:
    """What a read of a topic saw: its records and the offsets it read from and up to, per partition."""

    records: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)  # per partition in offset order
    starts: Positions = field(default_factory=dict)
    ends: Positions = field(default_factory=dict)


async def read_topic(bootstrap: str, topic: str, *, starts: Mapping[int, int] | None = None,
                     ends: Mapping[int, int] | None = None, partitions: Iterable[int] | None = None,
                     isolation_level: IsolationLevel = "read_committed",
                     progress: Progress | None = None, sink: Sink | None = None) -> TopicSnapshot:
    """Every record of `topic` from `starts` (default: the beginning) up to `ends` (default: the end offsets
    when the read starts, so the read is one fixed snapshot even while writers keep appending), of every
    partition or of `partitions` only. A partition missing from a given `starts` or `ends` is not read.
    With a `sink`, the records go to it as they are fetched, in offset order per partition, instead of into the
    snapshot: a long topic is folded without being held whole in memory."""
    consumer = group_less_consumer(bootstrap, isolation_level=isolation_level, max_partition_fetch_bytes=FETCH_BYTES)
    await consumer.start()
    try:
        assigned = _wanted(partitions_of(consumer, topic), partitions)
        consumer.assign(assigned)
        if starts is None:
            starts = {tp.partition: offset for tp, offset in (await consumer.beginning_offsets(assigned)).items()}
        if ends is None:
            ends = {tp.partition: offset for tp, offset in (await consumer.end_offsets(assigned)).items()}
        wanted = [tp for tp in assigned if tp.partition in starts and tp.partition in ends]
        snapshot = TopicSnapshot(starts={tp.partition: starts[tp.partition] for tp in wanted},
                                 ends={tp.partition: ends[tp.partition] for tp in wanted})
        for tp in wanted:
            consumer.seek(tp, snapshot.starts[tp.partition])
        pending = [tp for tp in wanted if snapshot.starts[tp.partition] < snapshot.ends[tp.partition]]
        await _read_until_ends(consumer, snapshot, pending, progress, sink or snapshot.records.extend)
        return snapshot
    finally:
        await stop_consumer(consumer)


def _wanted(partitions: list[TopicPartition], numbers: Iterable[int] | None) -> list[TopicPartition]:
    if numbers is None:
        return partitions
    wanted = set(numbers)
    return [tp for tp in partitions if tp.partition in wanted]


async def _read_until_ends(consumer: AIOKafkaConsumer, snapshot: TopicSnapshot, pending: list[TopicPartition],
                           progress: Progress | None, sink: Sink) -> None:
    total = sum(snapshot.ends[p] - snapshot.starts[p] for p in snapshot.ends)
    done = {p: 0 for p in snapshot.ends}
    poll = TailPoll()
    while pending:
        batches = await poll(consumer, pending, max_records=5000)
        for tp, records in batches.items():
            sink([r for r in records if r.offset < snapshot.ends[tp.partition]])
        for tp in list(pending):
            position = await consumer.position(tp)
            done[tp.partition] = max(0, min(position, snapshot.ends[tp.partition]) - snapshot.starts[tp.partition])
            if position >= snapshot.ends[tp.partition]:
                pending.remove(tp)
        if progress:
            progress(sum(done.values()), total)
    if progress:
        progress(total, total)


Handler = Callable[[list[ConsumerRecord[bytes, bytes]]], Awaitable[None] | None]


class TopicFollower:
    """Follows every partition of a topic for as long as it runs, handing each poll's records to `handle`.

    `start="beginning"` reads the whole topic first (a view folded from a log); `start="end"` only what is
    written after `start()` returns. `caught_up` is set once `handle` has seen every record that was on the
    topic when the follower started (at once for `start="end"` or an empty topic): a view answers only then.
    `positions` (partition -> next offset to read) is updated in place after every poll.
    """

    def __init__(self, bootstrap: str, topic: str, handle: Handler, *,
                 start: Literal["beginning", "end"] = "beginning",
                 isolation_level: IsolationLevel = "read_committed", max_records: int = 5000,
                 on_caught_up: Callable[[], None] | None = None) -> None:
        self.topic = topic
        self._handle, self._start, self._max_records = handle, start, max_records
        self._on_caught_up = on_caught_up
        self._bootstrap, self._isolation_level = bootstrap, isolation_level
        self._consumer: AIOKafkaConsumer | None = None   # made in start(): aiokafka wants a running loop
        self.caught_up = asyncio.Event()
        self.positions: Positions = {}
        self.start_ends: Positions = {}   # the end offsets when the follower started: what caught_up waits for
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = self._consumer = group_less_consumer(self._bootstrap, isolation_level=self._isolation_level)
        await consumer.start()
        try:
            partitions = partitions_of(consumer, self.topic)
        except TopicMissing:
            await stop_consumer(consumer)
            raise
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        if self._start == "beginning":
            await seek_to_beginning(consumer, partitions)
        else:
            for tp in partitions:
                consumer.seek(tp, ends[tp])
        self.start_ends.update({tp.partition: end for tp, end in ends.items()})
        await self._note_positions(consumer)
        self._task = asyncio.create_task(self._follow(consumer), name=f"follow {self.topic}")

    async def end_offsets(self) -> Positions:
        """The topic's end per partition, from the broker now (the last stable offsets under read_committed)."""
        if self._consumer is None:
            raise RuntimeError(f"the follower of {self.topic} has not started")
        partitions = sorted(self._consumer.assignment())
        return {tp.partition: end for tp, end in (await self._consumer.end_offsets(partitions)).items()}

    @property
    def failure(self) -> str | None:
        """Why the follower stopped, if it stopped by itself: whatever it feeds no longer moves."""
        if self._task is None or not self._task.done():
            return None
        error = None if self._task.cancelled() else self._task.exception()
        return f"following {self.topic} stopped: {type(error).__name__}: {error}" if error else \
            f"following {self.topic} stopped"

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await stop_consumer(self._consumer)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        try:
            self._check_caught_up()
            catch_up = TailPoll()   # up to the start's ends: a tail of transaction markers only is not waited on
            while True:
                if self.caught_up.is_set():
                    batches = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
                else:
                    batches = await catch_up(consumer, sorted(consumer.assignment()), self._max_records)
                records = [record for batch in batches.values() for record in batch]
                if records:
                    handled = self._handle(records)
                    if inspect.isawaitable(handled):
                        await handled
                await self._note_positions(consumer)
                self._check_caught_up()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("following %s stopped", self.topic)   # a task's exception is otherwise silent
            raise

    async def _note_positions(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            self.positions[tp.partition] = await consumer.position(tp)

    def _check_caught_up(self) -> None:
        if self.caught_up.is_set():
            return
        if all(self.positions.get(partition, 0) >= end for partition, end in self.start_ends.items()):
            self.caught_up.set()
            if self._on_caught_up is not None:
                self._on_caught_up()
