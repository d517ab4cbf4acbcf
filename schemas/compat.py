"""Backward compatibility: can today's schema read what an older released version wrote?

Every released version of a schema has its fingerprint in schemas/fingerprints.json and its permanent
registry id in schemas/schema_ids.json. A schema whose text changes must bump its `bankstream_version`, keep the
previous file as schemas/history/<Name>.v<N>.avsc, and be released (`bank schemas release`: the new fingerprint
and the next free id); tests/unit/test_schemas.py enforces it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
from fastavro.utils import generate_many

from schemas.codec import HISTORY_DIR, ID_FILE, SCHEMA_DIR, read_schema_ids, schema_fingerprint, version_of

LOCK_FILE = SCHEMA_DIR / "fingerprints.json"


def history_path(name: str, version: int) -> Path:
    return HISTORY_DIR / f"{name}.v{version}.avsc"


def read_lock() -> dict[str, dict[str, str]]:
    return json.loads(LOCK_FILE.read_text()) if LOCK_FILE.exists() else {}


def incompatibility(reader: dict[str, Any], writer: dict[str, Any], samples: int = 25) -> str | None:
    """None if `reader` reads data written with `writer`; otherwise what went wrong."""
    parsed_writer = fastavro.parse_schema(writer)
    parsed_reader = fastavro.parse_schema(reader)
    for record in generate_many(parsed_writer, samples):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed_writer, record)
        buf.seek(0)
        try:
            fastavro.schemaless_reader(buf, parsed_writer, parsed_reader)
        except Exception as error:  # fastavro signals incompatibility with several exception types
            return f"{type(error).__name__}: {error}"
    return None


def release_current() -> dict[str, dict[str, str]]:
    """Record every current schema's fingerprint under its version (what `bank schemas release` does)."""
    lock = read_lock()
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        schema = json.loads(path.read_text())
        lock.setdefault(path.stem, {})[str(version_of(schema))] = schema_fingerprint(schema)
    LOCK_FILE.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    ID_FILE.write_text(json.dumps(assign_ids(lock, read_schema_ids()), indent=2, sort_keys=True) + "\n")
    return lock


def assign_ids(lock: dict[str, dict[str, str]], ids: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """`ids` plus the next free id for every released version without one, in (name, version) order. An id,
    once given, never changes: records on the log name their writer schema by it."""
    assigned = {name: dict(versions) for name, versions in ids.items()}
    next_id = max((i for versions in ids.values() for i in versions.values()), default=0) + 1
    for name in sorted(lock):
        for version in sorted(lock[name], key=int):
            if version not in assigned.setdefault(name, {}):
                assigned[name][version] = next_id
                next_id += 1
    return assigned
