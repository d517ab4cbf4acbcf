"""Puts commands on the command topic, keyed by the account they act on."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from core.commands import Command
from core.logs import trace_header
from core.topics import LEDGER_COMMANDS
from schemas.codec import get_codec


class CommandBus:
    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                          linger_ms=1)
        self._codec = get_codec()

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, command: Command) -> None:
        """Returns once the broker has the command: a 202 is a promise the ledger will see it."""
        value, headers = self._codec.encode(command)
        await self._producer.send_and_wait(LEDGER_COMMANDS, value, key=command.account_id.encode(),
                                           headers=headers + trace_header())
