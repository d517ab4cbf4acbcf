"""The one codec: Avro (fastavro) bodies in the schema-registry wire format.

Wire format (what Confluent's serializers, Kafka Connect, ksqlDB, Flink, Spark and `kcat -s value=avro` read):
one magic byte 0, the writer schema's id as 4 bytes big-endian, then the Avro body. Every released schema
version has a permanent id in schemas/schema_ids.json (`bank schemas release` appends the ids of new versions,
never changes one), so encoding needs no registry round trip; the registries serve the same ids (the embedded
one, schemas/registry_server.py, from these files; a real one after `bank schemas release --registry URL`).

Subjects (schemas/registry.py): a topic carrying one record type registers it under `<topic>-value`
(TopicNameStrategy, the default of every Confluent client). Topics carrying several types (the ledger's
commands and events) would need a union under `<topic>-value`; instead each type is registered under
`<topic>-<record full name>`, e.g. `bank.ledger.events-bankstream.events.FundsDeposited`
(TopicRecordNameStrategy, the `subject.name.strategy` Confluent clients offer for multi-type topics). A reader
never needs the subject: every message names its writer schema by id.

Readers also accept the format written before the registry one (an Avro body with the writer schema's
CRC-64-AVRO fingerprint in header `bank.schema.fingerprint`), so old records on existing logs still decode:
a message with that header is read the old way, any other must start with the magic byte. A reader resolves
the writer's data to its own current schema either way, so old records stay readable after a schema evolves.
The writer also sets header `bank.schema.name` (the record type) for people looking at raw messages; readers
never trust it.
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
from core.clock import CLOCK_TYPES
from core.commands import COMMAND_TYPES
from core.events import EVENT_TYPES
from core.lending import LOAN_TYPES
from core.payments import PAYMENT_TYPES
from core.risk.records import RISK_TYPES
from core.fx import FX_TYPES
from core.savings import INTEREST_TYPES
from core.standing_orders import STANDING_ORDER_TYPES
from infra.records import Headers, header

SCHEMA_DIR = Path(__file__).resolve().parent
HISTORY_DIR = SCHEMA_DIR / "history"
ID_FILE = SCHEMA_DIR / "schema_ids.json"
HEADER_FINGERPRINT = "bank.schema.fingerprint"   # the old format's writer schema; read, never written
HEADER_SCHEMA = "bank.schema.name"
MAGIC_BYTE = 0
WIRE_PREFIX_BYTES = 5


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


def version_of(schema: dict[str, Any]) -> int:
    return int(schema.get("bankstream_version", 1))


def read_schema_ids() -> dict[str, dict[str, int]]:
    """Record type -> version -> registry schema id (schemas/schema_ids.json)."""
    return json.loads(ID_FILE.read_text()) if ID_FILE.exists() else {}


def wire_prefix(schema_id: int) -> bytes:
    return bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")


def wire_schema_id(value: bytes | None) -> int | None:
    """The schema id of a message in the registry wire format (None when it is not one)."""
    if value is None or len(value) < WIRE_PREFIX_BYTES or value[0] != MAGIC_BYTE:
        return None
    return int.from_bytes(value[1:WIRE_PREFIX_BYTES], "big")


@dataclasses.dataclass(frozen=True)
class _Writer:
    name: str
    schema: Any        # parsed


class Codec:
    """`types`: record type name -> class. `history`: released older versions ("<Name>.v<N>" -> schema; default
    schemas/history). `ids`: record type -> version -> schema id (default schemas/schema_ids.json)."""

    def __init__(self, types: Mapping[str, type], history: Mapping[str, dict[str, Any]] | None = None,
                 ids: Mapping[str, Mapping[str, int]] | None = None) -> None:
        self._types = dict(types)
        ids = read_schema_ids() if ids is None else ids
        self._by_class: dict[type, tuple[str, Any, bytes, bytes, tuple[str, ...]]] = {}
        self._readers: dict[str, Any] = {}            # name -> parsed current schema
        self._by_fingerprint: dict[str, _Writer] = {}  # the old format's writers
        self._by_id: dict[int, _Writer] = {}
        current = current_schemas()
        for name, cls in self._types.items():
            raw, parsed = current[name], fastavro.parse_schema(current[name])
            schema_id = _id_of(ids, name, version_of(raw))
            fields = tuple(f.name for f in dataclasses.fields(cls))
            self._by_class[cls] = (name, parsed, wire_prefix(schema_id), schema_fingerprint(raw).encode(), fields)
            self._readers[name] = parsed
            self._by_fingerprint[schema_fingerprint(raw)] = self._by_id[schema_id] = _Writer(name, parsed)
        for versioned, raw in (historic_schemas() if history is None else history).items():
            name, version = versioned.split(".v")
            if name not in self._types:
                continue
            writer = _Writer(name, fastavro.parse_schema(raw))
            self._by_fingerprint.setdefault(schema_fingerprint(raw), writer)
            if (schema_id := ids.get(name, {}).get(version)) is not None:
                self._by_id.setdefault(schema_id, writer)

    def encode(self, record: Any) -> tuple[bytes, list[tuple[str, bytes]]]:
        name, parsed, prefix, _fingerprint, fields = self._by_class[type(record)]
        buffer = io.BytesIO(prefix)
        buffer.seek(len(prefix))
        fastavro.schemaless_writer(buffer, parsed, {f: getattr(record, f) for f in fields})
        return buffer.getvalue(), [(HEADER_SCHEMA, name.encode())]

    def encode_legacy(self, record: Any) -> tuple[bytes, list[tuple[str, bytes]]]:
        """What releases before the registry wire format wrote (a bare Avro body, the fingerprint in a header).
        Nothing writes it any more; tests use it to prove old logs still decode."""
        name, parsed, _prefix, fingerprint_bytes, fields = self._by_class[type(record)]
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, {f: getattr(record, f) for f in fields})
        return buffer.getvalue(), [(HEADER_SCHEMA, name.encode()), (HEADER_FINGERPRINT, fingerprint_bytes)]

    def schema_name(self, value: bytes | None, headers: Headers) -> str | None:
        """The record type a message holds, without decoding its body (None when unknown)."""
        try:
            return self._writer(value, headers).name
        except DecodeError:
            return None

    def writer_identity(self, value: bytes | None, headers: Headers) -> str | None:
        """How a message names its writer schema, for people: `schema id 12`, or the old format's fingerprint."""
        if (fingerprint_bytes := header(headers, HEADER_FINGERPRINT)) is not None:
            return fingerprint_bytes.decode(errors="replace")
        schema_id = wire_schema_id(value)
        return None if schema_id is None else f"schema id {schema_id}"

    def decode(self, value: bytes | None, headers: Headers, expected: Collection[str] | None = None) -> Any:
        """The record in a message. `expected`: the record types its topic carries (infra.topics.record_types);
        any other raises UnexpectedRecordType, before its body is read."""
        writer = self._writer(value, headers)
        if expected is not None and writer.name not in expected:
            raise UnexpectedRecordType(f"a {writer.name} record does not belong on this topic "
                                       f"(it carries {', '.join(sorted(expected)) or 'no records'})")
        if value is None:
            raise DecodeError("empty message body")
        body = value if header(headers, HEADER_FINGERPRINT) is not None else value[WIRE_PREFIX_BYTES:]
        return self._read_body(body, writer)

    def _writer(self, value: bytes | None, headers: Headers) -> _Writer:
        """The writer schema: by the old format's fingerprint header when there is one, else by the wire
        format's schema id (a new-format message never has that header)."""
        fingerprint_bytes = header(headers, HEADER_FINGERPRINT)
        if fingerprint_bytes is not None:
            try:
                return self._by_fingerprint[fingerprint_bytes.decode()]
            except (KeyError, UnicodeDecodeError):
                raise DecodeError(f"unknown schema fingerprint {fingerprint_bytes!r}") from None
        if value is None:
            raise DecodeError("empty message body")
        schema_id = wire_schema_id(value)
        if schema_id is None:
            raise DecodeError(f"not in the schema-registry wire format (magic byte 0, a 4-byte schema id) and no "
                              f"{HEADER_FINGERPRINT} header")
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise DecodeError(f"unknown schema id {schema_id}") from None

    def _read_body(self, body: bytes, writer: _Writer) -> Any:
        name, reader = writer.name, self._readers[writer.name]
        try:
            buffer = io.BytesIO(body)
            data = fastavro.schemaless_reader(buffer, writer.schema, reader if writer.schema is not reader else None)
            if buffer.tell() != len(body):
                raise DecodeError(f"{len(body) - buffer.tell()} trailing bytes after a {name} record")
            return self._types[name](**data)
        except DecodeError:
            raise
        except Exception as exc:  # fastavro raises many types on truncated or corrupt bytes
            raise DecodeError(f"cannot decode {name}: {type(exc).__name__}: {exc}") from None


def _id_of(ids: Mapping[str, Mapping[str, int]], name: str, version: int) -> int:
    try:
        return ids[name][str(version)]
    except KeyError:
        raise KeyError(f"{name} v{version} has no schema id in {ID_FILE.name}: run `bank schemas release`") from None


@lru_cache
def get_codec() -> Codec:
    return Codec({**COMMAND_TYPES, **EVENT_TYPES, **RISK_TYPES, **AUDIT_TYPES, **CLOCK_TYPES,
                  **PAYMENT_TYPES, **STANDING_ORDER_TYPES, **LOAN_TYPES,
                  **INTEREST_TYPES, **FX_TYPES})
