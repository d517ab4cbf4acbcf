"""Bad records on every command topic go to its dead-letter topic with the error in a header; the agents keep going.

The command topics are the registry's (topics.yaml, kind `command`), so a new one is covered as soon as it is
declared. Each gets garbage, truncated Avro, an unknown schema fingerprint, trailing bytes, and oversized records
(nearly 1 MiB of garbage, and a well-formed Avro command with a 1 MB field), then a good command that must post.

Size limits, as measured against the embedded broker (and Kafka's defaults):
- a producer refuses a record over its `max_request_size` (aiokafka: 1 MiB) before sending it;
- the broker refuses a batch over the topic's `max.message.bytes` (1,048,588 bytes): a bigger record never
  reaches a command topic at all;
- a record that does get there but is over BANK_MAX_COMMAND_BYTES (64 KiB) is dead-lettered undecoded
  (`RecordTooLarge`), as its first 64 KiB with `dlq.truncated` = its size: its full copy plus the dead-letter
  headers would not fit under the limits above, and a dead letter that cannot be sent would stop the partition.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError

from core import commands as c
from core.risk.evaluate import ASSESSMENT_HEADER
from core.settings import get_settings
from core.topics import LEDGER_COMMANDS, TopicSpec
from infra.kafka import read_topic
from infra.topics import load_registry
from schemas.codec import HEADER_FINGERPRINT, get_codec
from tests.support import Bank

pytestmark = pytest.mark.usefixtures("stack")

COMMAND_TOPICS = [spec for spec in load_registry().values() if spec.kind == "command"]
MIB = 1024 * 1024
ABOUT_1_MB = 1_000_000     # under every limit above but BANK_MAX_COMMAND_BYTES
# About the largest record a producer with the default 1 MiB max_request_size sends (key and Kafka's overhead
# take the rest): its full copy plus the dead-letter headers would be refused, by the agent's producer and by
# the broker alike. Before dead letters were bounded, such a record crashed its agent, again after each restart.
EDGE_OF_1_MIB = MIB - 150


def test_every_command_topic_has_a_dead_letter_topic() -> None:
    assert COMMAND_TOPICS, "topics.yaml declares no command topic"
    registry = load_registry()
    for spec in COMMAND_TOPICS:
        assert spec.dead_letter is not None, f"{spec.name} has no dead_letter topic"
        assert registry[spec.dead_letter].kind == "deadletter"


async def dead_letters(bootstrap: str, topic: str, key: bytes, expected: int, timeout: float = 30.0) -> list:
    """The dead letters with this key, once there are `expected` of them (or what there is at the timeout): the
    whole topic is read to its end each time (a dead letter is sent just before the agent moves on)."""
    deadline = time.monotonic() + timeout
    while True:
        letters = [r for r in (await read_topic(bootstrap, topic)).records if r.key == key]
        if len(letters) >= expected or time.monotonic() > deadline:
            return letters
        await asyncio.sleep(0.2)


def _key(spec: TopicSpec, account: str, customer: str) -> bytes:
    keys = {"account_id": account, "customer_id": customer}
    assert spec.key in keys, f"{spec.name} is keyed by {spec.key!r}: teach this test to make such a key"
    return keys[spec.key].encode()


@pytest.mark.parametrize("spec", COMMAND_TOPICS, ids=lambda spec: spec.name)
def test_bad_records_go_to_the_dead_letter_topic_and_good_commands_still_post(api_url: str, kafka_bootstrap: str,
                                                                               spec: TopicSpec) -> None:
    limit = get_settings().max_command_bytes

    async def scenario() -> None:
        bank = Bank(api_url)
        customer = f"dlq-{uuid.uuid4().hex[:8]}"
        account = await bank.open(customer=customer)
        key = _key(spec, account, customer)
        codec = get_codec()

        def deposit(**fields: Any) -> tuple[bytes, list[tuple[str, bytes]]]:
            command_id = str(uuid.uuid4())
            return codec.encode(c.Deposit(command_id=command_id, account_id=account, issued_at=datetime.now(UTC),
                                          correlation_id=command_id, amount=123, currency="EUR", **fields))

        value, headers = deposit()
        marker = uuid.uuid4().hex.encode()
        huge, huge_headers = deposit(reference="x" * ABOUT_1_MB)          # well-formed Avro, one huge field
        poison = [
            (b"not avro at all " + marker, []),
            (value[:-3], headers),                                              # truncated Avro
            (value, [(HEADER_FINGERPRINT, b"ffffffffffffffff")]),              # unknown schema
            (value + b"trailing" + marker, headers),
            (marker + b"\xff" * (EDGE_OF_1_MIB - len(marker)), []),            # 1 MiB of garbage, nearly
            (huge, huge_headers),
        ]
        if spec.name == LEDGER_COMMANDS:  # a verdict the ledger cannot read is not a verdict to guess at
            poison.append((value + marker[:0], headers + [(ASSESSMENT_HEADER, b"{not json " + marker)]))
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)   # the default 1 MiB max_request_size
        await producer.start()
        try:
            for body, hdrs in poison:
                await producer.send_and_wait(spec.name, body, key=key, headers=hdrs)
            await producer.send_and_wait(spec.name, value, key=key, headers=headers)
        finally:
            await producer.stop()
        for _ in range(200):
            if (await bank.account(account))["balance"] == "1.23":
                break
            await asyncio.sleep(0.1)
        assert (await bank.account(account))["balance"] == "1.23", "the good command after the bad ones did not post"
        await bank.close()

        assert spec.dead_letter is not None
        letters = await dead_letters(kafka_bootstrap, spec.dead_letter, key, len(poison))
        assert len(letters) == len(poison)
        sizes = [(body, len(key) + len(body) + sum(len(k.encode()) + len(v) for k, v in hdrs)) for body, hdrs in poison]
        oversized = {body[:limit]: size for body, size in sizes if size > limit}
        assert len(oversized) == 2
        assert sorted(r.value for r in letters) == sorted(body[:limit] if size > limit else body for body, size in sizes)
        for letter in letters:
            letter_headers = dict(letter.headers)
            error = letter_headers["dlq.error"].decode()
            assert letter_headers["dlq.source"].decode().startswith(f"{spec.name}/")
            if letter.value in oversized:    # a bounded copy of an oversized record: error, original size
                assert error.startswith("RecordTooLarge: the record is "), error
                assert int(letter_headers["dlq.truncated"]) == oversized[letter.value]
            else:
                assert error.startswith(("DecodeError", "ValueError: not an assessment")), error
                assert "dlq.truncated" not in letter_headers

    asyncio.run(scenario())


@pytest.mark.parametrize("spec", COMMAND_TOPICS, ids=lambda spec: spec.name)
def test_records_over_kafkas_limit_are_refused_at_produce_time(kafka_bootstrap: str, spec: TopicSpec) -> None:
    """What never reaches a command topic: the producer (max_request_size, 1 MiB by default) refuses a bigger
    record before sending it; a producer allowed more meets the broker's limit (the topic's max.message.bytes).
    The agents' own limit (BANK_MAX_COMMAND_BYTES) is far enough under it for their dead letters to fit."""

    async def scenario() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name)])
            configs = {entry[0]: entry[1] for entry in described.resources[0][4]}
        finally:
            await admin.close()
        broker_limit = int(configs["max.message.bytes"])
        assert get_settings().max_command_bytes + 4 * 1024 < broker_limit

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        generous = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=4 * MIB)
        await producer.start()
        await generous.start()
        try:
            with pytest.raises(MessageSizeTooLargeError):          # the client's limit, before any request
                await producer.send(spec.name, b"x" * MIB, key=b"too-large")
            with pytest.raises(MessageSizeTooLargeError):          # the broker's
                await generous.send_and_wait(spec.name, b"x" * (broker_limit + 1), key=b"too-large")
        finally:
            await producer.stop()
            await generous.stop()

    asyncio.run(scenario())
