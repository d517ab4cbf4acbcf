"""Messages an agent cannot decode go, untouched, to the topic's dead-letter topic with the error in headers."""

from __future__ import annotations

import logging
from typing import Any

from streams import direct_producer
from streams.metrics import DEAD_LETTERS

log = logging.getLogger(__name__)

MAX_ERROR_BYTES = 1024


async def send_to_dead_letter(dead_letter_topic: str, message: Any, error: Exception) -> Any:
    """Returns the send future; the caller awaits it before the source offset may be committed."""
    reason = f"{type(error).__name__}: {error}".encode()[:MAX_ERROR_BYTES]
    headers = list(message.headers or []) + [
        ("dlq.error", reason),
        ("dlq.source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
    ]
    log.warning("dead-lettering %s/%s/%s: %s", message.topic, message.partition, message.offset, reason.decode())
    DEAD_LETTERS.labels(dead_letter_topic).inc()
    return await direct_producer.send(dead_letter_topic, message.value, message.key, headers)
