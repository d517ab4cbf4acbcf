"""The Faust app, its topics and tables. `python -m streams` runs one worker."""

from __future__ import annotations

from typing import Any

import faust

from core import kafka_fetch
from core.logs import logging_config
from core.settings import Settings, get_settings
from core.topics import LEDGER_COMMANDS, LEDGER_EVENTS, load_registry
from streams.broker_workarounds import static_membership
from streams.metrics import exposition


def create_app(settings: Settings) -> faust.App:
    kafka_fetch.install(settings.kafka_empty_fetch_backoff_ms)
    registry = load_registry(settings.topics_file, settings.topic_replication)
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka}",
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


commands_topic = raw_topic(LEDGER_COMMANDS)
events_topic = raw_topic(LEDGER_EVENTS)

# Snapshots of the ledger, written only after the events they reflect are acknowledged by the broker.
accounts_table = app.Table("accounts", help="account id -> AccountState")
commands_table = app.Table("commands",
                           help="processed command id -> 1; __position__/<p> -> next event offset to catch up from")


def put(table: faust.Table, partition: int, key: str, value: Any) -> None:
    """Set a table key, writing its changelog to `partition`: the partition of the message being handled.

    Faust's own __setitem__ picks the partition of the *current* event, which inside a batch that
    spans partitions is the wrong one; the changelog must stay co-partitioned with the commands.
    """
    table.data[key] = value
    table.send_changelog(partition, key, value)


@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    """Prometheus scrape endpoint on the worker's web port."""
    body, content_type = exposition()
    return web.bytes(body, headers={"Content-Type": content_type})
