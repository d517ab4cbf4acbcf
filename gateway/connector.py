"""The payment gateway connector: `python -m gateway` (settings from BANK_* env vars).

It reads bank.payments.outbound in its own consumer group (bankstream-gateway) and hands each instruction to the
rail adapter BANK_RAIL_ADAPTER names (gateway/adapters.py). Once the rail has the instruction, the connector
records it on the ledger (RecordPaymentOutcome `sent`, straight onto bank.ledger.commands keyed by the debtor
account); a rail that refuses one outright gets it recorded `returned` with the rail's reason code, so the money
goes back. Only then are the batch's offsets committed.

While the rail is down (RailUnavailable) the connector retries the same instruction with exponential backoff
(BANK_RAIL_RETRY_INITIAL up to BANK_RAIL_RETRY_MAX), without limit and without committing past it. An instruction
is never executed twice: the saga may write one twice, and a connector killed after the rail took an instruction
but before committing sends it again, but every submission carries the instruction id (the payment id), which the
connector skips once done and the rail deduplicates; and the ledger ends a payment once (settled or returned).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime

from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import Counter, start_http_server

from core import commands as c
from core.payments import PaymentInstruction
from core.settings import Settings, get_settings
from core.topics import LEDGER_COMMANDS, PAYMENTS_OUTBOUND, PAYMENTS_OUTBOUND_DLQ
from gateway.adapters import RailAdapter, RailRefused, RailUnavailable, adapter_for
from infra import kafka_fetch
from infra.dead_letters import RecordTooLarge, check_size, dead_letter_of
from infra.kafka import create_consumer
from infra.logs import configure_logging
from infra.producer import create_producer
from infra.topics import record_types
from infra.records import Record
from schemas.codec import DecodeError, UnexpectedRecordType, get_codec

log = logging.getLogger("gateway")
GROUP = "bankstream-gateway"
REMEMBERED = 100_000      # instruction ids done, skipped when the topic repeats one
DEAD_LETTERS = Counter("bank_gateway_dead_letters_total", "Records on bank.payments.outbound dead-lettered")
HANDED = Counter("bank_gateway_instructions_total", "Payment instructions handed to the rail, by outcome",
                 ["outcome"])
RETRIES = Counter("bank_gateway_rail_retries_total", "Submissions retried because the rail was unavailable")


class Connector:
    def __init__(self, settings: Settings, adapter: RailAdapter) -> None:
        self.settings = settings
        self.adapter = adapter
        self.codec = get_codec()
        self.types = record_types(PAYMENTS_OUTBOUND)
        self.done: dict[str, None] = {}
        self.consumer = create_consumer(
            PAYMENTS_OUTBOUND, bootstrap=settings.kafka, group_id=GROUP, enable_auto_commit=False,
            # Static membership, like every other consumer group's: the embedded broker never evicts a member that
            # died without leaving (defect 1, streams/broker_workarounds.py), and a connector restarted after a
            # kill -9 then waited for ever to join, its dead predecessor holding the group.
            group_instance_id=f"{settings.worker_id}-gateway",
            auto_offset_reset="earliest", isolation_level="read_committed",
            # Short: a connector killed -9 holds up its successor's join for at most this long. A rail down for
            # longer keeps a batch in hand past it: the group then moves on without this member, whose commit
            # fails, and it rejoins and reads the batch again (instructions already handed over are skipped).
            session_timeout_ms=10_000, max_poll_interval_ms=30_000, rebalance_timeout_ms=10_000)
        self.producer = create_producer(settings.kafka, linger_ms=1)
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        start_http_server(self.settings.gateway_port, addr="127.0.0.1")   # up (the dev stack waits for the port)
        await self.producer.start()
        await self.consumer.start()
        log.info("payment gateway started: adapter %s, rail %s", self.settings.rail_adapter, self.settings.rail)
        try:
            while not self.stopping.is_set():
                batch = await self.consumer.getmany(timeout_ms=500, max_records=200)
                records = [record for records in batch.values() for record in records]
                if not records:
                    continue
                decoded = [await self._decode(record) for record in records]
                instructions = [instruction for instruction in decoded if instruction is not None]
                await asyncio.gather(*(self.hand_over(i) for i in _unique(instructions)))
                try:
                    await self.consumer.commit()
                except (CommitFailedError, IllegalStateError) as error:
                    log.warning("offsets not committed (the group rebalanced meanwhile): %s", error)
        finally:
            await self.consumer.stop()
            await self.producer.stop()
            await self.adapter.close()

    async def _decode(self, record: Record) -> PaymentInstruction | None:
        """The instruction a record holds, or None once a record that holds none is dead-lettered (sent and
        acknowledged before the batch's offsets are committed: a record is never lost, nor handed to the rail)."""
        try:
            check_size(record, self.settings.max_command_bytes)
            instruction = self.codec.decode(record.value or b"", record.headers, self.types)
            if not isinstance(instruction, PaymentInstruction):
                raise UnexpectedRecordType(f"a {type(instruction).__name__} is no payment instruction")
        except (DecodeError, RecordTooLarge) as error:
            letter = dead_letter_of(record, error, self.settings.max_command_bytes)
            log.error("dead-lettering %s/%s/%s: %s", record.topic, record.partition, record.offset, error)
            await self.producer.send_and_wait(PAYMENTS_OUTBOUND_DLQ, letter.value, key=letter.key,
                                              headers=letter.headers)
            DEAD_LETTERS.inc()
            return None
        return instruction

    async def hand_over(self, instruction: PaymentInstruction) -> None:
        if instruction.instruction_id in self.done:
            return
        delay = self.settings.rail_retry_initial.total_seconds()
        while True:
            try:
                submission = await self.adapter.submit(instruction)
                outcome, code, reference = "sent", None, submission.rail_reference
                break
            except RailRefused as refused:
                log.warning("the rail refused payment %s: %s", instruction.instruction_id, refused)
                outcome, code, reference = "returned", refused.reason_code, None
                break
            except RailUnavailable as error:
                if self.stopping.is_set():   # stop without committing: the next connector hands it over
                    raise asyncio.CancelledError from error
                log.warning("rail unavailable for payment %s (%s); retrying in %.2fs", instruction.instruction_id,
                            error, delay)
                RETRIES.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.rail_retry_max.total_seconds())
        command_id = c.payment_outcome_id(instruction.instruction_id, outcome)
        command = c.RecordPaymentOutcome(command_id=command_id, account_id=instruction.account_id,
                                         issued_at=datetime.now(UTC), correlation_id=command_id,
                                         payment_id=instruction.instruction_id, outcome=outcome, reason_code=code,
                                         rail_reference=reference)
        value, headers = self.codec.encode(command)
        await self.producer.send_and_wait(LEDGER_COMMANDS, value, key=command.account_id.encode(), headers=headers)
        self.done[instruction.instruction_id] = None
        HANDED.labels(outcome).inc()
        while len(self.done) > REMEMBERED:
            del self.done[next(iter(self.done))]
        log.info("payment %s handed to the rail: %s", instruction.instruction_id, outcome)


def _unique(instructions: list[PaymentInstruction]) -> list[PaymentInstruction]:
    return list({i.instruction_id: i for i in instructions}.values())


async def main() -> None:
    settings = get_settings()
    configure_logging("gateway", settings.log_level)
    kafka_fetch.install_for(settings)
    connector = Connector(settings, adapter_for(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, connector.stopping.set)
    try:
        await connector.run()
    except asyncio.CancelledError:
        log.info("payment gateway stopped while the rail was unavailable; uncommitted instructions are resent")
