"""Messages an agent cannot take go to the topic's dead-letter topic with the error in headers.

What a dead letter holds, and how an oversized record's is bounded, is infra/dead_letters.py's; here the agents
check sizes against BANK_MAX_COMMAND_BYTES and send their dead letters through the direct producer.
"""

from __future__ import annotations

import logging
from typing import Any

from infra import dead_letters
from infra.dead_letters import RecordTooLarge, dead_letter_of, record_size
from streams import direct_producer
from streams.app import settings
from streams.metrics import DEAD_LETTERS

log = logging.getLogger(__name__)

__all__ = ["RecordTooLarge", "check_size", "record_size", "send_to_dead_letter"]


def check_size(message: Any, limit: int | None = None) -> None:
    """Raises RecordTooLarge for a record over the command size limit; call it before decoding."""
    dead_letters.check_size(message, limit or settings.max_command_bytes)


async def send_to_dead_letter(dead_letter_topic: str, message: Any, error: Exception) -> Any:
    """Returns the send future; the caller awaits it before the source offset may be committed."""
    letter = dead_letter_of(message, error, settings.max_command_bytes)
    log.warning("dead-lettering %s/%s/%s: %s", message.topic, message.partition, message.offset,
                dict(letter.headers)["dlq.error"].decode())
    DEAD_LETTERS.labels(dead_letter_topic).inc()
    return await direct_producer.send(dead_letter_topic, letter.value, letter.key, letter.headers)
