"""Records as plain JSON values, the one shape analysts see them in: `bank tail --json`, the topic catalogue's
example messages, `bank replay --json`. Money stays integer minor units; moments are RFC 3339 strings in UTC."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any


def plain(value: Any) -> Any:
    """A record (a domain dataclass) or any value inside it, as JSON-able values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def message_json(topic: str, partition: int, offset: int, timestamp: datetime, key: str | None,
                 record_type: str | None, value: Any) -> dict[str, Any]:
    """One message as `bank tail --json` prints it: where it is in the log, its key, its type and its fields."""
    return {"topic": topic, "partition": partition, "offset": offset, "timestamp": timestamp.isoformat(),
            "key": key, "type": record_type, "value": plain(value)}
