"""Bad records on every command topic go to its dead-letter topic with the error in a header; the agents keep going.

The command topics are the registry's (topics.yaml, kind `command`), so a new one is covered as soon as it is
declared. Each gets garbage, truncated Avro, an unknown schema fingerprint or id, trailing bytes, and oversized records
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
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError

from api.ledger_view import FOLLOWER_FAILPOINT
from core import commands as c
from core import events as e
from core.audit import AuditRecorded
from core.risk.evaluate import ASSESSMENT_HEADER
from core.risk.records import RuleSetPublished
from core.settings import get_settings
from core.payments import PaymentInstruction
from core.topics import LEDGER_COMMANDS, PAYMENTS_OUTBOUND, PAYMENTS_OUTBOUND_DLQ, RISK_COMMANDS, TopicSpec
from infra.kafka import read_topic
from infra.topics import load_registry
from schemas.codec import HEADER_FINGERPRINT, get_codec
from tests.e2e.test_payments import creditor_iban, final_payment, funded, pay
from tests.support import Bank, auth_as, with_customers

pytestmark = pytest.mark.usefixtures("stack")

COMMAND_TOPICS = [spec for spec in load_registry().values() if spec.kind == "command"]
# The command topics a customer's deposit goes through (the agents' own): a good deposit after the poison proves
# the agent went on. bank.payments.outbound is the gateway's, proven by a payment below.
AGENT_COMMAND_TOPICS = [spec for spec in COMMAND_TOPICS if spec.key in ("account_id", "customer_id")]
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


def test_every_command_topic_but_the_gateways_is_an_agents() -> None:
    assert {spec.name for spec in COMMAND_TOPICS} - {spec.name for spec in AGENT_COMMAND_TOPICS} == {PAYMENTS_OUTBOUND}


@pytest.mark.parametrize("spec", AGENT_COMMAND_TOPICS, ids=lambda spec: spec.name)
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
            (value, [(HEADER_FINGERPRINT, b"ffffffffffffffff")]),              # unknown schema (old format)
            (b"\x00\x7f\xff\xff\xff" + value[5:] + marker, headers),             # unknown schema id
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
        deadline = asyncio.get_running_loop().time() + 90   # past 1 MiB of garbage and a 1 MB record, on a loaded CI
        while (await bank.account(account))["balance"] != "1.23" and asyncio.get_running_loop().time() < deadline:
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


# ---------------------------------------------------------------- well-formed records that are still poison


def _foreign_records(account: str, marker: str, topic: str) -> list[Any]:
    """Well-formed records of types `topic` does not carry: an event, an audit record, a rule set, a risk
    assessment; on bank.risk.commands also a saga step (forwarded, it would credit money from nowhere)."""
    now = datetime.now(UTC)
    ids = {"command_id": marker, "correlation_id": marker, "account_id": account}
    records: list[Any] = [
        e.FundsDeposited(event_id=marker, occurred_at=now, sequence=2, amount=5000, currency="EUR",
                         balance_after=5000, **ids),
        AuditRecorded(event_id=marker, occurred_at=now, action="login", outcome="success", reason=None,
                      actor_user_id=None, actor_role=None, actor_session_id=None, subject_user_id=None, ip=None,
                      user_agent=None, trace_id=None),
        RuleSetPublished(version=marker, text="rules: []", source="forged.yaml", sha256="0" * 64, published_at=now,
                         published_by="nobody"),
    ]
    if topic == RISK_COMMANDS:
        records.append(c.CreditTransfer(**ids, issued_at=now, transfer_id=marker, from_account_id="nowhere",
                                        amount=5000, currency="EUR"))
    return records


@pytest.mark.parametrize("spec", AGENT_COMMAND_TOPICS, ids=lambda spec: spec.name)
def test_records_of_a_type_the_topic_does_not_carry_are_dead_lettered(api_url: str, kafka_bootstrap: str,
                                                                       spec: TopicSpec) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        customer = f"dlq-type-{uuid.uuid4().hex[:8]}"
        account = await bank.open(customer=customer)
        key = _key(spec, account, customer)
        codec = get_codec()
        foreign = [codec.encode(record) for record in _foreign_records(account, uuid.uuid4().hex, spec.name)]
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for body, headers in foreign:
                await producer.send_and_wait(spec.name, body, key=key, headers=headers)
        finally:
            await producer.stop()
        response = await bank.deposit(account, "1.23")
        assert response.status_code == 200, "the good command after the foreign records did not post"
        assert (await bank.account(account))["balance"] == "1.23"   # nothing forged was posted
        await bank.close()

        assert spec.dead_letter is not None
        letters = await dead_letters(kafka_bootstrap, spec.dead_letter, key, len(foreign))
        assert sorted(letter.value for letter in letters) == sorted(body for body, _ in foreign)
        for letter in letters:
            error = dict(letter.headers)["dlq.error"].decode()
            assert error.startswith("UnexpectedRecordType: a ") and "does not belong on this topic" in error, error

    asyncio.run(scenario())


def test_bad_records_on_the_payment_instructions_are_dead_lettered_and_payments_still_go_out(
        api_url: str, kafka_bootstrap: str) -> None:
    """The gateway connector hands nothing it cannot read to the rail, loses none of it and keeps going."""
    limit = get_settings().max_command_bytes
    key = f"poison-{uuid.uuid4()}".encode()
    codec = get_codec()
    now = datetime.now(UTC)
    instruction_value, instruction_headers = codec.encode(PaymentInstruction(
        instruction_id=key.decode(), account_id=str(uuid.uuid4()), amount=100, currency="EUR",
        creditor_iban=creditor_iban(), creditor_name="Nobody", creditor_bic=None, remittance_information=None,
        created_at=now))
    foreign = [codec.encode(record) for record in _foreign_records(str(uuid.uuid4()), key.decode(), PAYMENTS_OUTBOUND)]
    poison = [(b"not avro at all", []), (instruction_value[:-3], instruction_headers),
              (instruction_value + b"x" * limit, instruction_headers), *foreign]

    async def scenario(teller: Bank, customer: Bank) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for body, headers in poison:
                await producer.send_and_wait(PAYMENTS_OUTBOUND, body, key=key, headers=headers)
        finally:
            await producer.stop()
        account = await funded(teller, customer)
        payment = await final_payment(customer, await pay(customer, account, "10.00", creditor_iban()))
        assert payment["status"] == "settled", payment

    with_customers(api_url, scenario, "Poppy Payer")
    letters = {dict(letter.headers)["dlq.source"]: letter
               for letter in asyncio.run(dead_letters(kafka_bootstrap, PAYMENTS_OUTBOUND_DLQ, key, len(poison)))}
    errors = sorted(dict(letter.headers)["dlq.error"].decode().split(":")[0] for letter in letters.values())
    assert errors == sorted(["DecodeError", "DecodeError", "RecordTooLarge"] + ["UnexpectedRecordType"] * len(foreign))
    assert sorted(letter.value for letter in letters.values()) == sorted(body[:limit] for body, _ in poison)


def _verdict(action: str, **hit: Any) -> bytes:
    """An assessment header no risk agent writes (it drops any from outside): values no ledger check foresaw."""
    rule = {"rule_id": "forged", "kind": "ctr", "action": action, "severity": "high", "score": 10,
            "reason": "forged"} | hit
    return json.dumps({"score": 10, "action": action, "rule_set_version": "forged", "hits": [rule]}).encode()


def test_a_command_that_raises_is_rejected_with_the_error_and_the_worker_goes_on(stack: Any, api_url: str,
                                                                                 kafka_bootstrap: str) -> None:
    """A rule id that is no string makes decide raise (joining the ids of a block); a score that is no number
    makes the RiskFlagged event fail to encode. Each raised on every retry until the worker died, and again after
    every restart: one record stopped its partition for good."""
    workers = {name: child.popen.pid for name, child in stack.children.items() if name.startswith("worker-")}

    async def scenario() -> None:
        bank = Bank(api_url)
        account = await bank.open()
        codec = get_codec()
        poison = {"decide": _verdict("block", rule_id=7), "encode": _verdict("alert", score="high")}
        ids = {}
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for name, verdict in poison.items():
                command_id = ids[name] = str(uuid.uuid4())
                value, headers = codec.encode(c.Deposit(command_id=command_id, account_id=account, amount=100,
                                                        issued_at=datetime.now(UTC), correlation_id=command_id,
                                                        currency="EUR"))
                await producer.send_and_wait(LEDGER_COMMANDS, value, key=account.encode(),
                                             headers=headers + [(ASSESSMENT_HEADER, verdict)])
        finally:
            await producer.stop()
        response = await bank.deposit(account, "1.23")
        assert response.status_code == 200, response.text
        assert (await bank.account(account))["balance"] == "1.23"
        for name, command_id in ids.items():
            outcome = await bank.command(command_id)
            assert outcome["status"] == "rejected" and outcome["reason"] == "internal_error", (name, outcome)
        assert "TypeError" in (await bank.command(ids["decide"]))["detail"]
        await bank.close()

    asyncio.run(scenario())
    assert {name: child.popen.pid for name, child in stack.children.items()
            if name.startswith("worker-") and child.alive} == workers, "a worker died or was restarted"


def test_readyz_reports_a_dead_ledger_follower(api_url: str, extra_api: Any) -> None:
    """The follower of the API's ledger view feeds `?wait=true` and the positions of every answer: an API whose
    follower has stopped must say it is not ready (for its load balancer), not answer with a frozen view."""
    url = extra_api({"BANK_FAILPOINT": FOLLOWER_FAILPOINT})   # its follower raises on the next records it reads

    async def new_records() -> None:
        bank = Bank(api_url)
        await bank.open()
        await bank.close()

    asyncio.run(new_records())
    deadline = time.monotonic() + 60
    while (response := httpx.get(f"{url}/readyz", timeout=30)).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert response.status_code == 503, response.text
    view = response.json()["checks"]["ledger_view"]
    assert not view["ok"] and "following bank.ledger.events stopped: RuntimeError" in view["error"], view
    # And what needs the view says so at once instead of waiting on it.
    answer = httpx.get(f"{url}/v1/commands/{uuid.uuid4()}", auth=auth_as("teller"), timeout=30)
    assert answer.status_code == 503 and "no longer follows the ledger" in answer.json()["detail"], answer.text
