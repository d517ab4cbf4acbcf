"""Every schema reads what its previous versions wrote, and no released schema changes silently."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from core.audit import AUDIT_TYPES
from core.clock import CLOCK_TYPES
from core.lending import LOAN_TYPES
from core.fx import FX_TYPES
from core.savings import INTEREST_TYPES
from core.standing_orders import STANDING_ORDER_TYPES
from core.commands import COMMAND_TYPES, CUSTOMER_COMMANDS, STAFF_COMMANDS
from core.events import DRAWER_EVENTS, EVENT_TYPES
from core.payments import PAYMENT_TYPES
from core.risk.records import RISK_TYPES
from core.topics import (AUDIT, CLOCK, FX_RATES, INTEREST, LEDGER_COMMANDS, LEDGER_EVENTS, LOANS, RISK_ASSESSMENTS, RISK_COMMANDS,
                         RISK_RULES, STANDING_ORDERS)
from infra.topics import load_registry, record_types
import base64
import io
import json
from pathlib import Path

import fastavro

from core.catalog import example_record
from schemas.codec import (HEADER_FINGERPRINT, Codec, DecodeError, UnexpectedRecordType, current_schemas, get_codec,
                           load_schema, read_schema_ids, schema_fingerprint)
from schemas.compat import assign_ids, history_path, incompatibility, read_lock, version_of
from schemas.registry import SchemaCatalog

CURRENT = current_schemas()
TYPES = {**COMMAND_TYPES, **EVENT_TYPES, **RISK_TYPES, **AUDIT_TYPES, **CLOCK_TYPES, **PAYMENT_TYPES,
         **STANDING_ORDER_TYPES, **LOAN_TYPES, **INTEREST_TYPES, **FX_TYPES}


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
    assert set(CLOCK_TYPES) <= set(registry[CLOCK].value_schemas)
    assert set(STANDING_ORDER_TYPES) <= set(registry[STANDING_ORDERS].value_schemas)
    assert set(LOAN_TYPES) <= set(registry[LOANS].value_schemas)
    assert set(INTEREST_TYPES) <= set(registry[INTEREST].value_schemas)
    assert set(FX_TYPES) <= set(registry[FX_RATES].value_schemas)
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
    """A reader resolves data written with an older schema version, picked by the old format's fingerprint header."""
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


def test_codec_reads_old_writer_version_through_the_schema_id() -> None:
    """The same in the wire format: the id of an older version (here one only a newer release's table has)."""
    old = copy.deepcopy(CURRENT["Deposit"])
    old["fields"] = [f for f in old["fields"] if f["name"] != "reference"]
    ids = read_schema_ids() | {"Deposit": {**read_schema_ids()["Deposit"], "0": 4242}}
    codec = Codec(TYPES, history={"Deposit.v0": old}, ids=ids)
    issued = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), dict(
        command_id="c", account_id="a", issued_at=issued, correlation_id="c", amount=5, currency="EUR"))
    value = b"\x00" + (4242).to_bytes(4, "big") + buf.getvalue()
    assert codec.decode(value, []) == COMMAND_TYPES["Deposit"](
        command_id="c", account_id="a", issued_at=issued, correlation_id="c", amount=5, currency="EUR")
    assert codec.schema_name(value, []) == "Deposit" and codec.writer_identity(value, []) == "schema id 4242"
    with pytest.raises(DecodeError, match="unknown schema id 4242"):
        get_codec().decode(value, [])


def test_codec_writes_the_schema_registry_wire_format() -> None:
    """Magic byte 0, the 4-byte big-endian id of the record's current schema version, then a plain Avro body
    that any Avro library reads with the schema the registry serves for that id."""
    codec = get_codec()
    deposit = COMMAND_TYPES["Deposit"](command_id="c", account_id="a", issued_at=datetime(2026, 5, 1, tzinfo=UTC),
                                       correlation_id="c", amount=5, currency="EUR", reference="r")
    value, headers = codec.encode(deposit)
    schema_id = read_schema_ids()["Deposit"][str(version_of(CURRENT["Deposit"]))]
    assert value[:5] == b"\x00" + schema_id.to_bytes(4, "big")
    assert HEADER_FINGERPRINT not in dict(headers)
    served = SchemaCatalog(load_registry()).by_id[schema_id]
    body = fastavro.schemaless_reader(io.BytesIO(value[5:]), fastavro.parse_schema(json.loads(served.text)), None)
    assert body == {f.name: getattr(deposit, f.name) for f in dataclasses.fields(deposit)}
    assert codec.schema_name(value, headers) == "Deposit"
    assert codec.writer_identity(value, headers) == f"schema id {schema_id}"


OLD_LOG = Path(__file__).parent / "data" / "old_codec_records.json"


def test_records_written_by_the_old_codec_still_decode() -> None:
    """tests/unit/data/old_codec_records.json holds one message of every record type as the codec before the
    registry wire format wrote it (bare Avro body, fingerprint header); each still decodes to its record."""
    codec = get_codec()
    records = json.loads(OLD_LOG.read_text())["records"]
    # record types born after the wire format: the old codec never wrote them
    newer = (set(CLOCK_TYPES) | set(PAYMENT_TYPES) | set(STANDING_ORDER_TYPES) | set(LOAN_TYPES)
             | set(INTEREST_TYPES) | set(FX_TYPES) | {kind.__name__ for kind in DRAWER_EVENTS}
             | {"Payment", "RecordPaymentOutcome", "ReceivePayment", "PaymentDebited", "PaymentSent", "PaymentSettled",
                "PaymentReturned", "PaymentReceived", "DisburseLoan", "RepayLoan", "LoanDisbursed", "LoanRepaid",
                "CreditInterest", "InterestCredited", "SetReceiveLimit", "ReceiveLimitSet", "AccrueLoanInterest",
                "LoanInterestAccrued", "WriteOffLoan", "LoanWrittenOff"})
    assert {row["type"] for row in records} == set(TYPES) - newer
    for row in records:
        value = base64.b64decode(row["value"])
        headers = [(name, base64.b64decode(data)) for name, data in row["headers"]]
        writer = _written_with(row["type"], dict(headers)[HEADER_FINGERPRINT].decode())
        # the record as its writer schema's example; fields added since then read as their defaults
        expected = TYPES[row["type"]](**example_record(writer))
        assert codec.schema_name(value, headers) == row["type"]
        assert codec.decode(value, headers) == expected
        # and written anew, the same record goes out in the wire format
        assert codec.decode(*codec.encode(expected)) == expected and codec.encode(expected)[0][0] == 0
        if writer is CURRENT[row["type"]]:   # the old format with the schema of today: byte for byte the same
            assert codec.encode_legacy(expected) == (value, headers)


def _written_with(name: str, fingerprint: str) -> dict[str, Any]:
    """The released version of a schema with this fingerprint (the current one, or one under schemas/history)."""
    versions = {found: int(version) for version, found in read_lock()[name].items()}
    version = versions[fingerprint]
    return CURRENT[name] if version == version_of(CURRENT[name]) else load_schema(history_path(name, version))


def test_codec_refuses_unknown_fingerprints_and_ids_and_truncated_bodies() -> None:
    codec = get_codec()
    deposit = COMMAND_TYPES["Deposit"](command_id="c", account_id="a", issued_at=datetime.now(UTC),
                                       correlation_id="c", amount=5, currency="EUR", reference="r")
    value, headers = codec.encode(deposit)
    assert codec.decode(value, headers) == deposit
    assert codec.decode(value, []) == deposit          # the name header is for people: the id is what counts
    with pytest.raises(DecodeError, match="unknown schema fingerprint"):
        codec.decode(value, [(HEADER_FINGERPRINT, b"0000000000000000")])
    with pytest.raises(DecodeError):
        codec.decode(value[:-2], headers)
    with pytest.raises(DecodeError, match="unknown schema id"):
        codec.decode(b"\x00\x7f\xff\xff\xff" + value[5:], headers)
    with pytest.raises(DecodeError, match="not in the schema-registry wire format"):
        codec.decode(b"\x01" + value[1:], headers)
    with pytest.raises(DecodeError, match="empty message body"):
        codec.decode(None, headers)
    with pytest.raises(UnexpectedRecordType):
        codec.decode(value, headers, record_types(LEDGER_EVENTS))


def test_every_released_version_has_one_permanent_schema_id() -> None:
    """schemas/schema_ids.json: an id per released version, never two versions with one id; the registry
    serves them all under some subject, in id order within each subject (what a fresh registry reproduces)."""
    ids = read_schema_ids()
    released = {(name, version) for name, versions in read_lock().items() for version in versions}
    assert {(name, version) for name, versions in ids.items() for version in versions} == released
    every_id = [i for versions in ids.values() for i in versions.values()]
    assert len(every_id) == len(set(every_id))
    assert assign_ids(read_lock(), ids) == ids
    catalog = SchemaCatalog(load_registry())
    assert {item.schema_id for items in catalog.subjects.values() for item in items} == set(every_id)
    for items in catalog.subjects.values():
        assert [item.schema_id for item in items] == sorted(item.schema_id for item in items)
        assert [item.version for item in items] == sorted(item.version for item in items)


def test_new_versions_get_the_next_ids_and_old_ids_stay() -> None:
    lock = {"A": {"1": "f1", "2": "f2"}, "B": {"1": "f3"}}
    assert assign_ids(lock, {"B": {"1": 1}}) == {"A": {"1": 2, "2": 3}, "B": {"1": 1}}


def test_subjects_follow_the_topic_naming() -> None:
    """One record type: `<topic>-value` (TopicNameStrategy). Several: `<topic>-<full name>` per type only."""
    catalog = SchemaCatalog(load_registry())
    assert [v.name for v in catalog.subjects[f"{AUDIT}-value"]] == ["AuditRecorded"]
    assert f"{LEDGER_EVENTS}-value" not in catalog.subjects
    assert [v.version for v in catalog.subjects[f"{LEDGER_COMMANDS}-bankstream.commands.Deposit"]] == [1, 2, 3]
    every_event = {name for subject, items in catalog.subjects.items() if subject.startswith(LEDGER_EVENTS + "-")
                   for name in {v.name for v in items}}
    assert every_event == set(record_types(LEDGER_EVENTS))
