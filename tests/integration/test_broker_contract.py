"""The Kafka contract of bankstream: what the platform relies on the broker to do, checked for real.

Every test talks to a real broker over real connections (no mocks), on fresh, uniquely named topics
and groups: the embedded `noida-db` broker by default (fixture `kafka_bootstrap`, tests/conftest.py),
or any Kafka named by BANK_KAFKA_BOOTSTRAP. Run alone with `pytest -m contract`.

Behaviour relied on                                        embedded noida-db broker (measured)
---------------------------------------------------------  ---------------------------------------------
Keyed ordering: same key -> same partition (murmur2,        yes. aiokafka's partitioner matches Java's
  Java-compatible), records in produce order               murmur2 test vectors; per-key order kept
Idempotent producer (enable_idempotence)                    yes: producer id granted, no duplicates,
                                                           contiguous offsets
Transactions: commit visible / abort hidden under           yes. read_uncommitted also sees the aborted
  read_committed                                           records (as Kafka); markers take offsets
send_offsets_to_transaction (consume-transform-produce)    yes: offsets committed with the transaction,
                                                           not committed when it aborts
Consumer group splits partitions; LeaveGroup (stop())       yes: 2 members split 4 partitions, the
  rebalances everything onto the survivor                  survivor gets all 4 after the other stops
Commit + resume: a new member resumes at the committed      yes
  offset
Beginning/end offsets; committed offsets via admin          yes: exact; lag = end - committed computes
  list_consumer_group_offsets (lag)
Topic config retention.ms=-1, cleanup.policy=compact,       yes, describe_configs returns both
  read back by describe_configs
create_partitions (grow a topic)                            supported: 3 -> 6 works and the new partitions
                                                           take writes; shrinking is refused
Faust table recovery after a worker restart                 exact after a graceful stop: the in-memory
                                                           table is rebuilt from its changelog; counting
                                                           goes on from there. After a SIGKILL the same
                                                           static id takes over and recovers; records
                                                           after the last offset commit are re-counted
                                                           (at-least-once: Faust's periodic commit lagged
                                                           the last record, measured)
Faust passes consumer_group_instance_id to aiokafka          yes (faust-streaming 0.15.3 -> group_instance_id)

Known defects of the embedded broker (workarounds: streams/broker_workarounds.py)
1. A member killed without LeaveGroup is NEVER evicted, even after its session timeout: it stays
   leader of the group, a new member with a fresh id hangs in JoinGroup/SyncGroup ("rebalance in
   progress" every session timeout) and never gets a partition (aiokafka's consumer.start() itself
   never returns). Workaround: static membership - a restarted member with the same
   group.instance.id takes the partitions over at once (measured well under a second).
   `test_defect1_*` documents the defect as an xfail (an XPASS means the broker now evicts dead
   members); `test_static_membership_*` proves the workaround.
2. SIGKILL of the broker loses up to ~0.3 s of acknowledged writes (one JSON snapshot file). Not
   tested here (it needs a private broker); workaround: stop the broker gracefully only.
3. One DescribeGroups request for two groups returns a response the client cannot decode and the
   connection is closed (aiokafka: "Buffer underrun decoding string" -> KafkaConnectionError).
   The next request on a new connection works. Workaround: describe_groups_one_at_a_time.
4. (found here) An OffsetCommit sent while the group rebalances gets ILLEGAL_GENERATION; aiokafka then
   resets its member id and rejoins as a NEW member, leaving its old id in the group as a ghost that
   defect 1 never evicts: with auto-commit on (aiokafka's default) a second member joining wedges the
   group for good. Static membership heals it (the rejoin replaces the ghost by instance id).
5. (found by the exactly_once SIGKILL test) A read_committed Fetch lists aborted transactions whose abort
   marker lies BEFORE the fetch offset (Kafka lists only those overlapping the fetched range). aiokafka then
   takes that producer id for aborted and skips every later transactional batch of it (a re-initialised
   transactional id keeps its producer id) while its position still advances: committed records are
   silently lost to any read_committed reader that starts fetching after the abort marker. This is what
   stalls a Faust exactly_once worker restarted after a SIGKILL mid-transaction.
   `test_defect5_*` documents it as an xfail.
6. (found profiling the ledger worker) An empty Fetch is answered at once instead of being held up to
   fetch.max.wait.ms, so every idle aiokafka consumer (Faust's too) re-fetches in a tight loop, ~1,800
   requests/s each, burning CPU in client and broker. Workaround: infra/kafka_fetch.py (client-side long
   polling: an empty fetch lasts at least BANK_KAFKA_EMPTY_FETCH_BACKOFF_MS). `test_defect6_*` documents it.
Consequence of 1 for static members: a stopped static member (no LeaveGroup, by design) keeps its
partitions for ever, so on this broker never scale the worker count down; every worker id must
come back.

The xfails of defects 1 and 4 wait out session timeouts (15 s each): they are marked `slow` and run on demand
(BANK_SLOW_TESTS=1); their workarounds' tests run every time.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import murmur2

from infra import kafka_fetch
from infra.kafka import TailPoll
from streams.broker_workarounds import (
    aiokafka_static_membership,
    describe_groups_one_at_a_time,
    static_membership,
)

pytestmark = pytest.mark.contract

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Short group timeouts keep the group tests fast; tests/support/contract_apps/member.py uses the same.
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000


# --- helpers ---------------------------------------------------------------------------------------


def asynctest(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test function in its own event loop (no pytest-asyncio in this venv)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout=90))

    wrapper.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return wrapper


def unique(what: str) -> str:
    return f"contract-{what}-{uuid.uuid4().hex[:10]}"


class Admin:
    """An AIOKafkaAdminClient as an async context manager."""

    def __init__(self, bootstrap: str) -> None:
        self.client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)

    async def __aenter__(self) -> AIOKafkaAdminClient:
        await self.client.start()
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


async def create_topic(bootstrap: str, partitions: int, config: dict[str, str] | None = None) -> str:
    name = unique("t")
    async with Admin(bootstrap) as admin:
        response = await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config or {})])
    assert all(err[1] == 0 for err in response.topic_errors), response
    return name


async def produce_counts(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    """Produce values "0".."n-1" to each partition, one acknowledged record at a time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition, n in counts.items():
            for i in range(n):
                await producer.send_and_wait(topic, value=str(i).encode(), partition=partition)
    finally:
        await producer.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float, poll: Callable[[], Awaitable[Any]] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if poll is not None:
            await poll()
        else:
            await asyncio.sleep(0.1)
    return predicate()


async def consume_all(consumer: AIOKafkaConsumer, expected: int, timeout: float = 15) -> list[Any]:
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=300)
        for msgs in batch.values():
            records.extend(msgs)
    return records


def java_murmur2_partition(key: bytes, partitions: int) -> int:
    """Kafka's Java DefaultPartitioner: toPositive(murmur2(key)) % numPartitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Child:
    """A subprocess whose stdout lines can be awaited with a timeout."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.log = log
        self.proc = subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log, "a") if self.log else open(os.devnull, "w") as sink:
            for line in self.proc.stdout:
                sink.write(line)
                sink.flush()
                self.lines.put(line.rstrip("\n"))

    async def wait_line(self, prefix: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.05)
                continue
            if line.startswith(prefix):
                return line
        return None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to send LeaveGroup or commit anything."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait for a graceful exit (SIGKILL if it does not come)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def group_member(bootstrap: str, topic: str, group: str, instance_id: str | None = None) -> Child:
    argv = [sys.executable, "-m", "tests.support.contract_apps.member", bootstrap, topic, group]
    return Child(argv + ([instance_id] if instance_id else []))


# --- ordering, idempotence, transactions -----------------------------------------------------------


def test_partitioner_is_javas_murmur2() -> None:
    """aiokafka's murmur2 equals Java's (vectors from Kafka's UtilsTest): Java and Python producers agree."""
    vectors = {
        "21": -973932308,
        "foobar": -790332482,
        "a-little-bit-long-string": -985981536,
        "a-little-bit-longer-string": -1486304829,
        "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        "abc": 479470107,
    }
    for text, java in vectors.items():
        signed = murmur2(text.encode())
        signed = signed - 2**32 if signed >= 2**31 else signed
        assert signed == java, text


@asynctest
async def test_keyed_records_keep_partition_and_order(kafka_bootstrap: str) -> None:
    partitions = 6
    topic = await create_topic(kafka_bootstrap, partitions)
    keys = [f"acct-{i}".encode() for i in range(12)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sent = []
        for seq in range(10):
            for key in keys:
                sent.append(producer.send(topic, key=key, value=str(seq).encode()))
        metadata = await asyncio.gather(*[await fut for fut in sent])
    finally:
        await producer.stop()
    for md, key in zip(metadata, [k for _ in range(10) for k in keys], strict=True):
        assert md.partition == java_murmur2_partition(key, partitions)

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        records = await consume_all(consumer, 120)
    finally:
        await consumer.stop()
    assert len(records) == 120
    by_key: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[rec.key].append((rec.partition, int(rec.value)))
    for key in keys:
        assert {p for p, _ in by_key[key]} == {java_murmur2_partition(key, partitions)}
        assert [seq for _, seq in by_key[key]] == list(range(10)), key


@asynctest
async def test_idempotent_producer(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap, 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=f"{i}".encode(), partition=0) for i in range(50)]
        metadata = await asyncio.gather(*futures)
        txn_manager = producer._txn_manager  # the broker must have granted a producer id
        assert txn_manager is not None and txn_manager.producer_id >= 0
    finally:
        await producer.stop()
    assert [md.offset for md in metadata] == list(range(50))

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        records = await consume_all(consumer, 50)
        assert [int(r.value) for r in records] == list(range(50))
        assert (await consumer.end_offsets([tp]))[tp] == 50
    finally:
        await consumer.stop()


async def write_transactions(bootstrap: str, topic: str, transactions: list[tuple[list[str], bool]]) -> None:
    """One transactional producer writes each (values, commit?) to partition 0 as a transaction, committed or
    aborted: each leaves its marker after its values."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique("txn"))
    await producer.start()
    try:
        for values, commit in transactions:
            await producer.begin_transaction()
            for value in values:
                await producer.send_and_wait(topic, value=value.encode(), partition=0)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()


@asynctest
async def test_transactions_commit_visible_abort_hidden(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap, 1)
    await write_transactions(kafka_bootstrap, topic, [(["a", "b"], True), (["c"], False), (["d"], True)])

    tp = TopicPartition(topic, 0)
    seen = {}
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level=isolation, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([tp])
            expected = 3 if isolation == "read_committed" else 4
            seen[isolation] = [r.value.decode() for r in await consume_all(consumer, expected, timeout=5)]
            end = (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
    assert seen["read_committed"] == ["a", "b", "d"]
    assert seen["read_uncommitted"] == ["a", "b", "c", "d"]
    assert end == 7  # 4 records + 3 transaction markers (commit, abort, commit)


@asynctest
async def test_a_read_committed_poll_over_a_marker_moves_the_position_past_it(kafka_bootstrap: str) -> None:
    """What reads up to known ends rely on (infra.kafka.TailPoll: the ledger's catch-up, the gap guard, the history
    reads): a tail that holds only a commit marker (every exactly_once batch leaves one) gives no record, yet a
    poll moves the position past it. aiokafka's poll waits out its whole timeout for a record all the same, so
    TailPoll waits a millisecond while the read moves, and backs off while it does not."""
    topic = await create_topic(kafka_bootstrap, 1)
    await write_transactions(kafka_bootstrap, topic, [(["committed"], True)])   # offset 0, the commit marker at 1
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 1)
        poll, polls = TailPoll(), []
        while await consumer.position(tp) < end and len(polls) < 100:
            polls.append(await poll(consumer, [tp]))
        idle = [await poll(consumer, [tp]) for _ in range(5)]   # at the end: nothing moves any more
    finally:
        await consumer.stop()
    assert end == 2
    assert all(not records for each in polls + idle for records in each.values()), polls
    assert 0 < len(polls) < 100, "the position never moved past the marker"
    assert poll.timeout_ms == 16   # 1 (it had moved), then 2, 4, 8, 16 ms: backing off, not spinning


@pytest.mark.xfail(
    strict=False,
    raises=AssertionError,
    reason="DEFECT 5 of the embedded broker: a read_committed Fetch lists an aborted transaction whose abort "
    "marker lies before the fetch offset; aiokafka then skips every later transaction of the same producer id "
    "(position advances, nothing delivered). Stalls exactly_once workers restarted after a SIGKILL. XPASS "
    "means the broker lists only the aborted transactions overlapping the fetched range, as Kafka does.",
)
@asynctest
async def test_defect5_read_committed_fetch_after_an_abort_marker(kafka_bootstrap: str) -> None:
    from aiokafka.consumer import fetcher

    topic = await create_topic(kafka_bootstrap, 1)
    # "aborted" at offset 0, its abort marker at 1; "committed" at 2 (the same producer id), its commit marker at 3
    await write_transactions(kafka_bootstrap, topic, [(["aborted"], False), (["committed"], True)])

    # The raw aborted-transaction lists of the fetch responses, seen before aiokafka (or any client-side
    # workaround wrapping the same constructor) acts on them.
    listed: list[tuple[int, list[tuple[int, int]]]] = []
    original = fetcher.PartitionRecords.__init__

    def spy(self: Any, tp: Any, records: Any, aborted: Any, fetch_offset: int, *args: Any, **kwargs: Any) -> None:
        listed.append((fetch_offset, [tuple(a) for a in aborted or []]))
        original(self, tp, records, aborted, fetch_offset, *args, **kwargs)

    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False)
    fetcher.PartitionRecords.__init__ = spy
    try:
        await consumer.start()
        consumer.assign([tp])
        consumer.seek(tp, 2)  # just after the abort marker: a reader resuming from a committed offset
        values = [r.value for r in await consume_all(consumer, 1, timeout=5)]
        position = await consumer.position(tp)
    finally:
        fetcher.PartitionRecords.__init__ = original
        await consumer.stop()
    stale = [(offset, entry) for offset, entries in listed for entry in entries if entry[1] < offset]
    assert stale == [], f"aborted transactions ending before the fetch offset were listed: {stale}"
    assert values == [b"committed"], f"read_committed from offset 2 got {values}, position {position}"


@asynctest
async def test_send_offsets_to_transaction(kafka_bootstrap: str) -> None:
    """Consume-transform-produce: input offsets commit atomically with the output, or not at all."""
    source = await create_topic(kafka_bootstrap, 1)
    sink = await create_topic(kafka_bootstrap, 1)
    group = unique("g")
    tp = TopicPartition(source, 0)
    await produce_counts(kafka_bootstrap, source, {0: 6})

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=unique("txn"))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False,
        isolation_level="read_committed", auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([tp])
        records = await consume_all(consumer, 6)
        assert len(records) == 6
        # First transaction: records 0..2 -> committed together with offset 3.
        async with producer.transaction():
            for rec in records[:3]:
                await producer.send(sink, value=b"out-" + rec.value, partition=0)
            await producer.send_offsets_to_transaction({tp: records[2].offset + 1}, group)
        # Second transaction: records 3..5 -> aborted, so offset 6 must NOT be committed.
        await producer.begin_transaction()
        for rec in records[3:]:
            await producer.send(sink, value=b"out-" + rec.value, partition=0)
        await producer.send_offsets_to_transaction({tp: records[5].offset + 1}, group)
        await producer.abort_transaction()
    finally:
        await consumer.stop()
        await producer.stop()

    async with Admin(kafka_bootstrap) as admin:
        committed = await admin.list_consumer_group_offsets(group)
    assert committed[tp].offset == 3

    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level="read_committed", auto_offset_reset="earliest")
    await reader.start()
    try:
        reader.assign([TopicPartition(sink, 0)])
        out = [r.value for r in await consume_all(reader, 3, timeout=5)]
    finally:
        await reader.stop()
    assert out == [b"out-0", b"out-1", b"out-2"]


# --- consumer groups and offsets -------------------------------------------------------------------


def group_consumer(bootstrap: str, topic: str, group: str, **kwargs: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS, **kwargs,
    )


def covers_all(consumers: list[AIOKafkaConsumer], partitions: int) -> Callable[[], bool]:
    """True once every consumer has partitions, none shared, all of them assigned."""

    def check() -> bool:
        sets = [{tp.partition for tp in c.assignment()} for c in consumers]
        union = set().union(*sets)
        return all(sets) and sum(map(len, sets)) == len(union) == partitions

    return check


async def stop_quietly(*consumers: AIOKafkaConsumer) -> None:
    """Stop consumers, giving up after 5 s each (a consumer wedged by a broker defect may not stop)."""
    for consumer in consumers:
        try:
            await asyncio.wait_for(consumer.stop(), 5)
        except (TimeoutError, KafkaError):
            pass


def polling(*consumers: AIOKafkaConsumer) -> Callable[[], Awaitable[Any]]:
    async def poll() -> None:
        await asyncio.gather(*(c.getmany(timeout_ms=100) for c in consumers))

    return poll


async def two_member_group(bootstrap: str, **kwargs: Any) -> tuple[list[AIOKafkaConsumer], bool]:
    """Start two consumers of one group (4 partitions); return them and whether they split within 15 s."""
    topic = await create_topic(bootstrap, 4)
    group = unique("g")
    instance_ids = kwargs.pop("instance_ids", (None, None))
    consumers = [
        group_consumer(bootstrap, topic, group, group_instance_id=iid, **kwargs) for iid in instance_ids
    ]
    await consumers[0].start()
    # aiokafka's start() returns only once the member has joined: start the second one in the background.
    joining = asyncio.create_task(consumers[1].start())
    try:
        ok = await wait_for(covers_all(consumers, 4), 15, polling(consumers[0]))
    finally:
        if not joining.done():
            joining.cancel()
            await asyncio.gather(joining, return_exceptions=True)
    return consumers, ok


@asynctest
async def test_group_splits_partitions_and_rebalances_on_leave(kafka_bootstrap: str) -> None:
    (first, second), split = await two_member_group(kafka_bootstrap, enable_auto_commit=False)
    try:
        assert split, (first.assignment(), second.assignment())
        await second.stop()  # sends LeaveGroup
        assert await wait_for(covers_all([first], 4), 15, polling(first)), first.assignment()
    finally:
        await stop_quietly(second, first)


async def two_auto_committing_members(bootstrap: str, instance_ids: tuple[str | None, str | None]) -> tuple[str | None, str | None]:
    """Two subprocess members (aiokafka defaults: auto-commit on) join one group of 4 partitions in turn.

    Returns each member's last reported assignment once they split the partitions, or after 15 s.
    Subprocesses, because a wedged aiokafka consumer cannot even be stopped.
    """
    topic = await create_topic(bootstrap, 4)
    group = unique("g")
    first = group_member(bootstrap, topic, group, instance_ids[0])
    second = None
    try:
        assert await first.wait_line("ASSIGNED [0, 1, 2, 3]", 20), "the first member never joined"
        second = group_member(bootstrap, topic, group, instance_ids[1])
        # The first member's auto-commit fires as the rebalance starts.
        got_second = await second.wait_line("ASSIGNED", 15)
        got_first = await first.wait_line("ASSIGNED", 5) if got_second else None
        return got_first, got_second
    finally:
        first.kill()
        if second is not None:
            second.kill()


def split_between(first: str | None, second: str | None) -> bool:
    if not (first and second):
        return False
    a, b = (set(json.loads(line.removeprefix("ASSIGNED "))) for line in (first, second))
    return bool(a) and bool(b) and not (a & b) and (a | b) == {0, 1, 2, 3}


@pytest.mark.slow   # waits out session timeouts to show the defect: on demand (BANK_SLOW_TESTS=1)
@pytest.mark.xfail(
    strict=False,
    raises=AssertionError,
    reason="DEFECT 4 of the embedded broker: an OffsetCommit during a rebalance gets ILLEGAL_GENERATION; aiokafka "
    "then rejoins under a NEW member id and its old id stays in the group for ever (defect 1), as leader: "
    "the group never completes a rebalance. XPASS means the broker accepts (or correctly rejects) such commits.",
)
@asynctest
async def test_defect4_commit_during_rebalance_wedges_a_dynamic_group(kafka_bootstrap: str) -> None:
    first, second = await two_auto_committing_members(kafka_bootstrap, (None, None))
    assert split_between(first, second), f"no split within 15 s: first {first!r}, second {second!r}"


@asynctest
async def test_static_membership_survives_commit_during_rebalance(kafka_bootstrap: str) -> None:
    """Workaround for defect 4: a static member's rejoin replaces its old member id, no ghost is left."""
    first, second = await two_auto_committing_members(kafka_bootstrap, ("worker-1", "worker-2"))
    assert split_between(first, second), f"first {first!r}, second {second!r}"


@pytest.mark.slow   # waits out session timeouts to show the defect: on demand (BANK_SLOW_TESTS=1)
@pytest.mark.xfail(
    strict=False,
    raises=AssertionError,
    reason="DEFECT 1 (static flavour): a static member that stops (no LeaveGroup, by design) keeps its partitions "
    "for ever instead of losing them after its session timeout. Consequence: never scale the worker count down "
    "on the embedded broker; every worker id must come back. XPASS means the broker now expires static members.",
)
@asynctest
async def test_defect1_stopped_static_member_expires_after_session_timeout(kafka_bootstrap: str) -> None:
    (first, second), split = await two_member_group(
        kafka_bootstrap, enable_auto_commit=False, instance_ids=("worker-1", "worker-2")
    )
    try:
        assert split, (first.assignment(), second.assignment())
        await second.stop()  # a static member sends no LeaveGroup
        # Kafka would expire worker-2 after its 6 s session timeout and move its partitions to worker-1.
        assert await wait_for(covers_all([first], 4), 12, polling(first)), f"worker-1 still has only {first.assignment()}"
    finally:
        await stop_quietly(second, first)


@asynctest
async def test_commit_and_resume_from_committed_offset(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap, 1)
    group = unique("g")
    tp = TopicPartition(topic, 0)
    await produce_counts(kafka_bootstrap, topic, {0: 10})

    first = group_consumer(kafka_bootstrap, topic, group, enable_auto_commit=False)
    await first.start()
    try:
        records = await consume_all(first, 10)
        assert [int(r.value) for r in records] == list(range(10))
        await first.commit({tp: 4})
        assert await first.committed(tp) == 4
    finally:
        await first.stop()

    second = group_consumer(kafka_bootstrap, topic, group, enable_auto_commit=False)
    await second.start()
    try:
        resumed = await consume_all(second, 6)
        assert [r.offset for r in resumed] == list(range(4, 10))
    finally:
        await second.stop()


@asynctest
async def test_offsets_and_lag_via_admin(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap, 3)
    group = unique("g")
    produced = {0: 5, 1: 0, 2: 12}
    await produce_counts(kafka_bootstrap, topic, produced)

    tps = [TopicPartition(topic, p) for p in produced]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        assert await consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}
        end = await consumer.end_offsets(tps)
        assert end == {tp: produced[tp.partition] for tp in tps}
        consumer.assign(tps)
        await consumer.commit({tps[0]: 2, tps[2]: 12})
    finally:
        await consumer.stop()

    async with Admin(kafka_bootstrap) as admin:
        committed = await admin.list_consumer_group_offsets(group)
        assert await admin.list_consumer_group_offsets(unique("never-committed")) == {}
    assert {tp: om.offset for tp, om in committed.items()} == {tps[0]: 2, tps[2]: 12}
    lag = {tp.partition: end[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps}
    assert lag == {0: 3, 1: 0, 2: 0}


# --- topic administration --------------------------------------------------------------------------


@asynctest
async def test_topic_config_and_create_partitions(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap, 3, {"retention.ms": "-1", "cleanup.policy": "compact"})
    async with Admin(kafka_bootstrap) as admin:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [resource] = response.resources
        assert resource[0] == 0, resource
        configs = {entry[0]: entry[1] for entry in resource[4]}
        assert configs["retention.ms"] == "-1"
        assert configs["cleanup.policy"] == "compact"

        # Growing a topic is supported...
        await admin.create_partitions({topic: NewPartitions(6)})
        [described] = await admin.describe_topics([topic])
        assert len(described["partitions"]) == 6
        # ...shrinking is refused, as in Kafka.
        with pytest.raises(KafkaError):
            await admin.create_partitions({topic: NewPartitions(2)})

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        md = await producer.send_and_wait(topic, key=b"k", value=b"v", partition=5)
        assert (md.partition, md.offset) == (5, 0)
    finally:
        await producer.stop()


# --- Faust -----------------------------------------------------------------------------------------


@asynctest
async def test_faust_passes_static_membership_to_aiokafka() -> None:
    """faust-streaming builds its aiokafka consumer with group_instance_id = consumer_group_instance_id."""
    import faust

    app = faust.App(unique("faust-conf"), broker="kafka://127.0.0.1:1", **static_membership("worker-7"))
    assert app.conf.consumer_group_instance_id == "worker-7"
    thread = app.consumer._thread  # faust.transport.drivers.aiokafka.AIOKafkaConsumerThread
    aio_consumer = thread._create_worker_consumer(app.transport)  # built, never started: no broker needed
    assert aio_consumer._group_instance_id == "worker-7"
    assert aio_consumer._session_timeout_ms == 30_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@asynctest
async def test_faust_table_recovers_exactly_after_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    partitions = 2
    topic = await create_topic(kafka_bootstrap, partitions)
    out = tmp_path / "state.json"
    env = {
        "COUNTER_BOOTSTRAP": kafka_bootstrap,
        "COUNTER_APP_ID": unique("counter"),
        "COUNTER_TOPIC": topic,
        "COUNTER_OUT": str(out),
        "COUNTER_DATADIR": str(tmp_path / "data"),
        "COUNTER_PARTITIONS": str(partitions),
        "COUNTER_WORKER_ID": "counter-1",
    }
    argv = [sys.executable, "-m", "faust", "-A", "tests.support.contract_apps.counter", "worker", "-l", "warn"]

    def start_worker() -> Child:
        out.unlink(missing_ok=True)
        return Child(argv, env={**env, "COUNTER_WEB_PORT": str(free_port())}, log=tmp_path / "worker.log")

    async def produce(counts: dict[str, int]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for key, n in counts.items():
                for _ in range(n):
                    await producer.send_and_wait(topic, key=key.encode(), value=b"1")
        finally:
            await producer.stop()

    max_seen: dict[str, int] = defaultdict(int)

    async def wait_counts(expected: dict[str, int], timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = read_state(out)
            if state:
                for key, n in state["counts"].items():
                    max_seen[key] = max(max_seen[key], n)
                if state["counts"] == expected and state["assigned"] == list(range(partitions)):
                    return state
            await asyncio.sleep(0.1)
        pytest.fail(f"table never reached {expected}; last state {state}; log:\n{(tmp_path / 'worker.log').read_text()[-3000:]}")

    async def wait_until_state(predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = read_state(out)
            if state and state["assigned"] == list(range(partitions)) and predicate(state):
                return state
            await asyncio.sleep(0.1)
        pytest.fail(f"worker never reached the expected state; last {state}; log:\n{(tmp_path / 'worker.log').read_text()[-3000:]}")

    first = start_worker()
    try:
        await produce({"a": 10, "b": 20, "c": 5})
        await wait_counts({"a": 10, "b": 20, "c": 5}, timeout=30)
    finally:
        assert first.stop() == 0

    second = start_worker()
    try:
        # The table lives in memory: these values can only come from its changelog.
        await wait_counts({"a": 10, "b": 20, "c": 5}, timeout=30)
        assert dict(max_seen) == {"a": 10, "b": 20, "c": 5}, "recovery overshot: records counted twice"
        # Counting goes on from the recovered values (at-least-once: a rebalance right after the
        # restart may count the new record twice, so 12 is tolerated; 1 would mean no recovery).
        await produce({"a": 1})
        state = await wait_until_state(lambda st: st["counts"].get("a", 0) >= 11, timeout=30)
        assert state["counts"]["a"] in (11, 12) and state["counts"]["b"] == 20, state
    finally:
        second.kill()  # a crash: no LeaveGroup, no final commit

    # Defect 1 would strand the partitions with the dead worker; the same static id takes them over.
    # After a crash the guarantee is at-least-once (processing_guarantee=at_least_once): records after
    # the last offset commit are counted again. Measured: Faust's periodic commit leaves the last record
    # uncommitted, so it is re-counted; hence ">=" here, exact only after a graceful stop (above).
    third = start_worker()
    try:
        await produce({"b": 1})
        state = await wait_until_state(lambda st: st["counts"].get("b", 0) >= 21, timeout=30)
        counts = state["counts"]
        assert counts["a"] >= 11 and counts["c"] == 5, counts
        assert counts["a"] <= 13 and counts["b"] <= 22, f"more than the uncommitted tail was re-counted: {counts}"
    finally:
        third.stop()


# --- defect 1: dead members are never evicted ------------------------------------------------------


@pytest.mark.slow   # waits out session timeouts to show the defect: on demand (BANK_SLOW_TESTS=1)
@pytest.mark.xfail(
    strict=False,
    raises=AssertionError,
    reason="DEFECT 1 of the embedded broker: a member killed without LeaveGroup is never evicted, so a new "
    "member never gets its partitions. XPASS means the broker now evicts dead members after the session "
    "timeout, like Kafka: update the contract docstring (static membership stays useful, but is no longer "
    "required).",
)
@asynctest
async def test_defect1_dead_member_is_evicted_after_session_timeout(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap, 3)
    group = unique("g")
    dead = group_member(kafka_bootstrap, topic, group)
    try:
        assert await dead.wait_line("ASSIGNED", 20), "the first member never joined"
    finally:
        dead.kill()  # no LeaveGroup

    # Kafka would evict the dead member after its 6 s session timeout and hand everything to this one.
    successor = group_member(kafka_bootstrap, topic, group)
    try:
        line = await successor.wait_line("ASSIGNED", 15)
    finally:
        successor.kill()
    assert line == "ASSIGNED [0, 1, 2]", "a new member got no partitions within 15 s (2.5 x session timeout)"


@asynctest
async def test_static_membership_restarted_member_takes_over_at_once(kafka_bootstrap: str) -> None:
    """Workaround for defect 1: a restarted member with the killed member's group.instance.id."""
    topic = await create_topic(kafka_bootstrap, 3)
    group = unique("g")
    dead = group_member(kafka_bootstrap, topic, group, instance_id="worker-1")
    try:
        assert await dead.wait_line("ASSIGNED", 20), "the first member never joined"
    finally:
        dead.kill()  # no LeaveGroup (a static member would not send one anyway)

    restarted = group_member(kafka_bootstrap, topic, group, instance_id="worker-1")
    try:
        started = time.monotonic()
        line = await restarted.wait_line("ASSIGNED", 10)
        took = time.monotonic() - started
    finally:
        restarted.kill()
    # Without the workaround the partitions never come back (defect 1): getting them at all is the proof. How
    # fast is not asserted (a loaded machine takes seconds to start the interpreter); the message says it.
    assert line == "ASSIGNED [0, 1, 2]", f"the restarted static member did not get the partitions back ({took:.1f} s)"


def test_static_membership_settings() -> None:
    assert static_membership("ledger-1")["consumer_group_instance_id"] == "ledger-1"
    assert aiokafka_static_membership("ledger-1")["group_instance_id"] == "ledger-1"
    with pytest.raises(ValueError):
        static_membership("")


# --- defect 3: describing two groups in one call ---------------------------------------------------


async def two_live_groups(bootstrap: str) -> tuple[list[str], list[AIOKafkaConsumer]]:
    topic = await create_topic(bootstrap, 2)
    groups = [unique("g"), unique("g")]
    consumers = [group_consumer(bootstrap, topic, g) for g in groups]
    for consumer in consumers:
        await consumer.start()
    for consumer in consumers:
        assert await wait_for(lambda c=consumer: bool(c.assignment()), 15, lambda c=consumer: c.getmany(timeout_ms=100))
    return groups, consumers


@pytest.mark.xfail(
    strict=False,
    raises=KafkaConnectionError,
    reason="DEFECT 3 of the embedded broker: a DescribeGroups request for two groups gets an undecodable "
    "response and the connection is closed. XPASS means the broker fixed it: describe_groups_one_at_a_time "
    "is no longer required.",
)
@asynctest
async def test_defect3_describe_two_groups_in_one_call(kafka_bootstrap: str) -> None:
    groups, consumers = await two_live_groups(kafka_bootstrap)
    try:
        async with Admin(kafka_bootstrap) as admin:
            responses = await admin.describe_consumer_groups(groups)
        described = {g[1]: g for r in responses for g in r.groups}
        assert set(described) == set(groups)
    finally:
        for consumer in consumers:
            await consumer.stop()


@asynctest
async def test_describe_groups_one_at_a_time(kafka_bootstrap: str) -> None:
    groups, consumers = await two_live_groups(kafka_bootstrap)
    try:
        async with Admin(kafka_bootstrap) as admin:
            described = await describe_groups_one_at_a_time(admin, groups)
    finally:
        for consumer in consumers:
            await consumer.stop()
    assert set(described) == set(groups)
    for group in described.values():
        assert group[0] == 0 and group[2] == "Stable" and len(group[5]) == 1, group


# --- Defect 6: empty fetches are answered at once -----------------------------------------------------------


async def idle_fetch_rate(bootstrap: str, seconds: float = 2.0) -> float:
    """Fetch requests per second of one consumer of an empty topic, with Kafka's default fetch_max_wait_ms."""
    topic = await create_topic(bootstrap, 1)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=500)
    await consumer.start()
    sent = 0
    original = consumer._client.send

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal sent
        sent += 1
        return await original(*args, **kwargs)

    consumer._client.send = counting  # type: ignore[method-assign]
    try:
        await consumer.getmany(timeout_ms=int(seconds * 1000))
    finally:
        await consumer.stop()
    return sent / seconds


@pytest.mark.xfail(
    strict=False,
    raises=AssertionError,
    reason="DEFECT 6 of the embedded broker: an empty Fetch is answered at once, not held up to "
    "fetch.max.wait.ms, so idle consumers spin. XPASS means the broker now holds empty fetches: "
    "BANK_KAFKA_EMPTY_FETCH_BACKOFF_MS can be 0.",
)
@asynctest
async def test_defect6_an_empty_fetch_is_held_for_fetch_max_wait(kafka_bootstrap: str) -> None:
    kafka_fetch.install(0)   # aiokafka as shipped
    try:
        rate = await idle_fetch_rate(kafka_bootstrap)
    finally:
        kafka_fetch.install(0)
    assert rate < 20, f"{rate:.0f} fetch requests/s from one idle consumer (Kafka: about 2)"


@asynctest
async def test_client_side_long_polling_tames_idle_consumers_and_still_delivers(kafka_bootstrap: str) -> None:
    kafka_fetch.install(5, 40)
    try:
        rate = await idle_fetch_rate(kafka_bootstrap)
        # 5 ms doubling to 40 ms: about 25 fetches a second once idle (aiokafka as shipped: ~1,800)
        assert rate < 60, f"{rate:.0f} fetch requests/s despite the client-side poll (5 ms up to 40 ms)"
        topic = await create_topic(kafka_bootstrap, 1)
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            await produce_counts(kafka_bootstrap, topic, {0: 3})
            assert len(await consume_all(consumer, 3)) == 3
        finally:
            await consumer.stop()
    finally:
        kafka_fetch.install(0)
