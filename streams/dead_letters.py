"""Messages an agent cannot take go to the topic's dead-letter topic with the error in headers.

A dead letter is the original record, untouched, plus `dlq.error` (why) and `dlq.source` (topic/partition/offset),
unless the record is too large (RecordTooLarge): then the dead letter is bounded too, so it always fits under
Kafka's message limit (1 MiB by default: producers' max_request_size, the broker's max.message.bytes). The copy
of an original that large could not be sent, and the agent would retry the batch until it crashed, again after
every restart: one record would stop its partition. A bounded dead letter keeps the first `max_command_bytes` of
the key and the value (the headers only if they fit in that too), and says so in `dlq.truncated` (the original
record's size); the whole record stays where `dlq.source` points, for the command topic's retention.
"""

from __future__ import annotations

import logging
from typing import Any

from infra.records import header_list
from streams import direct_producer
from streams.app import settings
from streams.metrics import DEAD_LETTERS

log = logging.getLogger(__name__)

MAX_ERROR_BYTES = 1024


class RecordTooLarge(Exception):
    """A command record larger than BANK_MAX_COMMAND_BYTES. The API never writes one (its commands are a few
    hundred bytes): decoding it would carry its huge fields into events kept forever and into every read model,
    and forwarding it, with the headers an agent adds, could pass Kafka's message limit."""


def record_size(message: Any) -> int:
    """Key + value + headers: what a record weighs against the limits (Kafka's own overhead aside)."""
    return (len(message.key or b"") + len(message.value or b"")
            + sum(len(k) + len(v) for k, v in header_list(message)))


def check_size(message: Any, limit: int | None = None) -> None:
    """Raises RecordTooLarge for a record over the command size limit; call it before decoding."""
    limit = limit or settings.max_command_bytes
    size = record_size(message)
    if size > limit:
        raise RecordTooLarge(f"the record is {size} bytes, a command at most {limit} (BANK_MAX_COMMAND_BYTES)")


async def send_to_dead_letter(dead_letter_topic: str, message: Any, error: Exception) -> Any:
    """Returns the send future; the caller awaits it before the source offset may be committed."""
    reason = f"{type(error).__name__}: {error}".encode()[:MAX_ERROR_BYTES]
    key, value, headers = message.key, message.value, header_list(message)
    limit, original = settings.max_command_bytes, record_size(message)
    if isinstance(error, RecordTooLarge) or original > limit:   # any oversized record: the saga's too
        key, value = (key or b"")[:limit] or None, (value or b"")[:limit]
        kept = sum(len(k) + len(v) for k, v in headers) <= limit
        headers = (headers if kept else []) + [("dlq.truncated", str(original).encode())]
    headers += [
        ("dlq.error", reason),
        ("dlq.source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
    ]
    log.warning("dead-lettering %s/%s/%s: %s", message.topic, message.partition, message.offset, reason.decode())
    DEAD_LETTERS.labels(dead_letter_topic).inc()
    return await direct_producer.send(dead_letter_topic, value, key, headers)
