"""Runs one projection: a consumer group on the event log feeding batches into a ProjectionStore.

The store's own offsets are the truth. On assignment the runner seeks to them; after every batch it seeks
to what the store reports, so a rewind of the stored offsets (to re-apply events) or a rebuilt model swapped
in underneath is followed without a restart. Offsets are also committed to the consumer group, where
operators' lag tools look for them; nothing reads them back.

Failures: a record that cannot be decoded, or that the store cannot apply, is parked with the reason and
the projection goes on. Anything else (a database down) is retried with backoff, forever, recorded as
the projection's last error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from core.readmodel import Positions, consumer_group
from core.topics import LEDGER_EVENTS
from infra.kafka import create_consumer
from infra.logs import trace_of
from streams.metrics import (PROJECTION_APPLIED, PROJECTION_APPLY, PROJECTION_BATCH, PROJECTION_ERRORS,
                             PROJECTION_LAG, PROJECTION_PARKED)
from streams.projections.base import ApplyError, EventRecord, Parked, ProjectionStore

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_MAX = 5000
FETCH_TIMEOUT_MS = 200
IDLE_RECHECK_S = 1.0          # while idle, look at the stored offsets this often (to notice a rewind)
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class ProjectionRunner:
    def __init__(self, store: ProjectionStore, bootstrap: str, instance_id: str) -> None:
        self.store = store
        self.name = store.name
        self._consumer = create_consumer(
            bootstrap=bootstrap,
            group_id=consumer_group(store.name),
            # Static membership: the embedded broker never evicts a member that died without leaving.
            group_instance_id=f"{instance_id}-{store.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=BATCH_MAX,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self._known: Positions = {}
        self._last_apply = 0.0
        self.applied = 0      # events applied since start (for logs and benchmarks)

    async def run(self, stop: asyncio.Event) -> None:
        await self.store.open()
        await self._consumer.start()
        self._consumer.subscribe([LEDGER_EVENTS], listener=_SeekToStored(self))
        log.info("projection %s: started", self.name)
        try:
            while not stop.is_set():
                await self._step()
        finally:
            await self._consumer.stop()
            await self.store.close()
            log.info("projection %s: stopped after %s event(s)", self.name, self.applied)

    async def seek_to_stored(self, assigned: Iterable[TopicPartition]) -> None:
        stored = await _retrying(self.store, self.store.offsets)
        self._known = dict(stored)
        for tp in assigned:
            self._consumer.seek(tp, stored.get(tp.partition, 0))

    async def _step(self) -> None:
        assignment = self._consumer.assignment()
        if not assignment:
            await asyncio.sleep(0.1)
            return
        starts = {tp.partition: await self._consumer.position(tp) for tp in assignment}
        batches = await self._consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=BATCH_MAX)
        records = [EventRecord.decode(tp.partition, r.offset, r.value, r.headers)
                   for tp, rs in batches.items() if tp.partition in starts for r in rs]
        current = {tp.partition for tp in self._consumer.assignment()}
        ends = {tp.partition: await self._consumer.position(tp) for tp in assignment if tp.partition in current}
        starts = {p: o for p, o in starts.items() if p in ends}
        idle = not records and ends == self._known
        if idle and time.monotonic() - self._last_apply < IDLE_RECHECK_S:
            return
        started = time.monotonic()
        stored = await apply_batch(self.store, records, starts, ends)
        self._last_apply = time.monotonic()
        self.applied += len(records)
        if records:
            self._log_applied(records, stored)
            PROJECTION_BATCH.labels(self.name).observe(len(records))
            PROJECTION_APPLY.labels(self.name).observe(self._last_apply - started)
            PROJECTION_APPLIED.labels(self.name).inc(len(records))
        self._publish_lag(stored)
        for partition, offset in stored.items():
            if partition in ends and offset != ends[partition]:
                log.info("projection %s: partition %s continues at stored offset %s (read up to %s)",
                         self.name, partition, offset, ends[partition])
                self._consumer.seek(TopicPartition(LEDGER_EVENTS, partition), offset)
        self._known = {p: stored.get(p, ends[p]) for p in ends}
        await self._commit(self._known)

    def _log_applied(self, records: list[EventRecord], stored: Positions) -> None:
        """One DEBUG line per event (with its trace id, to follow a command into the read models)."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        for r in records:
            if r.event is not None and r.offset < stored.get(r.partition, 0):
                log.debug("event applied", extra=_record_fields(self.name, r))

    def _publish_lag(self, stored: Positions) -> None:
        behind = 0
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)   # the log's end as of the last fetch
            if highwater is not None:
                behind += max(0, highwater - stored.get(tp.partition, highwater))
        PROJECTION_LAG.labels(self.name).set(behind)

    async def _commit(self, positions: Positions) -> None:
        assigned = {tp.partition for tp in self._consumer.assignment()}
        offsets = {TopicPartition(LEDGER_EVENTS, p): OffsetAndMetadata(o, "") for p, o in positions.items()
                   if p in assigned}
        try:
            await self._consumer.commit(offsets)
        except KafkaError as error:  # informational only (lag monitoring); the store holds the truth
            log.debug("projection %s: offset commit skipped: %s", self.name, error)


async def apply_batch(store: ProjectionStore, records: list[EventRecord], starts: Positions,
                      ends: Positions) -> Positions:
    """Park what cannot be decoded, then apply the batch; on ApplyError isolate and park the culprits.

    Used by the live runner and by rebuilds, so both treat poison events alike."""
    name = store.name
    undecodable = [Parked.of(r, f"cannot decode: {r.error}") for r in records if r.event is None]
    if undecodable:
        await _retrying(store, store.park, undecodable)
        PROJECTION_PARKED.labels(name).inc(len(undecodable))
        for record in records:
            if record.event is None:
                log.error("parked an undecodable event: %s", record.error, extra=_record_fields(name, record))
    decoded = [r for r in records if r.event is not None]
    try:
        return await _retrying(store, store.apply, decoded, starts, ends)
    except ApplyError as error:
        log.warning("projection %s: batch failed (%s); applying one event at a time", name, error)
        return await _apply_one_by_one(store, decoded, starts, ends)


async def _apply_one_by_one(store: ProjectionStore, records: list[EventRecord], starts: Positions,
                            ends: Positions) -> Positions:
    name = store.name
    positions = dict(starts)
    stored: Positions = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        p = record.partition
        single_start, single_end = {p: positions[p]}, {p: record.offset + 1}
        try:
            stored |= await _retrying(store, store.apply, [record], single_start, single_end)
        except ApplyError as error:
            await _retrying(store, store.park, [Parked.of(record, str(error))])
            PROJECTION_PARKED.labels(name).inc()
            await _retrying(store, store.record_error, f"parked {p}:{record.offset}: {error}")
            log.error("parked an event the store cannot apply: %s", error, extra=_record_fields(name, record))
            stored |= await _retrying(store, store.apply, [], single_start, single_end)
        positions[p] = stored.get(p, record.offset + 1)
    return stored | await _retrying(store, store.apply, [], positions, ends)


def _record_fields(projection: str, record: EventRecord) -> dict[str, Any]:
    event = record.event
    return {"projection": projection, "partition": record.partition, "offset": record.offset,
            "trace_id": trace_of(record.headers), "event_id": event.event_id if event else None,
            "event_type": type(event).__name__ if event else record.schema_name,
            "command_id": event.command_id if event else None}


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, runner: ProjectionRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass  # every batch is applied atomically with its offsets: nothing to flush

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._runner.seek_to_stored(assigned)


async def _retrying(store: ProjectionStore, call: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Await `call(*args)` until it succeeds or raises ApplyError; other failures are transient: back off, retry."""
    name = store.name
    attempt = 0
    while True:
        try:
            return await call(*args)
        except ApplyError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - a store outage must not kill the projection
            PROJECTION_ERRORS.labels(name).inc()
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            attempt += 1
            message = f"{type(error).__name__}: {error}"
            log.warning("projection %s: %s; retrying in %.1fs (attempt %s)", name, message, delay, attempt)
            try:
                await store.record_error(message)
            except Exception:  # noqa: BLE001 - the store that failed may not take the error either
                pass
            await asyncio.sleep(delay)
