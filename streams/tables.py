"""The batch engine's tables: state in memory, per partition of the agents' topics, with a compacted changelog topic
each, restored by batched reads instead of through Faust.

Faust's tables restore through its per-event path, and with the memory store from offset 0 of every changelog:
about 7,500 records/s here, so a worker killed with 160,000 ledger events on the log decided again only after
57 s. These read their changelogs with aiokafka's batched fetches (infra/kafka.py `read_topic`), all tables at
once, when the first batch after a rebalance needs them (streams/checkpoint.py): every newly assigned partition,
each key's last value decoded once. A partition kept across a rebalance keeps its memory (a revoke has put it
back to what the changelog holds).

Every table is co-partitioned with the agents' topics: a key's changelog partition is the partition of the message
that changed it (`put`), and all of them have the same partition count, so a worker owning partition p of one
agent's topic owns p of the others' (the worker's consumer assigns by ranges: streams/consumer.py).
Keys and values are JSON, as Faust encoded them, so a changelog Faust's tables wrote restores as well.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer

from core.ledger import AccountState
from infra.kafka import read_topic
from streams import direct_producer
from streams.app import settings
from streams.metrics import TABLE_RESTORE_SECONDS, TABLE_RESTORED_RECORDS

log = logging.getLogger(__name__)

# Changelog records put() has encoded and flush() has not sent yet: (changelog topic, partition, key, value).
_pending: list[tuple[str, int, bytes, bytes | None]] = []


Codec = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


class Table:
    """One table: `data` in memory (key -> value), `changelog_topic` its snapshots (JSON). A table of domain objects
    says how one becomes JSON-able (`encode`) and back (`decode`): memory holds the objects (immutable), so agents
    neither decode nor encode them per batch; a snapshot encodes each key it writes, a restore decodes each key's
    last value once (at 1,000 transfers/s the risk agent spent a third of its time on per-batch to_dict/from_dict)."""

    def __init__(self, name: str, help: str, encode: Codec = _same, decode: Codec = _same) -> None:
        self.name = name
        self.help = help
        self.encode, self.decode = encode, decode
        self.changelog_topic = f"{settings.app_id}-{name}-changelog"
        self.data: dict[str, Any] = {}
        self.restores = 0   # how many restores changed `data`: what is built from it (RememberedIds) is rebuilt

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def apply(self, records: list[Any]) -> int:
        """Fold changelog records in, in offset order: a tombstone (no value) deletes its key. Returns how many."""
        latest: dict[bytes, bytes | None] = {}
        count = keep_last(latest, records)
        self.load(latest)
        return count

    def load(self, latest: dict[bytes, bytes | None]) -> None:
        """Take each key's last changelog value (None: a tombstone, the key goes). Only last values are decoded:
        a key snapshotted a hundred times is decoded once (the broker here does not compact)."""
        for key, value in latest.items():
            if value is None:
                self.data.pop(json.loads(key), None)
            else:
                self.data[json.loads(key)] = self.decode(json.loads(value))
        self.restores += 1


def keep_last(latest: dict[bytes, bytes | None], records: list[Any]) -> int:
    """Each record's key takes its value, still encoded (the last one wins); returns how many records."""
    latest.update((record.key, record.value) for record in records)
    return len(records)


class Tables:
    """Every table of this worker, and which partitions are restored since they were assigned."""

    def __init__(self) -> None:
        self.tables: list[Table] = []
        self.restored: set[int] = set()
        self.assignment: set[int] = set()   # this worker's partitions, as the last rebalance gave them
        self._lock = asyncio.Lock()
        self._batches = 0              # batches holding the tables now
        self._idle = asyncio.Event()   # set while no batch holds them
        self._idle.set()

    def table(self, name: str, help: str, encode: Codec = _same, decode: Codec = _same) -> Table:
        table = Table(name, help, encode, decode)
        self.tables.append(table)
        return table

    def assigned(self, partitions: set[int]) -> None:
        """A partition no longer ours may be written by another worker meanwhile: read again if it comes back."""
        self.restored &= partitions
        self.assignment = set(partitions)

    def forget(self, partitions: set[int]) -> None:
        """Memory of these partitions is not what their changelogs hold: read them again before the next batch."""
        self.restored -= partitions

    @asynccontextmanager
    async def held(self, partitions: set[int]) -> AsyncIterator[None]:
        """Held by an agent through each batch, after restoring the partitions not restored since their assignment:
        the batch's, and with them every other assigned one, so a rebalance costs one read of the changelogs
        (not one per partition as batches reach them) and a worker is whole before it decides.

        A restore waits until no batch holds the tables: it changes what agents built from them (RememberedIds
        rebuilds its ids from `data`), and a batch that is folding the log's tail into state kept with the batch
        only would lose it to a rebuild in its middle (seen under `bank chaos`: a command folded back from the
        log, then decided a second time)."""
        async with self._lock:   # one restore at a time; a batch waiting for one starts after it
            missing = (partitions | self.assignment) - self.restored
            if missing:
                await self._idle.wait()
                await self._restore(missing)
                self.restored |= missing
            self._batches += 1
            self._idle.clear()
        try:
            yield
        finally:
            self._batches -= 1
            if self._batches == 0:
                self._idle.set()

    async def _restore(self, partitions: set[int]) -> None:
        started = time.monotonic()
        counts = dict.fromkeys((table.name for table in self.tables), 0)
        latest: dict[str, dict[bytes, bytes | None]] = {table.name: {} for table in self.tables}

        def folder(table: Table) -> Callable[[list[Any]], None]:
            def fold(records: list[Any]) -> None:
                counts[table.name] += keep_last(latest[table.name], records)
            return fold

        await asyncio.gather(*[read_topic(settings.kafka, table.changelog_topic, partitions=partitions,
                                          sink=folder(table)) for table in self.tables])
        for table in self.tables:
            table.load(latest[table.name])
        seconds = time.monotonic() - started
        TABLE_RESTORE_SECONDS.set(seconds)
        for name, count in counts.items():
            TABLE_RESTORED_RECORDS.labels(name).inc(count)
        log.info("restored partitions %s of the tables in %.2f s: %s changelog records", sorted(partitions),
                 seconds, counts)


tables = Tables()


def put(table: Table, partition: int, key: str, value: Any) -> None:
    """Set a table key (None: delete it), and queue its changelog record for `flush`, to `partition`: the
    partition of the message that changed it, so the changelog stays co-partitioned with the agent's topic."""
    if value is None:   # a deleted key: a tombstone on the changelog, which compaction and restores drop
        table.data.pop(key, None)
    else:
        table.data[key] = value
    encoded = None if value is None else json.dumps(table.encode(value)).encode()
    _pending.append((table.changelog_topic, partition, json.dumps(key).encode(), encoded))


async def flush(producer: AIOKafkaProducer | None = None) -> None:
    """Send the changelog records put() queued, and wait until the broker has them (and every one sent so far):
    an agent calls it at the end of a batch or a snapshot, before the batch's offsets may be committed.

    at_least_once: through the direct producer, batched. exactly_once: through `producer`, the transactional
    producer of the batch (streams/consumer.py Transactions), so they commit or abort with the batch's offsets."""
    records = list(_pending)
    _pending.clear()
    if producer is not None:
        await asyncio.gather(*[await producer.send(topic, value, key=key, partition=partition)
                               for topic, partition, key, value in records])
        return
    await direct_producer.send_all(records)


# The ledger's tables: snapshots, written only after the events they reflect are acknowledged by the broker.
accounts_table = tables.table("accounts", help="account id -> AccountState", encode=AccountState.to_dict,
                              decode=AccountState.from_dict)
commands_table = tables.table("commands", help="processed command ids (in chunks); __position__/<p> -> next event "
                                                "offset to catch up from; each agent's next expected command offset")
