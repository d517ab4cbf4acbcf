"""Operating the projections: rebuild from offset 0, status with lag, retry of parked events.

Used by `bank projections ...`; each function takes the live store and does its work with its own
group-less consumer, so the live projection keeps running meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from core.readmodel import Positions
from core.topics import LEDGER_EVENTS
from infra.kafka import FETCH_BYTES, TopicMissing, group_less_consumer, partitions_of, stop_consumer
from infra.topics import record_types
from schemas.codec import Codec, DecodeError, get_codec
from streams.projections.base import ApplyError, EventRecord, Parked, ProjectionStore, Status
from streams.projections.runner import BATCH_MAX, apply_batch

Progress = Callable[[int, int], None]   # (events read so far, events to read in all)


@dataclass
class RebuildReport:
    projection: str
    events: int
    seconds: float
    generation: str

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def _reader(bootstrap: str) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = group_less_consumer(bootstrap, max_partition_fetch_bytes=FETCH_BYTES)
    await consumer.start()
    try:
        tps = partitions_of(consumer, LEDGER_EVENTS)
    except TopicMissing:
        await stop_consumer(consumer)
        raise
    consumer.assign(tps)
    return consumer, tps


async def end_offsets(bootstrap: str) -> Positions:
    consumer, tps = await _reader(bootstrap)
    try:
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def replay(store: ProjectionStore, bootstrap: str, progress: Progress | None = None,
                 catch_up_rounds: int = 3) -> int:
    """Fold the whole event log into `store` from its stored offsets (0 for a fresh one) up to the end.

    The log keeps growing while we read: after reaching the end seen at the start, read to the new end a
    few more times, so the model swapped in is as close to the head as the live one."""
    consumer, tps = await _reader(bootstrap)
    events = 0
    try:
        stored = await store.offsets()
        for tp in tps:
            consumer.seek(tp, stored.get(tp.partition, 0))
        for _ in range(catch_up_rounds):
            ends = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
            total = events + sum(max(0, ends[p] - stored.get(p, 0)) for p in ends)
            while True:
                starts = {tp.partition: await consumer.position(tp) for tp in tps}
                if all(starts[p] >= ends[p] for p in ends):
                    break
                batches = await consumer.getmany(timeout_ms=500, max_records=BATCH_MAX)
                records = [EventRecord.decode(tp.partition, r.offset, r.value, r.headers)
                           for tp, rs in batches.items() for r in rs]
                now = {tp.partition: await consumer.position(tp) for tp in tps}
                stored = await apply_batch(store, records, starts, now)
                events += len(records)
                if progress:
                    progress(events, max(total, events))
            if progress:
                progress(events, events)
        return events
    finally:
        await consumer.stop()


async def rebuild(live: ProjectionStore, bootstrap: str, progress: Progress | None = None,
                  swap: bool = True) -> RebuildReport:
    """Fill a fresh copy of the model from offset 0, then swap it in atomically (unless swap=False)."""
    await live.open()
    try:
        target = await live.rebuild_target()
        await target.open()
        try:
            started = time.monotonic()
            events = await replay(target, bootstrap, progress)
            seconds = time.monotonic() - started
            generation = await live.swap_in(target) if swap else (await target.status()).generation
        finally:
            await target.close()
        return RebuildReport(live.name, events, seconds, generation)
    finally:
        await live.close()


@dataclass
class StatusReport:
    status: Status
    ends: Positions

    @property
    def lag(self) -> dict[int, int]:
        return {p: max(0, end - self.status.offsets.get(p, 0)) for p, end in sorted(self.ends.items())}


async def status(store: ProjectionStore, bootstrap: str) -> StatusReport:
    await store.open()
    try:
        return StatusReport(await store.status(), await end_offsets(bootstrap))
    finally:
        await store.close()


@dataclass
class RetryReport:
    applied: list[Parked]
    still_parked: list[Parked]


async def retry_parked(store: ProjectionStore, codec: Codec | None = None) -> RetryReport:
    """Re-apply parked events in log order; those that now apply leave the parking lot, the rest stay
    with their new reason. Re-applying is idempotent, so an event applied twice changes nothing."""
    codec = codec or get_codec()
    await store.open()
    try:
        applied, failed = [], []
        for parked in await store.parked():
            record = EventRecord(parked.partition, parked.offset, parked.value, parked.headers)
            try:
                record.event = codec.decode(parked.value, parked.headers, record_types(LEDGER_EVENTS))
                await store.reapply([record])
            except (DecodeError, ApplyError) as error:
                parked.reason = f"{'cannot decode: ' if isinstance(error, DecodeError) else ''}{error}"
                failed.append(parked)
                continue
            applied.append(parked)
        if failed:
            await store.park(failed)
        if applied:
            await store.unpark(applied)
        return RetryReport(applied, failed)
    finally:
        await store.close()
