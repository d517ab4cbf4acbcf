"""The risk engine's topics as `bank rules` reads and writes them: bank.risk.rules and bank.risk.assessments.

Readers are group-less consumers (nothing committed, nothing to clean up) reading committed data from the
beginning up to the end offsets seen when they start, so a command works on one fixed snapshot of the log
even while scoring workers keep appending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from core.risk.features import Movement
from core.risk.records import RiskAssessed, RuleSetPublished
from core.topics import RISK_ASSESSMENTS, RISK_RULES
from schemas.codec import DecodeError, get_codec

Progress = Callable[[int, int], None]   # (offsets read so far, offsets to read in all)
FETCH_BYTES = 8 * 1024 * 1024


class TopicMissing(RuntimeError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic} does not exist; run `bank topics apply`")


@dataclass(frozen=True, slots=True)
class Published:
    """A RuleSetPublished record and where it is on bank.risk.rules."""

    offset: int
    record: RuleSetPublished


@dataclass
class Snapshot:
    """What a read of a whole topic saw: its records and the offsets it read from and up to, per partition."""

    records: list[Any] = field(default_factory=list)    # aiokafka ConsumerRecords, per partition in offset order
    starts: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)


async def read_snapshot(bootstrap: str, topic: str, progress: Progress | None = None) -> Snapshot:
    """Every committed record of `topic`, from the beginning to the end offsets captured at the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed", max_partition_fetch_bytes=FETCH_BYTES)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise TopicMissing(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        starts, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        snapshot = Snapshot(starts={tp.partition: starts[tp] for tp in tps},
                            ends={tp.partition: ends[tp] for tp in tps})
        for tp in tps:
            consumer.seek(tp, starts[tp])
        await _read_until_ends(consumer, snapshot, [tp for tp in tps if starts[tp] < ends[tp]], progress)
        return snapshot
    finally:
        await consumer.stop()


async def _read_until_ends(consumer: AIOKafkaConsumer, snapshot: Snapshot, pending: list[TopicPartition],
                           progress: Progress | None) -> None:
    # Compare positions, not offsets of records seen: compaction and transaction markers leave offset gaps.
    total = sum(snapshot.ends[p] - snapshot.starts[p] for p in snapshot.ends)
    done = {p: 0 for p in snapshot.ends}
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
        for tp, records in batches.items():
            snapshot.records.extend(r for r in records if r.offset < snapshot.ends[tp.partition])
        for tp in list(pending):
            position = await consumer.position(tp)
            done[tp.partition] = min(position, snapshot.ends[tp.partition]) - snapshot.starts[tp.partition]
            if position >= snapshot.ends[tp.partition]:
                pending.remove(tp)
        if progress:
            progress(sum(done.values()), total)
    if progress:
        progress(total, total)


# ---------------------------------------------------------------- bank.risk.rules


async def read_published(bootstrap: str) -> list[Published]:
    """Every RuleSetPublished on bank.risk.rules, in offset order (a version may appear more than once until
    compaction keeps only its newest record). Records that are not a RuleSetPublished are skipped."""
    snapshot = await read_snapshot(bootstrap, RISK_RULES)
    codec = get_codec()
    published = []
    for r in snapshot.records:
        try:
            record = codec.decode(r.value, r.headers)
        except DecodeError:
            continue
        if isinstance(record, RuleSetPublished):
            published.append(Published(r.offset, record))
    return published


def versions(published: list[Published]) -> list[Published]:
    """One entry per version, its newest record, ordered by that record's offset: the last one is live.

    That is what compaction keeps, so the answer does not depend on whether the broker has compacted yet."""
    newest = {p.record.version: p for p in published}
    return sorted(newest.values(), key=lambda p: p.offset)


async def publish(bootstrap: str, record: RuleSetPublished) -> int:
    """Produce `record` to bank.risk.rules keyed by its version (idempotent, acks=all); returns its offset."""
    value, headers = get_codec().encode(record)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(RISK_RULES, value, key=record.version.encode(), headers=headers)
        return sent.offset
    finally:
        await producer.stop()


# ---------------------------------------------------------------- bank.risk.assessments


@dataclass
class History:
    """The scoring history in replay order: (movement, event id) by time, then partition and offset."""

    movements: list[tuple[Movement, str]]
    starts: dict[int, int]
    ends: dict[int, int]
    duplicates: int          # the same event id seen again (a re-delivered assessment): replayed once
    skipped: int             # records that are not a readable RiskAssessed movement


async def read_history(bootstrap: str, progress: Progress | None = None) -> History:
    snapshot = await read_snapshot(bootstrap, RISK_ASSESSMENTS, progress)
    codec = get_codec()
    seen: set[str] = set()
    keyed: list[tuple[tuple[Any, int, int], Movement, str]] = []
    duplicates = skipped = 0
    for r in snapshot.records:
        try:
            record = codec.decode(r.value, r.headers)
            movement = record.movement if isinstance(record, RiskAssessed) else None
        except (DecodeError, ValueError):
            movement = None
        if movement is None:
            skipped += 1
        elif record.event_id in seen:
            duplicates += 1
        else:
            seen.add(record.event_id)
            keyed.append(((movement.at, r.partition, r.offset), movement, record.event_id))
    keyed.sort(key=lambda k: k[0])
    return History([(m, ref) for _, m, ref in keyed], snapshot.starts, snapshot.ends, duplicates, skipped)
