"""Undecodable commands go to the dead-letter topic with the error in a header; the agent keeps going."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from core import commands as c
from core.risk.evaluate import ASSESSMENT_HEADER
from core.topics import LEDGER_COMMANDS, LEDGER_COMMANDS_DLQ, RISK_COMMANDS, RISK_COMMANDS_DLQ
from schemas.codec import HEADER_FINGERPRINT, get_codec
from tests.support import Bank

pytestmark = pytest.mark.usefixtures("stack")


async def dead_letters(bootstrap: str, topic: str = LEDGER_COMMANDS_DLQ) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=2000)
        return [r for records in batches.values() for r in records]
    finally:
        await consumer.stop()


@pytest.mark.parametrize("topic, dead_letter_topic", [(LEDGER_COMMANDS, LEDGER_COMMANDS_DLQ),
                                                      (RISK_COMMANDS, RISK_COMMANDS_DLQ)])
def test_garbage_goes_to_the_dead_letter_topic_and_good_commands_still_post(api_url: str, kafka_bootstrap: str,
                                                                            topic: str,
                                                                            dead_letter_topic: str) -> None:
    """Every command topic: the ledger's (keyed by account) and the risk agent's (keyed by customer)."""

    async def scenario() -> None:
        bank = Bank(api_url)
        customer = f"dlq-{uuid.uuid4().hex[:8]}"
        account = await bank.open(customer=customer)
        key = (account if topic == LEDGER_COMMANDS else customer).encode()
        codec = get_codec()
        command_id = str(uuid.uuid4())
        good = c.Deposit(command_id=command_id, account_id=account, issued_at=datetime.now(UTC),
                         correlation_id=command_id, amount=123, currency="EUR")
        value, headers = codec.encode(good)
        marker = uuid.uuid4().hex.encode()
        poison = [
            (b"not avro at all " + marker, []),
            (value[:-3], headers),                                              # truncated Avro
            (value, [(HEADER_FINGERPRINT, b"ffffffffffffffff")]),              # unknown schema
            (value + b"trailing" + marker, headers),
        ]
        if topic == LEDGER_COMMANDS:  # a verdict the ledger cannot read is not a verdict to guess at
            poison.append((value + marker[:0], headers + [(ASSESSMENT_HEADER, b"{not json " + marker)]))
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for body, hdrs in poison:
                await producer.send_and_wait(topic, body, key=key, headers=hdrs)
            await producer.send_and_wait(topic, value, key=key, headers=headers)
        finally:
            await producer.stop()
        for _ in range(100):
            if (await bank.account(account))["balance"] == "1.23":
                break
            await asyncio.sleep(0.1)
        assert (await bank.account(account))["balance"] == "1.23"
        await bank.close()
        letters = [r for r in await dead_letters(kafka_bootstrap, dead_letter_topic) if r.key == key]
        assert len(letters) == len(poison)
        errors = [dict(r.headers)["dlq.error"].decode() for r in letters]
        assert all(err.startswith(("DecodeError", "ValueError: not an assessment")) for err in errors), errors
        assert sorted(r.value for r in letters) == sorted(body for body, _ in poison)

    asyncio.run(scenario())
