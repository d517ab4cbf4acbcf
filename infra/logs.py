"""Structured logs: one JSON object per line, with the ids that correlate API -> ledger agent -> projection.

Every process configures logging with `logging_config(service, level)` (a dictConfig). Ids are attached two
ways: `bound(trace_id=..., command_id=...)` sets them for everything logged in a block (a request, a
command), and `log.info("...", extra={"event_id": ...})` for one line. The trace id travels between
processes in the Kafka header TRACE_HEADER: the API puts it on the command, the ledger copies it onto the
command's events, the saga onto its steps, and projections log it with the events they apply.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

from infra.records import Headers, Record, header_text

TRACE_HEADER = "bank.trace_id"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("bank_log_context", default=MappingProxyType({}))
# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName",
                                                                       "color_message"}  # uvicorn: ANSI twin of msg
_BANK_LOGGERS = ("api", "streams", "cli", "core", "infra", "schemas")


def new_trace_id() -> str:
    return uuid.uuid4().hex


def trace_id_from(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header, so the platform's logs join the caller's trace."""
    match = _TRACEPARENT.match((traceparent or "").strip().lower())
    return match[1] if match and match[1] != "0" * 32 else None


def current_trace_id() -> str | None:
    return _CONTEXT.get().get("trace_id")


def trace_header() -> list[tuple[str, bytes]]:
    """The Kafka header carrying the current trace id (none outside a trace)."""
    trace = current_trace_id()
    return [(TRACE_HEADER, trace.encode())] if trace else []


def trace_of(source: Record | Headers) -> str | None:
    """The trace id a message carries (TRACE_HEADER), to log with it and copy onto what it causes."""
    return header_text(source, TRACE_HEADER)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Attach fields (trace_id, command_id, ...) to every line logged inside the block."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "bankstream") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = self._fields(record)
        each: list[Mapping[str, Any]] | None = getattr(record, EACH, None)
        if each is not None:   # `log_each`: one line per item, with the record's fields
            return "\n".join(_dumped(line | dict(item)) for item in each)
        return _dumped(line)

    def _fields(self, record: logging.LogRecord) -> dict[str, Any]:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_CONTEXT.get())
        line |= {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return line


def _dumped(line: dict[str, Any]) -> str:
    try:
        return orjson.dumps(line, default=str, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:   # an integer past 64 bits, say: the standard library writes anything
        return json.dumps(line, default=str, ensure_ascii=False)


EACH = "_log_each"   # a record's items, one line each (a leading underscore: not a field of the lines)


def log_each(logger: logging.Logger, message: str, items: list[Mapping[str, Any]]) -> None:
    """One INFO line per item (its fields, and the message's), written as one record: a worker logs each command it
    decides, and a log record per command (made, formatted and flushed to stderr one by one) took 5 % of it."""
    if items and logger.isEnabledFor(logging.INFO):
        logger.info(message, extra={EACH: items})


# orjson writes a line in a tenth of json's time (the workers log one per decided command); datetimes and
# dataclasses go through `default=str` as they did with json, and non-string keys are written as strings alike.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def logging_config(service: str, level: str = "INFO") -> dict[str, Any]:
    """A dictConfig: every record as one JSON line on stderr; the platform's loggers at `level`, libraries
    at INFO (their DEBUG would drown ours); uvicorn's own handlers removed so its lines are JSON too."""
    quiet = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": service}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            **{name: {"level": level.upper()} for name in _BANK_LOGGERS},
            **{name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
            "aiokafka": quiet, "kafka": quiet, "pymongo": quiet, "asyncio": quiet,
        },
    }


def configure_logging(service: str, level: str = "INFO") -> None:
    import logging.config

    logging.config.dictConfig(logging_config(service, level))
