"""The Faust app (the worker's lifecycle, web server and timers) and its shutdown steps.

`python -m streams` runs one worker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.app.base import BootStrategy

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
    app = faust.App(
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
    # The batch engine consumes and produces the agents' topics itself (streams/consumer.py): Faust's consumer would
    # join the workers' group beside it under the same static member id, and each would fence the other out.
    app.boot_strategy = BootStrategy(app, enable_kafka_consumer=False, enable_kafka_producer=False)
    return app


settings = get_settings()
app = create_app(settings)
log = logging.getLogger(__name__)
ShutdownStep = Callable[[], Awaitable[None]]
_shutdown_steps: dict[bool, list[ShutdownStep]] = {True: [], False: []}


def at_shutdown(step: ShutdownStep, *, first: bool = False) -> ShutdownStep:
    """Run `step` when the worker stops, in order: the `first` ones (the consumer, which finishes the batch in hand),
    then the others (what batches use: producers, readers). Faust's signal receivers run in no set order."""
    _shutdown_steps[first].append(step)
    return step


@app.on_before_shutdown.connect
async def _shut_down(app: Any, **kwargs: Any) -> None:
    for step in _shutdown_steps[True] + _shutdown_steps[False]:
        try:
            await step()
        except Exception:   # one step failing must not keep the others from running
            log.exception("shutdown step %s failed", getattr(step, "__qualname__", step))


@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    """Prometheus scrape endpoint on the worker's web port."""
    body, content_type = exposition()
    return web.bytes(body, headers={"Content-Type": content_type})
