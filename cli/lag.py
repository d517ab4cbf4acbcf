"""Consumer lag of every consumer group of the platform: `bank lag` (a table) and `bank lag --serve` (an exporter).

For each group and partition: the committed offset, the partition's end offset, the lag in messages, and
an estimated time lag: how long ago the oldest message the group has not consumed was written. Works on
real Kafka and on the embedded broker, which breaks on DescribeGroups for two groups in one request: this
module only asks for one group's committed offsets at a time (OffsetFetch), never for two groups at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from core.notifications import NOTIFIER_GROUP, NOTIFIER_TOPICS
from core.readmodel import PROJECTIONS, consumer_group
from core.settings import Settings
from core.audit import AUDIT_TRAIL_GROUP
from core.topics import AUDIT, LEDGER_COMMANDS, LEDGER_EVENTS, RISK_COMMANDS
from infra.kafka import create_admin_client, group_less_consumer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None      # None: the group has committed nothing on this partition yet
    end: int
    lag_seconds: float | None  # None: nothing waiting, or the waiting message could not be read

    @property
    def lag(self) -> int:
        return max(0, self.end - (self.committed or 0))


def platform_groups(settings: Settings) -> dict[str, list[str]]:
    """Every consumer group of the platform and the topics it consumes."""
    # the workers: the risk agent, the ledger agent and the transfer saga
    groups = {settings.worker_group: [RISK_COMMANDS, LEDGER_COMMANDS, LEDGER_EVENTS]}
    groups |= {consumer_group(name): [LEDGER_EVENTS] for name in PROJECTIONS}
    groups[AUDIT_TRAIL_GROUP] = [AUDIT]
    groups[NOTIFIER_GROUP] = list(NOTIFIER_TOPICS)
    return groups


async def collect(bootstrap: str, groups: dict[str, list[str]]) -> list[PartitionLag]:
    admin = create_admin_client(bootstrap)
    reader = group_less_consumer(bootstrap, isolation_level="read_uncommitted")   # ends: the high watermarks
    await admin.start()
    await reader.start()
    try:
        partitions = {topic: sorted(reader.partitions_for_topic(topic) or ())
                      for topic in {t for topics in groups.values() for t in topics}}
        all_tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
        ends = await reader.end_offsets(all_tps) if all_tps else {}
        rows = []
        for group, topics in groups.items():
            committed = await admin.list_consumer_group_offsets(group)  # one group per request
            for topic in topics:
                for partition in partitions[topic]:
                    tp = TopicPartition(topic, partition)
                    meta = committed.get(tp)
                    offset = meta.offset if meta is not None and meta.offset >= 0 else None
                    waiting = await _age_of(reader, tp, offset or 0) if ends[tp] > (offset or 0) else None
                    rows.append(PartitionLag(group, topic, partition, offset, ends[tp], waiting))
        return rows
    finally:
        await reader.stop()
        await admin.close()


async def _age_of(reader: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> float | None:
    """Seconds since the message at `offset` (the group's next one) was written, if it can be read."""
    reader.assign([tp])
    reader.seek(tp, offset)
    batch = await reader.getmany(tp, timeout_ms=1000, max_records=1)
    records = batch.get(tp) or []
    if not records:
        return None  # e.g. only a transaction marker is left
    return max(0.0, time.time() - records[0].timestamp / 1000)


class LagExporter:
    """Publishes collect()'s figures as Prometheus gauges, refreshed every `interval` seconds."""

    def __init__(self, settings: Settings, interval: float = 5.0) -> None:
        self.settings, self.interval = settings, interval
        self.registry = CollectorRegistry()
        labels = ["group", "topic", "partition"]
        self.committed = Gauge("bank_consumer_committed_offset", "Offset the consumer group committed",
                               labels, registry=self.registry)
        self.end = Gauge("bank_topic_end_offset", "End offset (high watermark) of the partition",
                         ["topic", "partition"], registry=self.registry)
        self.lag = Gauge("bank_consumer_lag_messages", "Messages the consumer group has not consumed yet",
                         labels, registry=self.registry)
        self.lag_seconds = Gauge("bank_consumer_lag_seconds", "Age of the oldest message the consumer group "
                                 "has not consumed (0 when it is caught up)", labels, registry=self.registry)
        self.errors = Counter("bank_lag_exporter_errors_total", "Failed lag collections",
                              registry=self.registry)
        self.last_success = Gauge("bank_lag_exporter_last_success_timestamp_seconds",
                                  "When lag was last collected successfully", registry=self.registry)

    def publish(self, rows: list[PartitionLag]) -> None:
        for row in rows:
            labels = (row.group, row.topic, str(row.partition))
            self.committed.labels(*labels).set(row.committed if row.committed is not None else -1)
            self.end.labels(row.topic, str(row.partition)).set(row.end)
            self.lag.labels(*labels).set(row.lag)
            self.lag_seconds.labels(*labels).set(row.lag_seconds or 0.0)
        self.last_success.set(time.time())

    async def run(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)
        log.info("lag exporter on http://%s:%s/metrics", host, port)
        groups = platform_groups(self.settings)
        while True:
            try:
                self.publish(await collect(self.settings.kafka, groups))
            except Exception as error:  # noqa: BLE001 - the exporter reports, it does not die
                self.errors.inc()
                log.warning("lag collection failed: %s: %s", type(error).__name__, error)
            await asyncio.sleep(self.interval)
