"""What every Kafka record the platform handles looks like, and how to read its headers.

aiokafka's ConsumerRecord and Faust's Message both carry a topic, a partition, an offset, a key, a value and
headers; `Record` names that shape so code can take either. Headers arrive as a list of (name, bytes) pairs
(aiokafka) or a mapping (Faust, depending on the path), so every lookup goes through `header()` here instead
of a loop of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeAlias, cast

from core.audit import ACTOR_HEADER

Headers: TypeAlias = Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None


class Record(Protocol):
    """A consumed Kafka record (aiokafka's ConsumerRecord, Faust's Message)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers: ...


def header_list(source: Record | Headers) -> list[tuple[str, bytes]]:
    """The headers of a record (or the headers themselves) as a list of (name, bytes) pairs, in order."""
    return [(name, _bytes(value)) for name, value in _pairs(source)]


def header(source: Record | Headers, name: str) -> bytes | None:
    """The value of the first header called `name` (None when there is none)."""
    for key, value in _pairs(source):
        if key == name:
            return _bytes(value)
    return None


def header_text(source: Record | Headers, name: str) -> str | None:
    """The header as text (undecodable bytes replaced: a header is for people and logs, never trusted)."""
    value = header(source, name)
    return None if value is None else value.decode(errors="replace")


def actor_of(source: Record | Headers) -> bytes | None:
    """The raw actor header of a message (core.audit.ACTOR_HEADER), to copy onto what it causes."""
    return header(source, ACTOR_HEADER)


def _pairs(source: Record | Headers) -> Iterable[tuple[str, object]]:
    # A record's headers, or the headers themselves (cheaper than an isinstance check of the protocol).
    holder: object = source
    headers = cast(Headers, getattr(holder, "headers", holder))
    return headers.items() if isinstance(headers, Mapping) else headers or ()


def _bytes(value: object) -> bytes:
    # Faust hands str values through when a producer set them so; aiokafka may hand bytearrays.
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return b"" if value is None else str(value).encode()
