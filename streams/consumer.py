"""The batch engine's own consumer and transactions: the agents' topics read in batches with aiokafka.

Faust's per-event stream path costs about 200 µs a record on this machine (its consumer thread, the per-message
queue, events and sensors), a quarter of a busy ledger worker's CPU; the engine only wants batches. So the worker's
batch agents (streams/checkpoint.py) are fed by one consumer in the worker's event loop, in the workers' group
(`<app id>-workers`, Settings.worker_group), reading their topics with `getmany`; each batch's records go to their
topics' agents, which decide them concurrently. Faust still runs the worker: its lifecycle, web server and timers.

- Static membership (embedded broker defects 1 and 4): the group instance id is the worker id.
- Partitions are assigned by ranges in the order of the workers' ids (`WorkerRangeAssignor`): a worker gets the
  same partition numbers of every topic (they have as many partitions), so the engine's tables stay co-partitioned
  with the agents' topics (streams/tables.py), and the same ones again after a restart.
- Offsets: at_least_once, an agent's are committed as far as its tables' changelogs reflect its records (after
  every batch, or for an agent with periodic snapshots after each snapshot: a restart decides the records since
  then again, against the state of the snapshot), at most every BANK_COMMIT_INTERVAL, and for the revoked
  partitions before a rebalance goes on; exactly_once, each agent's batch is one transaction (`Transactions`)
  with its offsets in it.
- A partition the group has never committed starts where Faust's consumer group (`<app id>`, which read these
  topics before) left it (its offsets are adopted before joining), so an upgraded worker does not decide its
  topics again from their start. The group is new because the embedded broker never evicts stopped static
  members (defect 1): Faust's would have stayed in the old group, and a group that still listed them wedged (its
  SyncGroup answered a new member with no assignment).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from infra.kafka import create_admin_client, create_consumer
from infra.producer import create_producer
from streams.app import app, at_shutdown, settings
from streams.broker_workarounds import aiokafka_static_membership

if TYPE_CHECKING:
    from streams.checkpoint import BatchAgent

log = logging.getLogger(__name__)

FETCH_TIMEOUT_MS = 500
BATCH_MAX = 1500   # records per fetch, of every topic: each agent decides its share as one batch


def next_offsets(records: Sequence[Any]) -> dict[int, int]:
    """Per partition of one topic's `records`, the offset to commit once they are handled: one past the last."""
    offsets: dict[int, int] = {}
    for record in records:
        offsets[record.partition] = max(offsets.get(record.partition, 0), record.offset + 1)
    return offsets


class WorkerRangeAssignor(RangePartitionAssignor):
    """The range assignor, with the workers in the order of their ids instead of their member ids.

    A restarted worker rejoins with a new member id; ordered by member ids, the workers' ranges could swap, and
    on the embedded broker a restarted worker was handed its new range while the old owner, not told yet, still
    consumed it (seen under `bank chaos`: commands decided by both workers). Ordered by worker id (sent in the
    subscription's user data), every worker gets its own range back."""

    name = "bankstream-worker-range"
    worker_id = ""

    @classmethod
    def of(cls, worker_id: str) -> type[WorkerRangeAssignor]:
        return type(cls.__name__, (cls,), {"worker_id": worker_id})

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, list(topics), cls.worker_id.encode())

    @classmethod
    def assign(cls, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata],
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        member_of = {(metadata.user_data.decode(), member_id): member_id for member_id, metadata in members.items()}
        ranked = {f"{rank:06d}": member_of[key] for rank, key in enumerate(sorted(member_of))}
        assigned = super().assign(cluster, {rank: members[member_id] for rank, member_id in ranked.items()})
        return {ranked[rank]: assignment for rank, assignment in assigned.items()}


class WorkerConsumer(ConsumerRebalanceListener):
    """Feeds the agents their topics in batches, and commits what they handled."""

    def __init__(self, batch_max: int) -> None:
        self.agents: dict[str, BatchAgent] = {}   # topic -> its agent
        self.batch_max = batch_max
        self.commits = settings.processing_guarantee == "at_least_once"   # exactly_once: the transactions do
        self.consumer: AIOKafkaConsumer | None = None
        self._committed: dict[TopicPartition, int] = {}
        self._committed_at = time.monotonic()
        self._batch = asyncio.Lock()   # a rebalance or a stop waits for the batch in hand
        self._task: asyncio.Task[None] | None = None

    def add(self, agent: BatchAgent) -> None:
        self.agents[agent.topic] = agent

    async def start(self) -> None:
        await self._adopt_the_earlier_groups_offsets()
        self.consumer = create_consumer(
            bootstrap=settings.kafka, group_id=settings.worker_group, enable_auto_commit=False,
            client_id=f"{settings.app_id}-{settings.worker_id}",   # what readiness and group tools show
            auto_offset_reset="earliest", max_poll_records=self.batch_max,
            isolation_level="read_committed" if settings.processing_guarantee == "exactly_once" else
            "read_uncommitted",
            partition_assignment_strategy=(WorkerRangeAssignor.of(settings.worker_id),),
            **aiokafka_static_membership(settings.worker_id))
        await self.consumer.start()
        self.consumer.subscribe(list(self.agents), listener=self)
        self._task = asyncio.create_task(self._run(), name="streams.consumer")

    async def _adopt_the_earlier_groups_offsets(self) -> None:
        """Commit, for the group, what Faust's group committed on the partitions the group has never committed,
        before joining: the first worker to start does it while the group is empty (a commit from outside a group
        with live members is refused, and then the workers already running have done it)."""
        earlier = await committed_offsets(settings.kafka, settings.app_id)
        ours = await committed_offsets(settings.kafka, settings.worker_group)
        adopted = {tp: offset for tp, offset in earlier.items() if tp.topic in self.agents and tp not in ours}
        if not adopted:
            return
        adopter = create_consumer(bootstrap=settings.kafka, group_id=settings.worker_group, enable_auto_commit=False)
        await adopter.start()
        adopter.assign(list(adopted))
        try:
            await adopter.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in adopted.items()})
            log.info("group %s starts where group %s left off: %s", settings.worker_group, settings.app_id,
                     {f"{tp.topic}/{tp.partition}": offset for tp, offset in sorted(adopted.items())})
        except KafkaError as error:
            log.warning("group %s did not adopt group %s's offsets (its workers already run): %r",
                        settings.worker_group, settings.app_id, error)
        finally:
            await adopter.stop()

    async def stop(self) -> None:
        """Between batches: the one in hand is finished, the agents' last state snapshotted and their offsets
        committed, the consumer closed (a static member sends no LeaveGroup: a restarted worker of the same id
        takes its partitions back without a rebalance)."""
        if self.consumer is None:
            return
        async with self._batch:
            if self._task is not None:
                self._task.cancel()
            for agent in self.agents.values():   # a graceful stop leaves nothing to decide again after it
                try:
                    await agent.snapshot_when_idle()
                except Exception as error:   # noqa: BLE001 - the restart decides those records again instead
                    log.warning("%s: no snapshot at shutdown: %r", agent.name, error)
            await self._commit(self._committable())
        await self.consumer.stop()

    async def _run(self) -> None:
        try:
            while True:
                await self._next_batch()
        except asyncio.CancelledError:
            raise
        except Exception as error:   # the agents crash the worker themselves; this is the consumer failing
            log.critical("the worker's consumer failed, crashing the worker: %r", error)
            await app.crash(error)
            raise

    async def _next_batch(self) -> None:
        assert self.consumer is not None
        fetched = await self.consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=self.batch_max)
        by_topic: dict[str, list[Any]] = defaultdict(list)
        for tp, records in fetched.items():
            by_topic[tp.topic] += records
        async with self._batch:
            await asyncio.gather(*[self.agents[topic].handle_with_retry(records)
                                   for topic, records in by_topic.items()])
            if time.monotonic() - self._committed_at >= settings.commit_interval.total_seconds():
                await self._commit(self._committable())

    def _committable(self) -> dict[TopicPartition, int]:
        """Per partition, how far its agent's changelogs reflect it, where that is past what was committed."""
        offsets: dict[TopicPartition, int] = {}
        for topic, agent in self.agents.items():
            for partition, offset in agent.saved_offsets.items():
                tp = TopicPartition(topic, partition)
                if self._committed.get(tp) != offset:
                    offsets[tp] = offset
        return offsets

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed_at = time.monotonic()
        if not self.commits or not offsets or self.consumer is None:
            return
        try:
            await self.consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
        except KafkaError as error:   # a rebalance meanwhile: the next owner reads them again, deduplicated by id
            log.warning("offsets not committed: %r", error)
            return
        self._committed.update(offsets)

    # ------------------------------------------------------------ rebalances (aiokafka calls these)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("partitions revoked: %s", _listed(revoked))
        async with self._batch:
            await self._commit({tp: offset for tp, offset in self._committable().items() if tp in revoked})
            for tp in revoked:
                self._committed.pop(tp, None)
            for topic, agent in self.agents.items():
                await agent.revoked({tp.partition for tp in revoked if tp.topic == topic})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned: %s", _listed(assigned))
        for topic, agent in self.agents.items():
            await agent.assigned({tp.partition for tp in assigned if tp.topic == topic})


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """What `group` has committed, per partition (none: an empty dict)."""
    admin = create_admin_client(bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}


def _listed(partitions: set[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for tp in partitions:
        by_topic[tp.topic].append(tp.partition)
    return "; ".join(f"{topic} {sorted(numbers)}" for topic, numbers in sorted(by_topic.items())) or "none"


worker_consumer = WorkerConsumer(batch_max=BATCH_MAX)


@app.task
async def _start_consumer() -> None:
    await worker_consumer.start()


at_shutdown(worker_consumer.stop, first=True)


class Transactions:
    """exactly_once: each batch of an agent is one transaction of the agent's transactional producer (id
    `<app id>-<agent>-<worker id>`: a restarted worker fences its predecessor's producer): the events, the tables'
    changelog records and the batch's offsets commit together, or abort together and the batch is retried."""

    def __init__(self, agent_name: str) -> None:
        self.group = settings.worker_group
        self.transactional_id = f"{settings.app_id}-{agent_name}-{settings.worker_id}"
        self._producer: AIOKafkaProducer | None = None

    @asynccontextmanager
    async def batch(self, records: Sequence[Any]) -> AsyncIterator[AIOKafkaProducer]:
        producer = await self._started()
        await producer.begin_transaction()
        try:
            yield producer
            topic = records[0].topic
            offsets = {TopicPartition(topic, partition): OffsetAndMetadata(offset, "")
                       for partition, offset in next_offsets(records).items()}
            await producer.send_offsets_to_transaction(offsets, self.group)
            await producer.commit_transaction()
        except BaseException:
            await self._abort(producer)
            raise

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = create_producer(settings.kafka, linger_ms=2, transactional_id=self.transactional_id)
            await producer.start()
            log.info("transactional producer %s started (exactly_once)", self.transactional_id)
            self._producer = producer
        return self._producer

    async def _abort(self, producer: AIOKafkaProducer) -> None:
        try:
            await producer.abort_transaction()
        except Exception as error:  # noqa: BLE001 - fenced or disconnected: a new producer starts the retry
            log.warning("%s: transaction not aborted, starting a new producer: %r", self.transactional_id, error)
            self._producer = None
            await producer.stop()
