"""What a dead letter is: the record a consumer could not take, plus why and where it came from.

A dead letter is the original record, untouched, plus `dlq.error` (why) and `dlq.source` (topic/partition/offset),
unless the record is too large (RecordTooLarge): then the dead letter is bounded too, so it always fits under
Kafka's message limit (1 MiB by default: producers' max_request_size, the broker's max.message.bytes). The copy
of an original that large could not be sent, and the consumer would retry the batch until it crashed, again after
every restart: one record would stop its partition. A bounded dead letter keeps the first `limit` bytes of the
key and the value (the headers only if they fit in that too), and says so in `dlq.truncated` (the original
record's size); the whole record stays where `dlq.source` points, for the source topic's retention.

The stream agents (streams/dead_letters.py) and the payment gateway connector (gateway/connector.py) both build
their dead letters here and send them with their own producer.
"""

from __future__ import annotations

from typing import NamedTuple

from infra.records import Record, header_list

MAX_ERROR_BYTES = 1024


class RecordTooLarge(Exception):
    """A record larger than BANK_MAX_COMMAND_BYTES. The API never writes one (its commands are a few hundred
    bytes): decoding it would carry its huge fields into events kept forever and into every read model, and
    forwarding it, with the headers a consumer adds, could pass Kafka's message limit."""


class DeadLetter(NamedTuple):
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def record_size(record: Record) -> int:
    """Key + value + headers: what a record weighs against the limits (Kafka's own overhead aside)."""
    return (len(record.key or b"") + len(record.value or b"")
            + sum(len(k) + len(v) for k, v in header_list(record)))


def check_size(record: Record, limit: int) -> None:
    """Raises RecordTooLarge for a record over the size limit; call it before decoding."""
    size = record_size(record)
    if size > limit:
        raise RecordTooLarge(f"the record is {size} bytes, a command at most {limit} (BANK_MAX_COMMAND_BYTES)")


def dead_letter_of(record: Record, error: Exception, limit: int) -> DeadLetter:
    """The dead letter for `record`, which could not be taken because of `error`, bounded by `limit` bytes."""
    reason = f"{type(error).__name__}: {error}".encode()[:MAX_ERROR_BYTES]
    key, value, headers = record.key, record.value or b"", header_list(record)
    original = record_size(record)
    if isinstance(error, RecordTooLarge) or original > limit:   # any oversized record, whatever the error
        key, value = (key or b"")[:limit] or None, value[:limit]
        kept = sum(len(k) + len(v) for k, v in headers) <= limit
        headers = (headers if kept else []) + [("dlq.truncated", str(original).encode())]
    headers += [
        ("dlq.error", reason),
        ("dlq.source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
    ]
    return DeadLetter(key, value, headers)
