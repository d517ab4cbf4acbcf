"""The one batch engine: every agent's crash-safe order, written once (in the spirit of quixstreams' Checkpoint).

An agent declares the topic it reads and a decide function; `@agent(...)` registers it. Per batch the engine
  0. restores the tables' newly assigned partitions, if the batch is the first since a rebalance
     (streams/tables.py), and holds the tables through the batch (a restore waits for batches in flight),
  1. lets the agent catch up (`prepare`: the ledger folds the tail of its event log after a (re)assignment,
     into memory, and keeps it through the batch),
  2. completes the batch (streams/gaps.py: records a consumer skipped are read back),
  3. calls `decide(batch)`, which reads the agent's state and says what to emit and what state to keep,
  4. sends every record to emit and waits until the broker has acknowledged them all,
  5. keeps the state, and writes it to the tables' changelogs with the agent's next offsets: after every batch,
     or, for an agent with periodic snapshots (`snapshot_every`), periodically: first the state, acknowledged,
     then the positions it reflects, so a snapshot's position never runs ahead of it,
  6. returns; the worker's consumer (streams/consumer.py) commits offsets only as far as the changelogs reflect
     (`saved_offsets`): after the batch, or after the next snapshot. Under exactly_once the records of steps 4
     and 5 and the batch's offsets are one transaction instead.
A crash anywhere leaves records in the log that the snapshots may not reflect yet, and commands past the committed
offsets: they are read again and decided again against the state the snapshots hold (the ledger first folds its
event log's tail back in `prepare`, so it recognises the commands it had decided), alike, and whatever is sent
again is deduplicated downstream by id. A failed batch is retried whole (never skipped) after `reset`, and after
too many failures the worker crashes, so its supervisor restarts it from the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from core.retention import RetentionWindow
from infra.dead_letters import dead_letter_of
from streams import direct_producer
from streams.app import app, at_shutdown, settings
from streams.consumer import Transactions, next_offsets, worker_consumer
from streams.failpoints import failpoint
from streams.gaps import LazyReader, OffsetGuard
from streams.metrics import DEAD_LETTERS, EVENTS_PROCESSED, REMEMBERED_IDS
from streams.tables import Table, Tables, commands_table, flush, put, tables

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# An agent with periodic snapshots that has had no batch for this long snapshots what it has not saved yet.
QUIET_BEFORE_SNAPSHOT = timedelta(seconds=1)
Headers = list[tuple[str, bytes]]
DELETED = object()   # a kept value that deletes its key
ABSENT = object()    # a key the table's changelog does not hold
Unsaved = tuple[Table, int, Any]   # a key kept in memory only: its table, its partition, the changelog's value


@dataclass(slots=True)
class Outgoing:
    """A record to send: under exactly_once, `transactional` ones are part of the batch's transaction; the others
    go through the direct producer (streams/direct_producer.py)."""
    topic: str
    value: bytes | None
    key: bytes | None
    headers: Headers
    partition: int | None = None
    transactional: bool = False


@dataclass
class Batch:
    """One batch of an agent: the records it read, and what deciding them produced."""
    records: list[Any]
    outgoing: list[Outgoing] = field(default_factory=list)
    kept: dict[tuple[str, str], tuple[Table, int, Any]] = field(default_factory=dict)
    positions: dict[tuple[str, str], tuple[Table, int, Any]] = field(default_factory=dict)
    acknowledged: list[Callable[[list[Any]], None]] = field(default_factory=list)
    chunks: dict[int, dict[int, tuple[str, dict[str, Any]]]] = field(default_factory=dict)   # RememberedIds'

    def emit(self, topic: str, value: bytes | None, key: bytes | None, headers: Headers,
             partition: int | None = None, transactional: bool = False) -> None:
        self.outgoing.append(Outgoing(topic, value, key, headers, partition, transactional))

    def dead_letter(self, topic: str, record: Any, error: Exception) -> None:
        """The record, with the error in its headers, onto the dead-letter topic: the agent goes on."""
        letter = dead_letter_of(record, error, settings.max_command_bytes)
        log.warning("dead-lettering %s/%s/%s: %s", record.topic, record.partition, record.offset,
                    dict(letter.headers)["dlq.error"].decode())
        DEAD_LETTERS.labels(topic).inc()
        self.emit(topic, letter.value, letter.key, letter.headers)

    def value(self, table: Table, key: str) -> Any:
        """The key's value as this batch leaves it so far: what the batch keeps, else the table's (None: no key).
        Agents read state through here, so a batch that fails leaves the tables' memory as it found it."""
        kept = self.kept.get((table.name, key))
        if kept is None:
            return table.data.get(key)
        return None if kept[2] is DELETED else kept[2]

    def keep(self, table: Table, partition: int, key: str, value: Any) -> None:
        """State to keep once the batch's records are acknowledged; its changelog goes to `partition`."""
        self.kept[(table.name, key)] = (table, partition, value)

    def drop(self, table: Table, partition: int, key: str) -> None:
        """A key to delete (a tombstone on its changelog) once the batch's records are acknowledged."""
        self.kept[(table.name, key)] = (table, partition, DELETED)

    def keep_position(self, table: Table, partition: int, key: str, value: Any) -> None:
        """A position the kept state reflects (how far a log is folded in): stored only after that state."""
        self.positions[(table.name, key)] = (table, partition, value)

    def on_acknowledged(self, callback: Callable[[list[Any]], None]) -> None:
        """`callback(metadata of every record sent)`, once they are all acknowledged, before the state is kept."""
        self.acknowledged.append(callback)


Decide = Callable[[Batch], Awaitable[None]]
# Before a batch is decided: catch the partitions' state up (into memory, and kept through the batch).
Prepare = Callable[[set[int], Batch], Awaitable[None]]


class BatchAgent:
    def __init__(self, name: str, topic: str, decide: Decide, *, offsets_key: str | None,
                 prepare: Prepare | None = None,
                 reset: Callable[[set[int]], None] | None = None,
                 snapshot_every: timedelta | None = None, tables: Tables = tables) -> None:
        self.name, self.topic, self.decide = name, topic, decide
        self.tables = tables
        self.transactions = Transactions(name) if settings.processing_guarantee == "exactly_once" else None
        self.offsets_key = offsets_key
        self.prepare, self.reset = prepare, reset
        # Periodic snapshots would let an exactly_once commit run ahead of its state: there every batch writes them.
        periodic = snapshot_every and settings.processing_guarantee == "at_least_once"
        self.snapshot_every = snapshot_every if periodic else None
        self.guard = None if offsets_key is None else OffsetGuard(
            topic, lambda p: commands_table.get(offsets_key.format(p)), LazyReader(settings.kafka, "read_committed"))
        # Kept in memory, not yet in the changelog: key -> (table, partition, the value the changelog holds).
        self._unsaved: dict[tuple[str, str], Unsaved] = {}
        self._unsaved_positions: dict[tuple[str, str], Unsaved] = {}
        self._saved_at = self._last_batch_at = time.monotonic()
        # How far each partition's records are reflected in the changelogs: what the consumer may commit (a record
        # past it is read again after a restart, and decided again against the state the changelogs hold).
        self.saved_offsets: dict[int, int] = {}
        self._unsaved_offsets: dict[int, int] = {}
        self._lock = asyncio.Lock()   # snapshots and rebalances between batches, never inside one
        self.owned: set[int] | None = None   # this worker's partitions of the topic (None: not assigned yet)

    # ------------------------------------------------------------ one batch

    async def handle(self, records: Sequence[Any]) -> None:
        async with self._lock:
            if self.owned is not None:
                # A batch taken (or retried) across a rebalance: a partition revoked meanwhile is its new owner's.
                records = [record for record in records if record.partition in self.owned]
            if records:
                self._last_batch_at = time.monotonic()
                async with self.tables.held({r.partition for r in records}):
                    await self._handle(records)

    async def _handle(self, records: Sequence[Any]) -> None:
        if self.transactions is None:
            await self._decide_and_keep(records, None)
            return
        try:
            async with self.transactions.batch(records) as producer:
                await self._decide_and_keep(records, producer)
        except Exception:
            # The aborted transaction took the batch's changelog records with it, while memory kept the batch's
            # state (the ledger's ids would call its commands decided): the retry restores them from the
            # changelogs first (read committed), and the ledger folds its event log's tail again.
            self.tables.forget({record.partition for record in records})
            raise

    async def _decide_and_keep(self, records: Sequence[Any], producer: AIOKafkaProducer | None) -> None:
        batch = Batch(list(records))
        if self.prepare is not None:
            await self.prepare({r.partition for r in records}, batch)
        if self.guard is not None:
            batch.records = await self.guard.complete(records)
        await self.decide(batch)
        delivered = await asyncio.gather(*[await self._send(out, producer) for out in batch.outgoing])
        failpoint(f"after_{self.name}_acked")
        for callback in batch.acknowledged:
            callback(delivered)
        EVENTS_PROCESSED.labels(self.name).inc(len(batch.records))
        if self.guard is not None:
            for partition, next_offset in self.guard.advance(batch.records).items():
                batch.keep_position(commands_table, partition, self.offsets_key.format(partition), next_offset)
        await self._keep(batch, producer)

    async def _send(self, out: Outgoing, producer: AIOKafkaProducer | None) -> Any:
        if out.transactional and producer is not None:
            return await producer.send(out.topic, out.value, key=out.key, headers=out.headers,
                                       partition=out.partition)
        return await direct_producer.send(out.topic, out.value, out.key, out.headers, out.partition)

    async def _keep(self, batch: Batch, producer: AIOKafkaProducer | None) -> None:
        if self.snapshot_every is None:
            for table, partition, key, value in _entries(batch.kept, batch.positions):
                put(table, partition, key, None if value is DELETED else value)
            await flush(producer)
            self.saved_offsets.update(next_offsets(batch.records))
            return
        self._unsaved_offsets.update(next_offsets(batch.records))
        _remember(batch.kept, self._unsaved)
        _remember(batch.positions, self._unsaved_positions)
        if time.monotonic() - self._saved_at >= self.snapshot_every.total_seconds():
            await self._snapshot()

    async def snapshot_when_idle(self) -> None:
        """A quiet agent's last batches are snapshotted too, so a restart after a quiet spell folds nothing."""
        if self._unsaved or self._unsaved_positions or self._unsaved_offsets:
            async with self._lock:
                await self._snapshot()

    async def snapshot_when_quiet(self) -> None:
        """Once no batch has come for QUIET_BEFORE_SNAPSHOT: an agent that has gone quiet snapshots at once, not
        only when its interval is up, so a crash after the traffic stops leaves nothing to fold or score again
        (under steady traffic `_keep` snapshots by the interval)."""
        if time.monotonic() - self._last_batch_at >= QUIET_BEFORE_SNAPSHOT.total_seconds():
            await self.snapshot_when_idle()

    async def _snapshot(self) -> None:
        """Write what changed since the last snapshot: the state, acknowledged, then the positions it reflects. A
        failed write leaves it all unsaved (written again next time), and no position is written past its state."""
        for unsaved in (self._unsaved, self._unsaved_positions):
            entries = list(unsaved.items())
            for (_, key), (table, partition, _) in entries:
                put(table, partition, key, table.data.get(key))   # None, a deleted key: its tombstone
            await flush()
            for name_and_key, _ in entries:
                del unsaved[name_and_key]
        self.saved_offsets.update(self._unsaved_offsets)
        self._unsaved_offsets.clear()
        self._saved_at = time.monotonic()

    # ------------------------------------------------------------ retries, rebalances, registration

    async def handle_with_retry(self, records: Sequence[Any]) -> None:
        """Never skips a batch: retried with backoff after `reset`; after MAX_ATTEMPTS the worker crashes."""
        partitions = {r.partition for r in records}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                await self.handle(records)
                return
            except Exception as error:
                if attempt == MAX_ATTEMPTS:
                    log.critical("%s batch failed %s times, crashing the worker: %r", self.name, attempt, error)
                    await app.crash(error)
                    raise
                log.warning("%s batch failed (attempt %s), retrying: %r", self.name, attempt, error)
                if self.reset is not None:
                    self.reset(partitions)
                await asyncio.sleep(min(0.1 * 2**attempt, 5.0))

    async def revoked(self, partitions: set[int]) -> None:
        """What a revoked partition's batches changed since the last snapshot is not ours to write any more (its
        next owner folds it back from the log; a late write of ours could land between its state and its
        position), and memory goes back to what the changelog holds: the partition may come back to us, and a
        memory ahead of its changelog would make the next snapshot store a position past state never stored."""
        async with self._lock:
            if self.owned is not None:
                self.owned -= partitions
            for partition in partitions:   # the consumer has committed the saved ones: the next owner's now
                self.saved_offsets.pop(partition, None)
                self._unsaved_offsets.pop(partition, None)
            for unsaved in (self._unsaved, self._unsaved_positions):
                for name_and_key in [k for k, (_, partition, _) in unsaved.items() if partition in partitions]:
                    table, _, saved = unsaved.pop(name_and_key)
                    key = name_and_key[1]
                    if saved is ABSENT:
                        table.data.pop(key, None)
                    else:
                        table.data[key] = saved
            self._forget(partitions)

    async def assigned(self, partitions: set[int]) -> None:
        # A rebalance may hand us a partition another worker wrote to: its tables, restored, know better than memory.
        async with self._lock:
            self.owned = set(partitions)
            self.tables.assigned(self.owned)
            self._forget(partitions)

    def _forget(self, partitions: set[int]) -> None:
        if self.guard is not None:
            self.guard.forget()
        if self.reset is not None:
            self.reset(partitions)

    def register(self) -> None:
        worker_consumer.add(self)
        if self.transactions is not None:
            at_shutdown(self.transactions.stop)
        if self.snapshot_every is not None:
            app.timer(QUIET_BEFORE_SNAPSHOT.total_seconds(), name=f"streams.{self.name}.snapshot")(
                self.snapshot_when_quiet)


class RememberedIds:
    """The ids an agent has handled, each kept for BANK_PROCESSED_RETENTION (core/retention.py): a retry inside the
    window is recognised; past it the id goes, so the table stays flat.

    Stored in chunks, one table key per partition and batch (`__ids__/<partition>/<kept at, epoch seconds>/<first id>` ->
    {"at": kept at, "ids": {id: value}}): one changelog record per partition and batch instead of one per id, and
    a whole chunk expires at once. In memory, one dict of every id, rebuilt from the chunks after a restore."""

    PREFIX = "__ids__/"

    def __init__(self, table: Table, window: timedelta) -> None:
        self.table = table
        self.window = RetentionWindow(int(window.total_seconds()))   # of chunk keys
        self.ids: dict[str, Any] = {}                             # id -> value
        self._chunk_of: dict[str, list[str]] = {}                 # chunk key -> its ids
        self._stale = True   # the table was (re)stored from its changelog: rebuilt before use
        self._restores = table.restores

    def __contains__(self, id_: str) -> bool:
        return id_ in self._known_ids()

    def value(self, id_: str) -> Any:
        return self._known_ids().get(id_)

    def remember(self, batch: Batch, partition: int, id_: str, at: int, value: Any = None) -> None:
        """Kept with the batch: recognised once its records are acknowledged (a failed batch is decided again)."""
        self._known_ids()
        key, chunk = self._chunk(batch, partition, id_, at)
        chunk["ids"][id_] = value
        if len(chunk["ids"]) == 1:
            batch.on_acknowledged(lambda delivered: self._known(key, chunk))

    def recovered(self, batch: Batch, partition: int, id_: str, at: int) -> None:
        """An id whose outcome is already in the log: recognised at once, kept with the batch."""
        self.remember(batch, partition, id_, at)
        self.ids[id_] = None

    def forget_expired(self, batch: Batch, now: int) -> int:
        self._known_ids()
        expired = self.window.expired(now)
        for key, partition in expired:
            for id_ in self._chunk_of.pop(key, ()):
                self.ids.pop(id_, None)
            if partition < 0:   # an id stored before ids had chunks: no partition to write its tombstone to
                self.table.data.pop(key, None)
            else:
                batch.drop(self.table, partition, key)
        REMEMBERED_IDS.labels(self.table.name).set(len(self.ids))   # as of the batch before: flat once ids expire
        return len(expired)

    def restored(self) -> None:
        self._stale = True

    def _chunk(self, batch: Batch, partition: int, id_: str, at: int) -> tuple[str, dict[str, Any]]:
        """This batch's chunk of `partition` (its key, its stored value), started with `id_` if it has none yet."""
        chunks = batch.chunks.setdefault(id(self), {})
        if partition not in chunks:
            key = f"{self.PREFIX}{partition}/{at}/{id_}"
            chunks[partition] = (key, {"at": at, "ids": {}})
            batch.keep(self.table, partition, key, chunks[partition][1])
            self.window.add(at, key, partition)
        return chunks[partition]

    def _known(self, key: str, chunk: dict[str, Any]) -> None:
        self.ids.update(chunk["ids"])
        self._chunk_of.setdefault(key, []).extend(chunk["ids"])

    def _known_ids(self) -> dict[str, Any]:
        if self._stale or self._restores != self.table.restores:
            self._restores = self.table.restores
            self._rebuild(int(time.time()))
        return self.ids

    def _rebuild(self, now: int) -> None:
        self.ids.clear()
        self._chunk_of.clear()
        kept: list[tuple[int, str, int]] = []
        for key, stored in list(self.table.data.items()):
            if key.startswith(self.PREFIX):
                self.ids.update(stored["ids"])
                self._chunk_of[key] = list(stored["ids"])
                kept.append((int(stored["at"]), key, int(key[len(self.PREFIX):].split("/", 1)[0])))
            elif not key.startswith("__"):   # one id per key, kept before chunks: as if kept now
                self.ids[key] = None
                self._chunk_of[key] = [key]
                kept.append((now, key, -1))
        self.window.rebuild(kept)
        self._stale = False


def agent(topic: str, *, name: str, offsets_key: str | None,
          prepare: Prepare | None = None,
          reset: Callable[[set[int]], None] | None = None,
          snapshot_every: timedelta | None = None) -> Callable[[Decide], BatchAgent]:
    """Declares a batch agent: `@agent(TOPIC, name=..., offsets_key=...)` over `async def decide(batch)`.

    `offsets_key`: the commands-table key (formatted with the partition) of the agent's next expected offset, for
    the guard against skipped records; None under exactly_once on a topic with transaction markers."""
    def register(decide: Decide) -> BatchAgent:
        batch_agent = BatchAgent(name, topic, decide, offsets_key=offsets_key, prepare=prepare, reset=reset,
                                 snapshot_every=snapshot_every)
        batch_agent.register()
        return batch_agent
    return register


def _entries(*groups: dict[tuple[str, str], tuple[Table, int, Any]]) -> Iterable[tuple[Table, int, str, Any]]:
    for group in groups:
        for (_, key), (table, partition, value) in group.items():
            yield table, partition, key, value


def _remember(kept: dict[tuple[str, str], tuple[Table, int, Any]],
              unsaved: dict[tuple[str, str], Unsaved]) -> None:
    """Into the table's memory now (the next batch reads it), into its changelog at the next snapshot; the value
    the changelog holds is remembered until then, for a revoke to put back."""
    for (name, key), (table, partition, value) in kept.items():
        if (name, key) not in unsaved:
            unsaved[(name, key)] = (table, partition, table.data.get(key, ABSENT))
        if value is DELETED:
            table.data.pop(key, None)
        else:
            table.data[key] = value
