"""The topic catalogue (docs/topics.md) is generated from topics.yaml and the schemas, and kept in sync with them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import fastavro
from typer.testing import CliRunner

from cli.main import app
from core.audit import AUDIT_TYPES
from core.catalog import UNDOCUMENTED, build_catalog, example_record, render_html, render_markdown
from core.clock import CLOCK_TYPES
from core.lending import LOAN_TYPES
from core.fx import FX_TYPES
from core.savings import INTEREST_TYPES
from core.standing_orders import STANDING_ORDER_TYPES
from core.commands import COMMAND_TYPES
from core.events import EVENT_TYPES
from core.payments import PAYMENT_TYPES
from core.risk.records import RISK_TYPES
from core.topics import parse_registry
from schemas.catalog import CATALOG_FILE, TOPICS_FILE, current_catalog
from schemas.codec import current_schemas, get_codec

TYPES = {**COMMAND_TYPES, **EVENT_TYPES, **RISK_TYPES, **AUDIT_TYPES, **CLOCK_TYPES, **PAYMENT_TYPES,
         **STANDING_ORDER_TYPES, **LOAN_TYPES, **INTEREST_TYPES, **FX_TYPES}


def test_docs_topics_md_is_in_sync_with_topics_yaml_and_the_schemas() -> None:
    assert CATALOG_FILE.read_text() == render_markdown(current_catalog()), (
        "docs/topics.md is out of date with topics.yaml or schemas/*.avsc: run `bank catalog`")


def test_every_topic_says_what_it_is_for_and_who_writes_and_reads_it() -> None:
    for topic in current_catalog().topics:
        assert topic.purpose and topic.producers and topic.consumers, f"{topic.name}: document it in topics.yaml"


def test_every_record_type_and_field_has_a_meaning() -> None:
    undocumented = [f"{record.name}.{field.name}" for record in current_catalog().records
                    for field in record.fields if field.doc == UNDOCUMENTED]
    undocumented += [record.name for record in current_catalog().records if record.doc == UNDOCUMENTED]
    assert undocumented == [], "add a `doc` to these in schemas/*.avsc (docs do not change fingerprints)"


def test_the_catalogue_covers_every_topic_record_type_and_field() -> None:
    text = CATALOG_FILE.read_text()
    registry = parse_registry(TOPICS_FILE.read_text())
    for name, spec in registry.items():
        assert f"### {name}\n" in text
        for record_type in spec.value_schemas:
            assert f"[{record_type}](#{record_type.lower()})" in text
    for name, schema in current_schemas().items():
        section = text.split(f"### {name}\n", 1)[1].split("\n### ", 1)[0]
        for field in schema["fields"]:
            assert f"| `{field['name']}` |" in section, f"{name}.{field['name']}"
        assert '"type": "' + name + '"' in section   # its example message


def test_every_example_is_a_valid_record_of_its_type() -> None:
    """The examples are what `bank tail --json` would print: valid Avro that the codec round-trips."""
    codec = get_codec()
    for name, schema in current_schemas().items():
        record = example_record(schema)
        assert fastavro.validation.validate(record, fastavro.parse_schema(schema), raise_errors=False), name
        typed = TYPES[name](**record)
        assert codec.decode(*codec.encode(typed)) == typed


def test_the_generator_is_deterministic_and_follows_the_sources() -> None:
    registry_text = TOPICS_FILE.read_text()
    schemas = current_schemas()
    first = render_markdown(build_catalog(parse_registry(registry_text), schemas))
    assert first == render_markdown(build_catalog(parse_registry(registry_text), current_schemas()))
    changed = registry_text.replace("partitions: 3\n", "partitions: 12\n", 1)
    assert "| [bank.audit](#bankaudit) | event | actor user id (or \"anonymous\") | 12 |" in render_markdown(
        build_catalog(parse_registry(changed), schemas))
    assert "<h3 id='bank.ledger.events'>" in render_html(build_catalog(parse_registry(registry_text), schemas))


def test_bank_catalog_check_fails_on_a_stale_file_and_writes_a_fresh_one(tmp_path: Path) -> None:
    stale = tmp_path / "topics.md"
    stale.write_text(re.sub(r"\| 7 days \|", "| 6 days |", CATALOG_FILE.read_text()))
    runner = CliRunner()
    assert runner.invoke(app, ["catalog", "--check", "--output", str(stale)]).exit_code == 1
    assert runner.invoke(app, ["catalog", "--output", str(stale)]).exit_code == 0
    assert stale.read_text() == CATALOG_FILE.read_text()
    assert runner.invoke(app, ["catalog", "--check", "--output", str(stale)]).exit_code == 0


def test_field_names_in_the_catalogue_are_the_domain_classes_fields() -> None:
    for record in current_catalog().records:
        top_level = [f.name for f in record.fields if "[]." not in f.name]
        assert top_level == [f.name for f in dataclasses.fields(TYPES[record.name])]
