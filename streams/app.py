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
        store="memory://",  # no Faust tables: the batch engine restores its own (streams/tables.py)
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

@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    """Prometheus scrape endpoint on the worker's web port."""
    body, content_type = exposition()
    return web.bytes(body, headers={"Content-Type": content_type})
