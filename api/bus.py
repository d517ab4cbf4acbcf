"""Puts commands on Kafka: through the risk agent (keyed by customer) or, with risk off, straight to the ledger.

The risk agent forwards every command to the ledger in the order it received it, so per-customer order on
bank.risk.commands keeps per-account order on bank.ledger.commands.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from api.audit import AuditLog
from core.audit import actor_header
from core.commands import Command
from core.topics import LEDGER_COMMANDS, RISK_COMMANDS
from infra.logs import trace_header
from schemas.codec import get_codec


class CommandBus:
    def __init__(self, producer: AIOKafkaProducer, risk_enabled: bool = True, audit: AuditLog | None = None) -> None:
        """`producer`: the process's one producer (the audit log's too, so a command and its audit record travel
        in one produce request), started and stopped by its owner."""
        self.risk_enabled = risk_enabled
        self._audit = audit
        self._producer = producer
        self._codec = get_codec()

    async def send(self, command: Command, customer_id: str) -> None:
        """Returns once the broker has the command (a 202 is a promise the ledger will see it) and the audit trail
        has its submission. The caller (header bank.actor) travels with the command into its events."""
        value, headers = self._codec.encode(command)
        topic, key = (RISK_COMMANDS, customer_id) if self.risk_enabled else (LEDGER_COMMANDS, command.account_id)
        sends = [self._producer.send_and_wait(topic, value, key=key.encode(),
                                              headers=headers + trace_header() + actor_header())]
        if self._audit is not None:  # both at once: one broker round trip per command, not two
            sends.append(self._audit.record("command_submitted", details={
                "command_type": type(command).__name__, "command_id": command.command_id,
                "account_id": command.account_id, "customer_id": customer_id}))
        await asyncio.gather(*sends)

    async def send_to_ledger(self, command: Command) -> None:
        """Straight onto the ledger's command topic, keyed by account, unscored: the rail's reports (an outcome of
        a payment the risk agent already scored, an inbound credit) are the bank's bookkeeping, not a customer's
        request."""
        value, headers = self._codec.encode(command)
        await self._producer.send_and_wait(LEDGER_COMMANDS, value, key=command.account_id.encode(),
                                           headers=headers + trace_header())
