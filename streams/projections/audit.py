"""The audit trail: bank.audit folded into MongoDB's audit_trail collection (GET /v1/admin/audit reads it).

Its own consumer group on its own topic, run by the projection worker beside the ledger's projections. Each
batch is upserted by event id (storing a record twice changes nothing), then its offsets are committed to the
group: a crash in between re-delivers records that change nothing. A record this version cannot decode is
logged and skipped (it stays on the topic, which is the record; a later version can re-read it by resetting
the group).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError
from pymongo import ASCENDING, AsyncMongoClient, IndexModel, ReplaceOne
from pymongo.errors import PyMongoError

from core.audit import AUDIT_TRAIL_COLLECTION, AUDIT_TRAIL_GROUP, AUDIT_TRAIL_INDEXES, AuditRecorded, audit_document
from core.readmodel import MONGO_DB
from core.topics import AUDIT
from infra.kafka import create_consumer
from infra.topics import record_types
from schemas.codec import DecodeError, get_codec

log = logging.getLogger(__name__)

BATCH_MAX = 1000
FETCH_TIMEOUT_MS = 500
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class AuditTrailProjection:
    name = "audit-trail"

    def __init__(self, bootstrap: str, mongo_url: str, instance_id: str, database: str = MONGO_DB) -> None:
        self._consumer = create_consumer(
            AUDIT, bootstrap=bootstrap, group_id=AUDIT_TRAIL_GROUP,
            group_instance_id=f"{instance_id}-audit-trail",   # static membership, like the other projections
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
            max_poll_records=BATCH_MAX)
        self._mongo: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
        self._collection = self._mongo[database][AUDIT_TRAIL_COLLECTION]
        self._codec = get_codec()
        self.applied = 0

    async def run(self, stop: asyncio.Event) -> None:
        await self._collection.create_indexes([IndexModel([(f, ASCENDING) for f in keys])
                                               for keys in AUDIT_TRAIL_INDEXES])
        await self._consumer.start()
        log.info("projection %s: started", self.name)
        try:
            while not stop.is_set():
                await self._step()
        finally:
            await self._consumer.stop()
            await self._mongo.close()
            log.info("projection %s: stopped after %s record(s)", self.name, self.applied)

    async def _step(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=BATCH_MAX)
        writes = []
        for tp, records in batches.items():
            for record in records:
                try:
                    audit = self._codec.decode(record.value, record.headers, record_types(AUDIT))
                except DecodeError as error:   # unreadable, or not an audit record
                    log.error("audit trail: skipped a record %s/%s: %s", tp.partition, record.offset, error)
                    continue
                if isinstance(audit, AuditRecorded):
                    doc = audit_document(audit, tp.partition, record.offset)
                    writes.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
        if not batches:
            return
        await self._write(writes)
        self.applied += len(writes)
        try:
            await self._consumer.commit()
        except KafkaError as error:   # the records are stored; a re-delivery changes nothing
            log.warning("audit trail: offset commit failed: %s", error)

    async def _write(self, writes: list[ReplaceOne]) -> None:
        """Retry a MongoDB outage with backoff, forever: the offsets move only after the records are stored."""
        attempt = 0
        while writes:
            try:
                await self._collection.bulk_write(writes, ordered=False)
                return
            except PyMongoError as error:
                delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                attempt += 1
                log.warning("audit trail: %s; retrying in %.1fs (attempt %s)", error, delay, attempt)
                await asyncio.sleep(delay)
