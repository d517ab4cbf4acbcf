"""The topic catalogue: every topic of topics.yaml with the record types it carries, their fields and what they
mean (the schemas' `doc`s), and an example message of each. Pure: the registry and the schemas in, the catalogue
out, rendered as a JSON-able dict, markdown (docs/topics.md, `bank catalog`) or HTML (GET /v1/catalog).

Deterministic: topics in topics.yaml's order, record types in order of first appearance on a topic (then any
other schema by name), examples made from the schema alone, so regenerating after a merge gives the same text.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from core.records import message_json
from core.topics import TopicSpec

GENERATED_BY = "bank catalog"
UNDOCUMENTED = "(undocumented: add a `doc` to the schema)"
EXAMPLE_MOMENT = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)

# Example values of the fields bankstream uses, so every example reads like a real message; other fields get a
# value made from their type.
EXAMPLE_VALUES: dict[str, Any] = {
    "event_id": "0b6f3f9e-8f0c-5a4e-9d7a-3c1e2b4a5d60", "command_id": "4f2d7c1a-6b3e-4d8f-a1c2-9e7b5d3f1a20",
    "correlation_id": "4f2d7c1a-6b3e-4d8f-a1c2-9e7b5d3f1a20", "transfer_id": "4f2d7c1a-6b3e-4d8f-a1c2-9e7b5d3f1a20",
    "case_id": "4f2d7c1a-6b3e-4d8f-a1c2-9e7b5d3f1a20", "account_id": "acc-7d1e4b2a",
    "to_account_id": "acc-93c0f5e1", "from_account_id": "acc-93c0f5e1", "counterparty_account_id": "acc-93c0f5e1",
    "customer_id": "cust-5a8b1c3d", "currency": "EUR", "amount": 1250, "balance_after": 8750,
    "overdraft_limit": 50000, "sequence": 7, "schema_version": 1, "reference": "invoice 2026-118",
    "channel": "transfer", "counterparty_name": "Acme Supplies GmbH", "counterparty_country": "DE",
    "command_type": "Withdraw", "reason": "insufficient_funds", "detail": "balance 10.00 minus 12.50 EUR would "
    "pass the overdraft limit of 0.00", "action": "alert", "score": 40, "rule_set_version": "2026-11-30.1",
    "decision": "approve", "reviewer": "user-2c9d", "comment": "customer confirmed by phone", "held": True,
    "kind": "withdrawal", "rule_id": "large-amount-eur", "severity": "medium", "version": "2026-11-30.1",
    "text": "version: 2026-11-30.1\nrules: []\n", "source": "rules/default.yaml", "published_by": "ops",
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "outcome": "success",
    "actor_user_id": "user-2c9d", "actor_role": "teller", "actor_session_id": "sess-81fa", "ip": "192.0.2.10",
    "subject_user_id": None, "user_agent": "Mozilla/5.0", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "details": {"command_type": "Withdraw"},
}
# Where a record type's field means something else than the same name elsewhere.
RECORD_EXAMPLES: dict[str, dict[str, Any]] = {
    **{name: {"reason": "customer request"} for name in ("AccountFrozen", "AccountUnfrozen", "AccountClosed",
                                                         "FreezeAccount", "UnfreezeAccount", "CloseAccount")},
    **{name: {"reason": "account_frozen"} for name in ("TransferCreditFailed", "TransferReversed", "ReverseTransfer")},
    "AccountOpened": {"sequence": 1, "receive_limit": None},
    "OpenAccount": {"receive_limit": None},
    **{name: {"receive_limit": 100000, "reason": "kyc pending"} for name in ("SetReceiveLimit", "ReceiveLimitSet")},
    "FundsHeld": {"action": "hold"},
    "AuditRecorded": {"action": "command_submitted", "reason": None},
    "RuleHit": {"kind": "large_amount_absolute", "reason": "12.50 EUR is at least the rule's 10.00 EUR"},
    "StandingOrderSet": {"order_id": "so-3e8a1f20", "version": 2, "change": "edited", "status": "active",
                         "reference": "rent", "frequency": "monthly", "start_date": "2027-01-31", "end_date": None,
                         "count": 12, "weekday": None, "day_of_month": 31, "time_zone": "Europe/Berlin",
                         "set_by": "user-2c9d"},
    "StandingOrderOccurrence": {"order_id": "so-3e8a1f20", "occurrence_id": "4f2d7c1a-6b3e-4d8f-a1c2-9e7b5d3f1a20",
                                "number": 2, "due_date": "2027-02-28", "status": "retry_pending", "attempt": 1},
    "LoanProductSet": {"product_id": "personal-eur", "version": 2, "change": "rate_changed", "status": "active",
                       "name": "Personal loan", "principal_min": 100000, "principal_max": 2500000, "term_min": 6,
                       "term_max": 60, "amortisation": "equal_instalments", "frequency": "monthly",
                       "day_count": "ACT/365F", "late_fee_flat": 1500, "late_fee_percent": "0",
                       "origination_fee_flat": 0, "origination_fee_percent": "1", "origination_fee_on": "disbursement",
                       "set_by": "user-2c9d"},
    "RateChange": {"effective_on": "2027-01-01", "annual_rate_percent": "7.9"},
    "LoanApplied": {"product_id": "personal-eur", "product_version": 2, "amount": 1200000, "term": 12,
                    "purpose": "a used car"},
    "LoanAssessed": {"score": 72, "recommendation": "approve", "reasons": ["regular inflows"],
                     "inputs": {"inflows": 840000}, "bureau_score": 712, "bureau_report_id": "CB-9f2c"},
    "LoanReviewed": {"decision": "approve", "reason": None, "amount": 1200000, "term": 12,
                     "annual_rate_percent": "7.9", "approvals_needed": 1},
    "LoanApplicantAnswered": {"answer": "accept_offer"},
    "SavingsProductSet": {"product_id": "savings-eur", "version": 1, "change": "created", "status": "active",
                          "name": "Instant saver", "day_count": "ACT/365F", "set_by": "user-2c9d"},
    "SavingsEnrolled": {"product_id": "savings-eur", "enrolled_on": "2027-01-01"},
    "InterestAccrued": {"product_id": "savings-eur", "accrual_date": "2027-01-31", "balance": 1000000,
                        "annual_rate_percent": "2", "accrued": 54, "carried": "29/73"},
    **{name: {"amount": 1698, "period": "2027-01"} for name in ("CreditInterest", "InterestCredited")},
    "RateEntry": {"base": "EUR", "quote": "USD", "mid_rate": "1.0850", "spread_basis_points": 50},
    "LoanLateFeeCharged": {"instalment": 3, "amount": 1500, "charged_on": "2027-04-16"},
    **{name: {"kind": "scheduled", "paid_on": "2027-02-15", "amount": 104387, "principal": 96487, "interest": 7900,
              "fees": 0, "interest_accrued": 7900} for name in ("RepayLoan", "LoanRepaid")},
    **{name: {"principal": 1200000, "fee": 12000, "amount": 1188000, "disbursed_on": "2027-01-15"}
       for name in ("DisburseLoan", "LoanDisbursed")},
    **{name: {"amount": 263, "from_date": "2027-01-20", "through_date": "2027-01-20", "receivable_after": 4471}
       for name in ("AccrueLoanInterest", "LoanInterestAccrued")},
    "LoanWrittenOff": {"principal": 842100, "interest": 5530, "reason": "uncollectable: 120 days past due"},
    "WriteOffLoan": {"reason": "uncollectable: 120 days past due"},
}


@dataclass(frozen=True, slots=True)
class FieldDoc:
    name: str
    type: str
    doc: str
    default: str | None = None    # the default as JSON, for fields old writers may lack


@dataclass(frozen=True, slots=True)
class RecordDoc:
    name: str
    namespace: str
    version: int
    doc: str
    fields: tuple[FieldDoc, ...]
    topics: tuple[str, ...]
    example: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TopicDoc:
    name: str
    kind: str
    purpose: str
    key: str
    partitions: int
    retention_ms: int
    retention: str
    cleanup_policy: str
    dead_letter: str | None
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    record_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Catalog:
    topics: tuple[TopicDoc, ...]
    records: tuple[RecordDoc, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"generated_by": GENERATED_BY, "topics": [asdict(t) for t in self.topics],
                "record_types": [asdict(r) for r in self.records]}


# ---------------------------------------------------------------- building


def build_catalog(registry: Mapping[str, TopicSpec], schemas: Mapping[str, dict[str, Any]]) -> Catalog:
    topics = tuple(_topic_doc(spec) for spec in registry.values())
    order = [name for topic in topics for name in topic.record_types]
    order += sorted(set(schemas) - set(order))
    records = tuple(_record_doc(name, schemas[name], registry) for name in dict.fromkeys(order) if name in schemas)
    return Catalog(topics=topics, records=records)


def _topic_doc(spec: TopicSpec) -> TopicDoc:
    return TopicDoc(name=spec.name, kind=spec.kind, purpose=" ".join(spec.description.split()), key=spec.key,
                    partitions=spec.partitions, retention_ms=spec.retention_ms, retention=retention_text(spec.retention_ms),
                    cleanup_policy=spec.cleanup_policy, dead_letter=spec.dead_letter, producers=spec.producers,
                    consumers=spec.consumers, record_types=spec.value_schemas)


def retention_text(retention_ms: int) -> str:
    if retention_ms < 0:
        return "forever"
    for unit, size in (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000), ("second", 1000)):
        if retention_ms >= size and retention_ms % size == 0:
            count = retention_ms // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{retention_ms} ms"


def _record_doc(name: str, schema: dict[str, Any], registry: Mapping[str, TopicSpec]) -> RecordDoc:
    topics = tuple(spec.name for spec in registry.values() if name in spec.value_schemas)
    return RecordDoc(name=name, namespace=str(schema.get("namespace", "")),
                     version=int(schema.get("bankstream_version", 1)), doc=_doc(schema),
                     fields=tuple(_field_docs(schema["fields"])), topics=topics,
                     example=_example_message(name, schema, registry[topics[0]] if topics else None))


def _doc(node: dict[str, Any]) -> str:
    return " ".join(str(node.get("doc") or "").split()) or UNDOCUMENTED


def _field_docs(fields: list[dict[str, Any]], prefix: str = "") -> list[FieldDoc]:
    """The fields, with those of records nested in arrays flattened as `hits[].rule_id`."""
    docs: list[FieldDoc] = []
    for field in fields:
        default = json.dumps(field["default"]) if "default" in field else None
        docs.append(FieldDoc(prefix + field["name"], type_text(field["type"]), _doc(field), default))
        nested = _nested_record(field["type"])
        if nested is not None:
            docs.extend(_field_docs(nested["fields"], f"{prefix}{field['name']}[]."))
    return docs


def _nested_record(avro_type: Any) -> dict[str, Any] | None:
    if isinstance(avro_type, dict) and avro_type.get("type") == "array" and isinstance(avro_type["items"], dict) \
            and avro_type["items"].get("type") == "record":
        return avro_type["items"]
    return None


def type_text(avro_type: Any) -> str:
    """An Avro type in a few words: `string`, `long`, `timestamp (µs)`, `string or null`, `array of RuleHit`."""
    if isinstance(avro_type, list):
        return " or ".join(type_text(t) for t in sorted(avro_type, key=lambda t: t == "null"))
    if isinstance(avro_type, str):
        return avro_type
    if avro_type.get("logicalType") == "timestamp-micros":
        return "timestamp (µs)"
    if avro_type.get("logicalType"):
        return str(avro_type["logicalType"])
    if avro_type["type"] == "array":
        return f"array of {type_text(avro_type['items'])}"
    if avro_type["type"] == "map":
        return f"map of {type_text(avro_type['values'])}"
    return str(avro_type.get("name") or avro_type["type"])


# ---------------------------------------------------------------- examples


def _example_message(name: str, schema: dict[str, Any], topic: TopicSpec | None) -> dict[str, Any]:
    value = example_record(schema)
    key = _example_key(topic.key, value) if topic else None
    return message_json(topic.name if topic else "", 0, 42, EXAMPLE_MOMENT, key, name, value)


def example_record(schema: dict[str, Any]) -> dict[str, Any]:
    special = RECORD_EXAMPLES.get(str(schema.get("name")), {})
    return {f["name"]: special[f["name"]] if f["name"] in special else _example_value(f["name"], f["type"])
            for f in schema["fields"]}


def _example_value(name: str, avro_type: Any) -> Any:
    if name in EXAMPLE_VALUES and not _nested_record(avro_type):
        return EXAMPLE_VALUES[name]
    if isinstance(avro_type, list):
        return _example_value(name, next((t for t in avro_type if t != "null"), "null"))
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "timestamp-micros":
            return EXAMPLE_MOMENT
        if avro_type["type"] == "array":
            nested = _nested_record(avro_type)
            return [example_record(nested)] if nested else [_example_value(name, avro_type["items"])]
        if avro_type["type"] == "map":
            return {"key": _example_value(name, avro_type["values"])}
        if avro_type["type"] == "record":
            return example_record(avro_type)
        return _example_value(name, avro_type["type"])
    return {"string": f"<{name}>", "long": 0, "int": 0, "boolean": False, "null": None,
            "double": 0.0, "float": 0.0, "bytes": ""}.get(avro_type, None)


def _example_key(key: str, value: dict[str, Any]) -> str | None:
    """The example value of the field the key is (topics.yaml says `account_id`, or `actor user id (...)`)."""
    for field, example in value.items():
        if key == field or key.startswith(field.replace("_", " ")):
            return None if example is None else str(example)
    return None


# ---------------------------------------------------------------- markdown


def render_markdown(catalog: Catalog) -> str:
    lines = [
        "# Topic catalogue",
        "",
        f"<!-- Generated by `{GENERATED_BY}` from topics.yaml and schemas/*.avsc: edit those, then run "
        f"`{GENERATED_BY}`. tests/unit/test_catalog.py fails when this file is out of date. -->",
        "",
        "Every Kafka topic of bankstream, what it is for, who writes and reads it, and the record types it carries. "
        "Values are Avro; in JSON (`bank tail --json`, the examples below, `GET /v1/catalog`) money is integer "
        "minor units of its `currency` and timestamps are RFC 3339 strings in UTC. Messages are in the "
        "schema-registry wire format (magic byte 0, the writer schema's 4-byte id, the Avro body; the registry at "
        "BANK_SCHEMA_REGISTRY_URL serves the ids), under subjects `<topic>-<record full name>`, and `<topic>-value` "
        "for a topic of one record type. Header `bank.schema.name` names the record type for people.",
        "",
        "| topic | kind | key | partitions | retention | record types |",
        "|---|---|---|---|---|---|",
    ]
    for topic in catalog.topics:
        types = ", ".join(f"[{t}](#{t.lower()})" for t in topic.record_types) or "raw bytes"
        lines.append(f"| [{topic.name}](#{_anchor(topic.name)}) | {topic.kind} | {_cell(topic.key)} | "
                     f"{topic.partitions} | {topic.retention} | {types} |")
    lines += ["", "## Topics", ""]
    for topic in catalog.topics:
        lines += _topic_markdown(topic)
    lines += ["## Record types", ""]
    for record in catalog.records:
        lines += _record_markdown(record)
    return "\n".join(lines).rstrip("\n") + "\n"


def _topic_markdown(topic: TopicDoc) -> list[str]:
    lines = [f"### {topic.name}", "", topic.purpose or UNDOCUMENTED, "",
             f"- **kind:** {topic.kind}", f"- **key:** {topic.key}", f"- **partitions:** {topic.partitions}",
             f"- **retention:** {topic.retention} (`retention.ms` {topic.retention_ms}), cleanup policy "
             f"{topic.cleanup_policy}"]
    if topic.dead_letter:
        lines.append(f"- **dead letters:** [{topic.dead_letter}](#{_anchor(topic.dead_letter)})")
    lines.append(f"- **producers:** {'; '.join(topic.producers) or '(undocumented)'}")
    lines.append(f"- **consumers:** {'; '.join(topic.consumers) or '(undocumented)'}")
    types = ", ".join(f"[{t}](#{t.lower()})" for t in topic.record_types)
    lines.append(f"- **record types:** {types or 'none: raw bytes, not Avro'}")
    return lines + [""]


def _record_markdown(record: RecordDoc) -> list[str]:
    topics = ", ".join(f"[{t}](#{_anchor(t)})" for t in record.topics) or "none"
    lines = [f"### {record.name}", "", record.doc, "",
             f"`{record.namespace}.{record.name}`, schema version {record.version}, on {topics}.", "",
             "| field | type | meaning |", "|---|---|---|"]
    for field in record.fields:
        default = f" Default: `{field.default}`." if field.default is not None else ""
        lines.append(f"| `{field.name}` | {field.type} | {_cell(field.doc)}{default} |")
    example = json.dumps(record.example, indent=2, ensure_ascii=False)
    return lines + ["", "Example (`bank tail --json`):", "", "```json", example, "```", ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(name: str) -> str:
    """GitHub's heading anchor: lower case, dots and other punctuation dropped."""
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch in "-_ ").replace(" ", "-")


# ---------------------------------------------------------------- HTML


def render_html(catalog: Catalog) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>bankstream topic catalogue</title>",
             "<style>body{font-family:sans-serif;max-width:72rem;margin:2rem auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.3rem;vertical-align:top;text-align:left}pre{background:#f6f6f6;"
             "padding:.5rem}</style></head><body><h1>Topic catalogue</h1>", "<h2>Topics</h2>"]
    for topic in catalog.topics:
        parts.append(_topic_html(topic))
    parts.append("<h2>Record types</h2>")
    for record in catalog.records:
        parts.append(_record_html(record))
    return "".join(parts) + "</body></html>\n"


def _topic_html(topic: TopicDoc) -> str:
    esc = html.escape
    rows = [("kind", topic.kind), ("key", topic.key), ("partitions", str(topic.partitions)),
            ("retention", f"{topic.retention} ({topic.cleanup_policy})"), ("dead letters", topic.dead_letter or "-"),
            ("producers", "; ".join(topic.producers)), ("consumers", "; ".join(topic.consumers)),
            ("record types", ", ".join(topic.record_types) or "raw bytes")]
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"<h3 id='{esc(topic.name)}'>{esc(topic.name)}</h3><p>{esc(topic.purpose)}</p><table>{table}</table>"


def _record_html(record: RecordDoc) -> str:
    esc = html.escape
    rows = "".join(f"<tr><td><code>{esc(f.name)}</code></td><td>{esc(f.type)}</td><td>{esc(f.doc)}</td></tr>"
                   for f in record.fields)
    example = esc(json.dumps(record.example, indent=2, ensure_ascii=False))
    return (f"<h3 id='{esc(record.name)}'>{esc(record.name)}</h3><p>{esc(record.doc)}</p>"
            f"<p>on {esc(', '.join(record.topics) or 'no topic')}</p><table><tr><th>field</th><th>type</th>"
            f"<th>meaning</th></tr>{rows}</table><pre>{example}</pre>")
