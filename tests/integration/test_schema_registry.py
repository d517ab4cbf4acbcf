"""The embedded schema registry (schemas/registry_server.py), as a process, through its REST API and through
confluent-kafka's SchemaRegistryClient; and `bank schemas release --registry` into a fresh registry, which must
hand out the ids the writers put in messages (schemas/schema_ids.json)."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from cli.devstack import LOCALHOST, ServiceSpec, Stack, free_port
from core.settings import PROJECT_ROOT
from core.topics import AUDIT, LEDGER_COMMANDS, LEDGER_EVENTS
from infra.topics import load_registry
from schemas.codec import current_schemas, read_schema_ids, version_of
from schemas.registry import SchemaCatalog

DEPOSIT_SUBJECT = f"{LEDGER_COMMANDS}-bankstream.commands.Deposit"


@pytest.fixture
def empty_registry(_session_stack: Stack) -> Iterator[str]:
    """A registry process of its own that knows no schema yet, like a fresh Confluent Schema Registry."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--factory", "schemas.registry_server:create_empty_app",
            "--host", LOCALHOST, "--port", str(port)]
    spec = ServiceSpec(f"schema-registry-empty-{port}", argv, port, death_signal=signal.SIGKILL)
    _session_stack.start(spec)
    yield f"http://{LOCALHOST}:{port}"
    _session_stack.kill(spec.name)


def _release(registry: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "schemas", "release", "--registry", registry,
                           "--registry-only"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                          check=False)


def _deposit_schema_id() -> int:
    return read_schema_ids()["Deposit"][str(version_of(current_schemas()["Deposit"]))]


def test_rest_api_serves_subjects_versions_and_ids(schema_registry_url: str) -> None:
    with httpx.Client(base_url=schema_registry_url) as client:
        subjects = client.get("/subjects").json()
        assert f"{AUDIT}-value" in subjects and DEPOSIT_SUBJECT in subjects
        assert f"{LEDGER_EVENTS}-bankstream.events.FundsDeposited" in subjects
        assert client.get(f"/subjects/{DEPOSIT_SUBJECT}/versions").json() == [1, 2, 3]
        latest = client.get(f"/subjects/{DEPOSIT_SUBJECT}/versions/latest").json()
        assert (latest["version"], latest["id"]) == (3, _deposit_schema_id())
        assert json.loads(latest["schema"]) == current_schemas()["Deposit"]
        first = client.get(f"/subjects/{DEPOSIT_SUBJECT}/versions/1").json()
        assert json.loads(client.get(f"/schemas/ids/{first['id']}").json()["schema"])["bankstream_version"] == 1
        assert client.get("/schemas/ids/999999").status_code == 404
        assert client.get("/subjects/nope-value/versions").json()["error_code"] == 40401
        assert client.get(f"/subjects/{DEPOSIT_SUBJECT}/versions/9").json()["error_code"] == 40402


def test_compatibility_follows_the_project_rule(schema_registry_url: str) -> None:
    """A new field without a default cannot read what earlier versions wrote; with one it can."""
    breaking = copy.deepcopy(current_schemas()["Deposit"])
    breaking["fields"].append({"name": "branch_code", "type": "string"})
    with httpx.Client(base_url=schema_registry_url) as client:
        url = f"/compatibility/subjects/{DEPOSIT_SUBJECT}/versions/latest"
        answer = client.post(url, json={"schema": json.dumps(breaking)}).json()
        assert answer["is_compatible"] is False and "version 1" in " ".join(answer["messages"])
        breaking["fields"][-1]["default"] = "head-office"
        assert client.post(url, json={"schema": json.dumps(breaking)}).json()["is_compatible"] is True
        assert client.post(url, json={"schema": "{not json"}).status_code == 422


def test_confluent_client_reads_checks_and_registers(schema_registry_url: str) -> None:
    client = SchemaRegistryClient({"url": schema_registry_url})
    assert DEPOSIT_SUBJECT in client.get_subjects()
    latest = client.get_latest_version(DEPOSIT_SUBJECT)
    assert (latest.schema_id, latest.version) == (_deposit_schema_id(), 3)
    assert json.loads(client.get_schema(latest.schema_id).schema_str) == current_schemas()["Deposit"]
    # registering what is there answers its id; a compatible new version gets the next free id
    assert client.register_schema(DEPOSIT_SUBJECT, Schema(latest.schema.schema_str, "AVRO")) == latest.schema_id
    newer = copy.deepcopy(current_schemas()["Deposit"])
    newer["fields"].append({"name": "branch_code", "type": "string", "default": "head-office"})
    assert client.test_compatibility(DEPOSIT_SUBJECT, Schema(json.dumps(newer), "AVRO")) is True
    new_id = client.register_schema(DEPOSIT_SUBJECT, Schema(json.dumps(newer), "AVRO"))
    assert new_id == max(SchemaCatalog(load_registry()).by_id) + 1
    breaking = copy.deepcopy(newer)
    breaking["fields"].append({"name": "teller", "type": "string"})
    assert client.test_compatibility(DEPOSIT_SUBJECT, Schema(json.dumps(breaking), "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(DEPOSIT_SUBJECT, Schema(json.dumps(breaking), "AVRO"))
    assert refused.value.http_status_code == 409


def test_release_into_a_fresh_registry_gives_the_writers_ids(empty_registry: str) -> None:
    """`bank schemas release --registry URL --registry-only` (twice: the second finds everything registered)
    leaves a registry whose subjects and ids agree with the embedded one's: messages' ids mean the same schemas."""
    for _ in range(2):
        done = _release(empty_registry)
        assert done.returncode == 0, done.stdout + done.stderr
    expected = SchemaCatalog(load_registry())
    with httpx.Client(base_url=empty_registry) as client:
        assert client.get("/subjects").json() == sorted(expected.subjects)
        for subject, versions in expected.subjects.items():
            for number, item in enumerate(versions, start=1):
                served = client.get(f"/subjects/{subject}/versions/{number}").json()
                assert served["id"] == item.schema_id, (subject, number)
                assert json.loads(client.get(f"/schemas/ids/{item.schema_id}").json()["schema"]) == item.schema


def test_release_refuses_a_registry_that_hands_out_other_ids(empty_registry: str) -> None:
    """A registry that already holds a foreign schema numbers ours from 2: writers' ids would name the wrong
    schemas there, so the release fails and says so."""
    foreign = {"type": "record", "name": "Foreign", "namespace": "elsewhere", "fields": [{"name": "x", "type": "int"}]}
    with httpx.Client(base_url=empty_registry) as client:
        assert client.post("/subjects/elsewhere-value/versions", json={"schema": json.dumps(foreign)}).json() == {"id": 1}
    done = _release(empty_registry)
    assert done.returncode == 1
    assert "the registry gave AccountClosed v1 id 2, writers use 1" in " ".join(done.stdout.split()), done.stdout
