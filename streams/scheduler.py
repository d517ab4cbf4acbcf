"""The standing-order scheduler: `python -m streams.scheduler` (started by `bank up` and the test stack). The loan
servicer (streams/loan_servicing.py) and the close-of-business job (streams/close_of_business.py) run in the same
process, on the same ticks and ledger follower.

It folds bank.standing-orders from the beginning (core/standing_orders.py `Orders`), follows bank.ledger.events for
the outcomes of the transfers it submitted, reads business time from the one clock (infra/clock.py, bank.clock),
and every BANK_SCHEDULER_INTERVAL submits each due occurrence as a Transfer command (through the risk agent, like
the API's) and records it. The decision is `core.standing_orders.plan` / `outcome`, pure; this module is plumbing.

Exactly once, by construction rather than by coordination: an occurrence's command id derives from the order id
and the due date (its retry's from the occurrence id), the command is sent *before* its record, and the ledger
takes a command id once. So a scheduler killed between the two sends the same command again on restart, a
second scheduler sends the same commands, and a replay of either topic changes nothing; records are idempotent
by their derived event ids. It needs no consumer group: its state is the two topics, re-read at every start (the
ledger's outcomes are kept for transfers only; a bank with a long log would keep them in a table instead).
Its port serves /metrics once it has caught up, which is what the dev stack waits for.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiokafka import ConsumerRecord
from prometheus_client import Counter, start_http_server

from core.audit import ACTOR_HEADER, Actor
from core.events import CommandRejected, TransferDebited, TransferReversed
from core.settings import Settings, get_settings
from core.standing_orders import LedgerAnswer, Orders, SchedulerPolicy, StandingOrderOccurrence, Submit, outcome, plan
from core.topics import LEDGER_COMMANDS, LEDGER_EVENTS, RISK_COMMANDS, STANDING_ORDERS
from infra import kafka_fetch
from infra.clock import BusinessTime
from infra.kafka import TopicFollower
from infra.logs import configure_logging
from infra.producer import create_producer
from infra.topics import record_types
from schemas.codec import get_codec
from streams.close_of_business import CloseOfBusiness
from streams.loan_servicing import LoanServicer

log = logging.getLogger(__name__)

OCCURRENCES = Counter("bank_standing_order_occurrences_total", "Standing-order occurrence records written",
                      ["status"])


class Scheduler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = get_codec()
        self.orders = Orders()
        self.policy = SchedulerPolicy(settings.standing_order_catch_up, settings.standing_order_retry_time)
        self.time = BusinessTime(settings.kafka, settings.clock_control, self.codec)
        self.answers: dict[str, tuple[LedgerAnswer, str | None]] = {}     # transfer command id -> debited/rejected
        self.reversals: dict[str, str | None] = {}                          # transfer command id -> reason
        self.producer = create_producer(settings.kafka, linger_ms=1)
        self._order_types = record_types(STANDING_ORDERS)
        self._event_types = record_types(LEDGER_EVENTS)
        self._orders = TopicFollower(settings.kafka, STANDING_ORDERS, self._take_orders)
        self._ledger = TopicFollower(settings.kafka, LEDGER_EVENTS, self._take_events)
        self.loans = LoanServicer(settings, self.producer)   # the other jobs of business time
        self.close_of_business = CloseOfBusiness(settings, self.producer)

    async def start(self) -> None:
        await self.time.start()
        await self.producer.start()
        await self._orders.start()
        await self.loans.start()
        await self.close_of_business.start()
        await self._ledger.start()
        await asyncio.wait_for(self._orders.caught_up.wait(), 120)
        await asyncio.wait_for(self._ledger.caught_up.wait(), 300)

    async def stop(self) -> None:
        for follower in (self._orders, self._ledger):
            await follower.stop()
        await self.loans.stop()
        await self.close_of_business.stop()
        await self.producer.stop()
        await self.time.stop()

    # ------------------------------------------------------------ reading

    def _take_orders(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            try:
                self.orders.apply(self.codec.decode(record.value, record.headers, self._order_types))
            except ValueError as error:
                log.error("%s/%s/%s: skipped: %s", STANDING_ORDERS, record.partition, record.offset, error)

    def _take_events(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            try:
                event = self.codec.decode(record.value, record.headers, self._event_types)
            except ValueError:
                continue   # not ours to judge: the ledger's readers report such records
            self.loans.take_event(event)
            self.close_of_business.take_event(event)
            if isinstance(event, TransferDebited):
                self.answers.setdefault(event.command_id, ("debited", None))
            elif isinstance(event, CommandRejected):
                self.answers.setdefault(event.command_id, ("rejected", event.reason))
            elif isinstance(event, TransferReversed):
                self.reversals.setdefault(event.correlation_id, event.reason)

    # ------------------------------------------------------------ deciding

    async def tick(self) -> None:
        now = self.time.now()
        for command_id in list(self.orders.commands):
            answer = self.answers.get(command_id)
            if answer is not None and (done := outcome(self.orders, command_id, answer[0], answer[1], now,
                                                       self.policy)) is not None:
                await self._record(done)
            if command_id in self.reversals and (back := outcome(self.orders, command_id, "reversed",
                                                                 self.reversals[command_id], now,
                                                                 self.policy)) is not None:
                await self._record(back)
        for action in plan(self.orders, now, self.policy):
            if isinstance(action, Submit):
                await self._send(action)
                await self._record(action.record)
            else:
                await self._record(action)
        if self.loans.caught_up:
            await self.loans.tick(now)
        if self.close_of_business.caught_up:
            await self.close_of_business.tick(now)

    async def _send(self, action: Submit) -> None:
        command = action.command
        definition = self.orders.orders[action.record.order_id].definition
        value, headers = self.codec.encode(command)
        actor = Actor(definition.set_by, "scheduler", definition.order_id)   # on the customer's behalf
        topic, key = (RISK_COMMANDS, definition.customer_id) if self.settings.risk_enabled else \
            (LEDGER_COMMANDS, command.account_id)
        await self.producer.send_and_wait(topic, value, key=key.encode(),
                                          headers=headers + [(ACTOR_HEADER, actor.header())])

    async def _record(self, record: StandingOrderOccurrence) -> None:
        value, headers = self.codec.encode(record)
        await self.producer.send_and_wait(STANDING_ORDERS, value, key=record.order_id.encode(), headers=headers)
        self.orders.apply(record)   # read our own write: the next tick must not submit it again
        OCCURRENCES.labels(record.status).inc()
        log.info("standing order %s occurrence %s (%s) %s", record.order_id, record.number, record.due_date,
                 record.status, extra={"order_id": record.order_id, "command_id": record.command_id})

    async def run(self, stopping: asyncio.Event) -> None:
        interval = self.settings.scheduler_interval.total_seconds()
        while not stopping.is_set():
            try:
                await self.tick()
            except Exception:   # noqa: BLE001 - a broker hiccup: the next tick decides again (ids are derived)
                log.exception("scheduler tick failed; retrying")
            try:
                await asyncio.wait_for(stopping.wait(), interval)
            except TimeoutError:
                pass


async def main() -> None:
    settings = get_settings()
    configure_logging("scheduler", settings.log_level)
    kafka_fetch.install_for(settings)   # its three followers would spin otherwise
    scheduler = Scheduler(settings)
    await scheduler.start()
    start_http_server(settings.scheduler_port, settings.worker_web_host)   # ready: caught up
    log.info("scheduler caught up: %s order(s)", len(scheduler.orders.orders))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await scheduler.run(stopping)
    finally:
        await scheduler.stop()


if __name__ == "__main__":
    asyncio.run(main())
