"""The Faust app, its topics and tables. `python -m streams` runs one worker."""

from __future__ import annotations

from typing import Any

import faust

from core.settings import Settings, get_settings
from core.topics import LEDGER_COMMANDS
from infra import kafka_fetch
from infra.kafka_security import faust_credentials
from infra.logs import logging_config
from infra.topics import load_registry
from streams.broker_workarounds import static_membership
from streams.metrics import exposition


def create_app(settings: Settings) -> faust.App:
    kafka_fetch.install_for(settings)
    registry = load_registry(settings.topics_file, settings.topic_replication)
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka}",
        broker_credentials=faust_credentials(settings),   # Kafka security; None for PLAINTEXT
        store="memory://",  # tables are rebuilt from their changelog topics; the event log is the record
        datadir=str(settings.home / "streams" / settings.worker_id),
        processing_guarantee=settings.processing_guarantee,
        broker_commit_interval=settings.commit_interval,
        topic_partitions=registry[LEDGER_COMMANDS].partitions,
        topic_replication_factor=registry[LEDGER_COMMANDS].replication,
        consumer_auto_offset_reset="earliest",
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_in_thread=False,
        producer_acks=-1,
        stream_wait_empty=False,
        logging_config=logging_config("ledger-worker", settings.log_level),
        **static_membership(settings.worker_id),
    )


settings = get_settings()
app = create_app(settings)


def raw_topic(name: str) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

# Snapshots of the ledger, written only after the events they reflect are acknowledged by the broker.
accounts_table = app.Table("accounts", help="account id -> AccountState")
commands_table = app.Table("commands",
                           help="processed command id -> 1; __position__/<p> -> next event offset to catch up from")


# Changelog records put() has encoded and streams.direct_producer.flush_tables() has not sent yet:
# (changelog topic, partition, key bytes, value bytes).
pending_changelog: list[tuple[str, int, bytes, bytes | None]] = []


def put(table: faust.Table, partition: int, key: str, value: Any) -> None:
    """Set a table key, writing its changelog to `partition`: the partition of the message being handled.

    Faust's own __setitem__ picks the partition of the *current* event, which inside a batch that
    spans partitions is the wrong one; the changelog must stay co-partitioned with the commands.

    at_least_once: the record is encoded exactly as Faust would (its topic's serializers) and queued for
    `flush_tables()`, which each agent awaits at the end of its batch, before Faust may commit the batch's
    offsets. Faust's own path sends changelogs one message at a time through a buffer that stalls every
    incoming message while it holds more than 100: at a few hundred snapshots per batch the agents spent
    most of their time waiting on it (bench: ~100 ledger events/s, commits taking over a minute).
    exactly_once: Faust's path, since the record must be part of the partition's transaction.
    """
    if value is None:   # a deleted key: a tombstone on the changelog, which compaction and recovery drop
        table.data.pop(key, None)
    else:
        table.data[key] = value
    if settings.processing_guarantee == "exactly_once":
        table.send_changelog(partition, key, value, value_serializer="raw" if value is None else None)
        return
    topic = table.changelog_topic
    key_bytes, _ = topic.prepare_key(key, table.key_serializer)
    value_bytes = None if value is None else topic.prepare_value(value, table.value_serializer)[0]
    pending_changelog.append((topic.get_topic_name(), partition, key_bytes, value_bytes))


@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    """Prometheus scrape endpoint on the worker's web port."""
    body, content_type = exposition()
    return web.bytes(body, headers={"Content-Type": content_type})
