"""Every schema reads what its previous versions wrote, and no released schema changes silently."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime

import pytest

from core.audit import AUDIT_TYPES
from core.commands import COMMAND_TYPES, CUSTOMER_COMMANDS, STAFF_COMMANDS
from core.events import EVENT_TYPES
from core.risk.records import RISK_TYPES
from core.topics import AUDIT, LEDGER_COMMANDS, LEDGER_EVENTS, RISK_ASSESSMENTS, RISK_COMMANDS, RISK_RULES
from infra.topics import load_registry, record_types
import io

import fastavro

from schemas.codec import HEADER_FINGERPRINT, Codec, DecodeError, UnexpectedRecordType, current_schemas, get_codec, load_schema, schema_fingerprint
from schemas.compat import history_path, incompatibility, read_lock, version_of

CURRENT = current_schemas()
TYPES = {**COMMAND_TYPES, **EVENT_TYPES, **RISK_TYPES, **AUDIT_TYPES}


def test_one_schema_per_command_and_event() -> None:
    assert set(CURRENT) == set(TYPES)


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_schema_fields_match_domain_class(name: str) -> None:
    fields = [f["name"] for f in CURRENT[name]["fields"]]
    assert fields == [f.name for f in dataclasses.fields(TYPES[name])]


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_every_event_carries_the_envelope(name: str) -> None:
    fields = {f["name"] for f in CURRENT[name]["fields"]}
    assert {"event_id", "command_id", "account_id", "occurred_at", "schema_version"} <= fields


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_released_schema_is_not_changed_without_a_version_bump(name: str) -> None:
    schema = CURRENT[name]
    version = version_of(schema)
    released = read_lock().get(name, {})
    assert released.get(str(version)) == schema_fingerprint(schema), (
        f"{name}.avsc differs from its released v{version}: bump bankstream_version, keep the old file as "
        f"schemas/history/{name}.v{version}.avsc and run `bank schemas release`"
    )


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_schema_reads_every_previous_version(name: str) -> None:
    current = CURRENT[name]
    for version in range(1, version_of(current)):
        path = history_path(name, version)
        assert path.exists(), f"previous version {path.name} is missing"
        old = load_schema(path)
        assert read_lock()[name][str(version)] == schema_fingerprint(old)
        assert incompatibility(current, old) is None


def test_compatibility_check_catches_a_breaking_change() -> None:
    """The guard must bite: a new field without a default cannot read old data."""
    old = CURRENT["Deposit"]
    new = copy.deepcopy(old)
    new["fields"].append({"name": "branch_code", "type": "string"})
    assert incompatibility(new, old) is not None
    new["fields"][-1]["default"] = "api"
    assert incompatibility(new, old) is None


def test_topics_name_only_known_schemas() -> None:
    for topic in load_registry().values():
        assert set(topic.value_schemas) <= set(CURRENT), topic.name


def test_topics_carry_every_record_type_their_writers_write() -> None:
    """Readers refuse a record of a type its topic does not declare (dead letter): a command or event type
    missing here would be dead-lettered instead of decided."""
    registry = load_registry()
    api_commands = {kind.__name__ for kind in CUSTOMER_COMMANDS + STAFF_COMMANDS}
    assert set(COMMAND_TYPES) <= set(registry[LEDGER_COMMANDS].value_schemas)
    assert api_commands <= set(registry[RISK_COMMANDS].value_schemas)
    assert set(EVENT_TYPES) <= set(registry[LEDGER_EVENTS].value_schemas)
    assert set(AUDIT_TYPES) <= set(registry[AUDIT].value_schemas)
    assert set(RISK_TYPES) <= set(registry[RISK_ASSESSMENTS].value_schemas) | set(registry[RISK_RULES].value_schemas)


def test_a_record_of_a_type_its_topic_does_not_carry_is_refused() -> None:
    codec = get_codec()
    deposit = COMMAND_TYPES["Deposit"](command_id="d", account_id="A", issued_at=datetime.now(UTC),
                                       correlation_id="d", amount=1, currency="EUR")
    value, headers = codec.encode(deposit)
    assert codec.decode(value, headers, record_types(LEDGER_COMMANDS)) == deposit
    with pytest.raises(UnexpectedRecordType, match="a Deposit record does not belong on this topic"):
        codec.decode(value, headers, record_types(LEDGER_EVENTS))


def test_codec_reads_old_writer_version_through_the_header() -> None:
    """A reader resolves data written with an older schema version, picked by the fingerprint header."""
    old = copy.deepcopy(CURRENT["Deposit"])
    old["fields"] = [f for f in old["fields"] if f["name"] != "reference"]
    codec = Codec(TYPES, history={"Deposit.v0": old})
    issued = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), dict(
        command_id="c", account_id="a", issued_at=issued, correlation_id="c", amount=5, currency="EUR"))
    decoded = codec.decode(buf.getvalue(), [(HEADER_FINGERPRINT, schema_fingerprint(old).encode())])
    assert decoded == COMMAND_TYPES["Deposit"](command_id="c", account_id="a", issued_at=issued,
                                               correlation_id="c", amount=5, currency="EUR", reference=None)


def test_codec_refuses_unknown_fingerprints_and_truncated_bodies() -> None:
    codec = get_codec()
    deposit = COMMAND_TYPES["Deposit"](command_id="c", account_id="a", issued_at=datetime.now(UTC),
                                       correlation_id="c", amount=5, currency="EUR", reference="r")
    value, headers = codec.encode(deposit)
    assert codec.decode(value, headers) == deposit
    with pytest.raises(DecodeError):
        codec.decode(value, [(HEADER_FINGERPRINT, b"0000000000000000")])
    with pytest.raises(DecodeError):
        codec.decode(value[:-2], headers)
    with pytest.raises(DecodeError):
        codec.decode(value, [])
