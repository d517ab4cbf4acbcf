"""The one codec: Avro (fastavro) bodies, the writer schema's fingerprint in a header.

A reader looks the fingerprint up among every schema version the tree has ever released
(schemas/*.avsc plus schemas/history/*.avsc) and resolves the writer's data to its own current
schema, so old records stay readable after a schema evolves.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Collection, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from core.audit import AUDIT_TYPES
from core.commands import COMMAND_TYPES
from core.events import EVENT_TYPES
from core.risk.records import RISK_TYPES
from infra.records import Headers, header

SCHEMA_DIR = Path(__file__).resolve().parent
HISTORY_DIR = SCHEMA_DIR / "history"
HEADER_FINGERPRINT = "bank.schema.fingerprint"
HEADER_SCHEMA = "bank.schema.name"


class DecodeError(ValueError):
    """The bytes cannot be turned into a known record; the message belongs on a dead-letter topic."""


class UnexpectedRecordType(DecodeError):
    """A well-formed record of a type its topic does not carry (e.g. an event on a command topic)."""


def schema_fingerprint(schema: dict[str, Any]) -> str:
    return fingerprint(to_parsing_canonical_form(fastavro.parse_schema(schema)), "CRC-64-AVRO")


def load_schema(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def current_schemas() -> dict[str, dict[str, Any]]:
    return {p.stem: load_schema(p) for p in sorted(SCHEMA_DIR.glob("*.avsc"))}


def historic_schemas() -> dict[str, dict[str, Any]]:
    """Released older versions, named `<Name>.v<N>.avsc`."""
    return {p.name.removesuffix(".avsc"): load_schema(p) for p in sorted(HISTORY_DIR.glob("*.avsc"))}


class Codec:
    def __init__(self, types: Mapping[str, type], history: Mapping[str, dict[str, Any]] | None = None) -> None:
        self._types = dict(types)
        self._by_class: dict[type, tuple[str, Any, bytes, tuple[str, ...]]] = {}
        self._readers: dict[str, Any] = {}          # name -> parsed current schema
        self._writers: dict[str, tuple[str, Any]] = {}  # fingerprint -> (name, parsed writer schema)
        current = current_schemas()
        for name, cls in self._types.items():
            raw = current[name]
            parsed = fastavro.parse_schema(raw)
            fp = schema_fingerprint(raw)
            fields = tuple(f.name for f in dataclasses.fields(cls))
            self._by_class[cls] = (name, parsed, fp.encode(), fields)
            self._readers[name] = parsed
            self._writers[fp] = (name, parsed)
        for versioned, raw in (historic_schemas() if history is None else history).items():
            name = versioned.split(".v")[0]
            if name in self._types:
                self._writers.setdefault(schema_fingerprint(raw), (name, fastavro.parse_schema(raw)))

    def encode(self, record: Any) -> tuple[bytes, list[tuple[str, bytes]]]:
        name, parsed, fp, fields = self._by_class[type(record)]
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, {f: getattr(record, f) for f in fields})
        return buf.getvalue(), [(HEADER_SCHEMA, name.encode()), (HEADER_FINGERPRINT, fp)]

    def schema_name(self, headers: Headers) -> str | None:
        """The record type a message holds, without decoding its body."""
        fp = header(headers, HEADER_FINGERPRINT)
        known = self._writers.get(fp.decode()) if fp else None
        return known[0] if known else None

    def decode(self, value: bytes | None, headers: Headers, expected: Collection[str] | None = None) -> Any:
        """The record in a message. `expected`: the record types its topic carries (infra.topics.record_types);
        any other raises UnexpectedRecordType, before its body is read."""
        fp = header(headers, HEADER_FINGERPRINT)
        if fp is None:
            raise DecodeError(f"no {HEADER_FINGERPRINT} header")
        try:
            name, writer = self._writers[fp.decode()]
        except (KeyError, UnicodeDecodeError):
            raise DecodeError(f"unknown schema fingerprint {fp!r}") from None
        if expected is not None and name not in expected:
            raise UnexpectedRecordType(f"a {name} record does not belong on this topic "
                                       f"(it carries {', '.join(sorted(expected)) or 'no records'})")
        if value is None:
            raise DecodeError("empty message body")
        reader = self._readers[name]
        try:
            buf = io.BytesIO(value)
            data = fastavro.schemaless_reader(buf, writer, reader if writer is not reader else None)
            if buf.tell() != len(value):
                raise DecodeError(f"{len(value) - buf.tell()} trailing bytes after a {name} record")
            return self._types[name](**data)
        except DecodeError:
            raise
        except Exception as exc:  # fastavro raises many types on truncated or corrupt bytes
            raise DecodeError(f"cannot decode {name}: {type(exc).__name__}: {exc}") from None


@lru_cache
def get_codec() -> Codec:
    return Codec({**COMMAND_TYPES, **EVENT_TYPES, **RISK_TYPES, **AUDIT_TYPES})
