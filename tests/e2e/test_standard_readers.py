"""Analysts' tools read the topics without bankstream: confluent-kafka's Consumer and AvroDeserializer with its
SchemaRegistryClient against the embedded registry decode every record of every topic that carries records, field
for field what bankstream's own codec reads; and the examples in examples/ (aiokafka + the registry + fastavro,
and the pandas daily volumes) run on a day of generated events.

bankstream's codec appears here only to state what the records must be, never to decode for the standard tools.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from core.settings import PROJECT_ROOT
from core.topics import LEDGER_EVENTS
from infra.kafka import read_topic
from infra.topics import load_registry
from schemas.codec import DecodeError, get_codec
from tests.support import Bank

EXAMPLES = PROJECT_ROOT / "examples"
MOVEMENTS = {"FundsDeposited": "deposit", "FundsWithdrawn": "withdrawal", "TransferDebited": "transfer"}


@dataclasses.dataclass
class Activity:
    accounts: list[str]
    customer: str


async def _generate(api_url: str, bootstrap: str) -> Activity:
    """A customer's day: three accounts, deposits, withdrawals, a transfer, a freeze and an unfreeze."""
    teller, customer = Bank(api_url), await Bank.customer(api_url, "Ana Lyst")
    try:
        accounts = [await teller.open(customer=customer.customer_id) for _ in range(3)]
        for account, amount in zip(accounts, ("250.00", "80.50", "12.34"), strict=True):
            assert (await teller.deposit(account, amount)).status_code == 200
        assert (await teller.withdraw(accounts[0], "20.00")).status_code == 200
        transfer = await teller.transfer(accounts[0], accounts[1], "30.00")
        assert transfer.json()["status"] == "accepted", transfer.text
        assert (await teller.post(f"/v1/accounts/{accounts[2]}/freeze")).status_code == 200
        assert (await teller.post(f"/v1/accounts/{accounts[2]}/unfreeze")).status_code == 200
    finally:
        await teller.close()
        await customer.close()
    await _until_completed(bootstrap, transfer.json()["command_id"])
    return Activity(accounts, str(customer.customer_id))


async def _until_completed(bootstrap: str, transfer_id: str) -> None:
    codec, deadline = get_codec(), time.monotonic() + 90
    while time.monotonic() < deadline:
        for record in (await read_topic(bootstrap, LEDGER_EVENTS)).records:
            if codec.schema_name(record.value, record.headers) == "TransferCompleted":
                if codec.decode(record.value, record.headers).transfer_id == transfer_id:
                    return
        await asyncio.sleep(0.5)
    raise AssertionError(f"transfer {transfer_id} did not complete")


@pytest.fixture(scope="module")
def activity(api_url: str, kafka_bootstrap: str) -> Activity:
    return asyncio.run(_generate(api_url, kafka_bootstrap))


def _confluent_read(bootstrap: str, topic: str) -> list[Any]:
    """Every message of `topic` up to its end, with librdkafka (confluent-kafka's Consumer), no group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"analyst-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in partitions}
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _high) in ends.items()])
        messages, deadline = [], time.monotonic() + 120
        pending = {p for p, (low, high) in ends.items() if high > low}
        while pending:
            assert time.monotonic() < deadline, f"{topic}: not read to its end in time"
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
            for position in consumer.position([TopicPartition(topic, p) for p in pending]):
                if position.offset >= ends[position.partition][1]:
                    pending.discard(position.partition)
        return messages
    finally:
        consumer.close()


def test_confluent_avro_deserializer_reads_every_topic(schema_registry_url: str, kafka_bootstrap: str,
                                                       activity: Activity) -> None:
    registry = SchemaRegistryClient({"url": schema_registry_url})
    deserializer = AvroDeserializer(registry)
    codec = get_codec()
    seen: Counter[str] = Counter()
    topics = [spec.name for spec in load_registry().values() if spec.value_schemas]
    for topic in topics:
        for message in _confluent_read(kafka_bootstrap, topic):
            try:
                expected = codec.decode(message.value(), message.headers())
            except DecodeError:
                continue   # a poison message another test wrote on purpose: nobody reads it
            value = deserializer(message.value(), SerializationContext(topic, MessageField.VALUE))
            assert value == {f.name: getattr(expected, f.name) for f in dataclasses.fields(expected)}, (topic, value)
            seen[type(expected).__name__] += 1
    # what the activity wrote is among it: commands, money events, the saga, the audit trail, risk assessments
    wanted = {"OpenAccount", "Deposit", "Withdraw", "Transfer", "FreezeAccount", "UnfreezeAccount", "AccountOpened",
              "FundsDeposited", "FundsWithdrawn", "TransferDebited", "TransferCredited", "TransferCompleted",
              "AccountFrozen", "AccountUnfrozen", "CreditTransfer", "CompleteTransfer", "AuditRecorded",
              "RiskAssessed"}
    assert wanted <= set(seen), wanted - set(seen)


def _run_example(script: str, *args: str) -> str:
    """Runs an example as an analyst would: its own directory, no bankstream on the path."""
    done = subprocess.run([sys.executable, script, *args], cwd=EXAMPLES, capture_output=True, text=True,
                          timeout=300, check=False, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stderr, file=sys.stderr)   # shown with a failure: what the example said of what it skipped
    return done.stdout


def test_plain_consumer_example_decodes_the_events(schema_registry_url: str, kafka_bootstrap: str,
                                                   activity: Activity) -> None:
    lines = [json.loads(line) for line in _run_example(
        "consumer.py", "--bootstrap", kafka_bootstrap, "--registry", schema_registry_url).splitlines()]
    ours = {(line["partition"], line["offset"]): line for line in lines
            if line["value"]["account_id"] in activity.accounts}
    log = {(record.partition, record.offset): event
           for record in asyncio.run(read_topic(kafka_bootstrap, LEDGER_EVENTS)).records
           if (event := get_codec().decode(record.value, record.headers)).account_id in activity.accounts}
    assert sorted(ours) == sorted(log) != []
    for position, event in log.items():
        line = ours[position]
        assert line["type"] == type(event).__name__
        assert set(line["value"]) == {f.name for f in dataclasses.fields(event)}
        assert line["value"]["event_id"] == event.event_id
        assert datetime.fromisoformat(line["value"]["occurred_at"]) == event.occurred_at
    opened = next(line for line in ours.values() if line["type"] == "AccountOpened")
    assert opened["value"]["customer_id"] == activity.customer


def test_pandas_daily_volumes_example(schema_registry_url: str, kafka_bootstrap: str, activity: Activity) -> None:
    day = datetime.now(UTC).date()
    rows = [json.loads(line) for line in _run_example(
        "daily_volumes.py", "--bootstrap", kafka_bootstrap, "--registry", schema_registry_url, "--day", str(day),
        "--json").splitlines()]
    expected: dict[tuple[str, str, str], list[int]] = {}
    for record in asyncio.run(read_topic(kafka_bootstrap, LEDGER_EVENTS)).records:
        try:
            event = get_codec().decode(record.value, record.headers)
        except DecodeError:
            continue
        kind = type(event).__name__
        if kind in MOVEMENTS and event.occurred_at.date() == day:
            totals = expected.setdefault((str(day), MOVEMENTS[kind], event.currency), [0, 0])
            totals[0] += 1
            totals[1] += event.amount
    assert {(r["day"], r["movement"], r["currency"]): [r["count"], r["total_minor"]] for r in rows} == expected
    assert expected[(str(day), "deposit", "EUR")][1] >= 25000 + 8050 + 1234
