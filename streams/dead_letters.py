"""Messages an agent cannot take go to the topic's dead-letter topic with the error in headers.

What a dead letter holds, and how an oversized record's is bounded, is infra/dead_letters.py's; here the agents
check sizes against BANK_MAX_COMMAND_BYTES; the batch engine sends their dead letters (streams/checkpoint.py).
"""

from __future__ import annotations

from typing import Any

from infra import dead_letters
from infra.dead_letters import RecordTooLarge, record_size
from streams.app import settings

__all__ = ["RecordTooLarge", "check_size", "record_size"]


def check_size(message: Any, limit: int | None = None) -> None:
    """Raises RecordTooLarge for a record over the command size limit; call it before decoding."""
    dead_letters.check_size(message, limit or settings.max_command_bytes)
