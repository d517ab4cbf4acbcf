"""The ledger agent: commands in, events out, per-account state in Faust tables.

Order of work for each batch of commands, which is what makes a crash harmless:
  1. decide every command against the account's state (in memory),
  2. produce the events and wait until the broker has acknowledged them,
  3. only then write the table snapshots (accounts, processed command ids, event-log position),
  4. then the source offsets may be committed (Faust acks the batch after this function returns).
A crash after 2 leaves events in the log that the tables do not reflect yet. So before a partition's
first command after (re)assignment, the agent catches its tables up from the event log; the replayed
command is then recognised as processed and posts nothing. Event ids are deterministic as well, and
`core.ledger.apply` ignores an event the account has already seen.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import TopicPartition

from core import ledger
from core.audit import ACTOR_HEADER
from core.commands import Command
from core.events import CommandRejected, Event
from core.risk.evaluate import ASSESSMENT_HEADER, Assessment
from core.topics import LEDGER_COMMANDS, LEDGER_COMMANDS_DLQ, LEDGER_EVENTS
from infra.logs import TRACE_HEADER, trace_of
from infra.records import actor_of, header
from infra.topics import record_types
from schemas.codec import DecodeError, get_codec
from streams import direct_producer
from streams.app import accounts_table, app, commands_table, commands_topic, events_topic, put, settings
from streams.dead_letters import RecordTooLarge, check_size, send_to_dead_letter
from streams.failpoints import failpoint
from streams.gaps import LazyReader, OffsetGuard
from streams.metrics import COMMAND_LATENCY, COMMANDS_DECIDED, EVENTS_PROCESSED
from streams.retry import retry_batch

log = logging.getLogger(__name__)

BATCH_MAX = 500
BATCH_WITHIN_SECONDS = 0.005
POSITION_KEY = "__position__/{}"          # next event offset the tables reflect
NEXT_COMMAND_KEY = "__next_command__/{}"  # next command offset the agent expects (see streams/gaps.py)
# Read committed data only: after exactly_once traffic the log holds aborted records too.
READ_ISOLATION = "read_committed"
Encoded = tuple[bytes, list[tuple[str, bytes]]]


class Ledger:
    def __init__(self) -> None:
        self.codec = get_codec()
        self.command_types = record_types(LEDGER_COMMANDS)
        self.event_types = record_types(LEDGER_EVENTS)
        self.policy = ledger.LedgerPolicy.of(settings)   # a misconfigured maximum stops the worker at start
        self.caught_up: set[int] = set()
        self._reader = LazyReader(settings.kafka, READ_ISOLATION)
        self.guard = OffsetGuard(LEDGER_COMMANDS, lambda p: commands_table.get(NEXT_COMMAND_KEY.format(p)),
                                 self._reader)

    # ------------------------------------------------------------ catch-up from the event log

    async def catch_up(self, partition: int) -> int:
        """Fold events the tables missed (written before a crash) back into them. Returns how many."""
        start = commands_table.get(POSITION_KEY.format(partition), 0)
        reader = await self._reader()
        tp = TopicPartition(LEDGER_EVENTS, partition)
        reader.assign([tp])
        end = (await reader.end_offsets([tp]))[tp]
        reader.seek(tp, start)
        folded = 0
        while await reader.position(tp) < end:
            batch = await reader.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                try:
                    event = self.codec.decode(record.value, record.headers, self.event_types)
                    self._fold_recovered(partition, event)
                except (DecodeError, ValueError) as error:
                    # Not an event this ledger wrote (unreadable, of another type, out of sequence): it
                    # changes no account here, and stopping on it would stop the partition for good.
                    log.error("%s/%s/%s: skipping an event that does not fold: %s", LEDGER_EVENTS, partition,
                              record.offset, error)
                    continue
                folded += 1
        put(commands_table, partition, POSITION_KEY.format(partition), end)
        self.caught_up.add(partition)
        if folded:
            log.info("partition %s: caught up %s event(s) from offset %s to %s", partition, folded, start, end)
        return folded

    def _fold_recovered(self, partition: int, event: Event) -> None:
        current = accounts_table.get(event.account_id)
        state = ledger.AccountState.from_dict(current) if current else None
        new_state = ledger.apply(state, event)
        if new_state is not None and new_state != state:
            put(accounts_table, partition, event.account_id, new_state.to_dict())
        put(commands_table, partition, event.command_id, 1)

    async def close(self) -> None:
        await self._reader.close()

    # ------------------------------------------------------------ command batches

    async def handle(self, batch: Sequence[faust.EventT]) -> None:
        for partition in {e.message.partition for e in batch} - self.caught_up:
            await self.catch_up(partition)
        now = datetime.now(UTC)
        states: dict[str, ledger.AccountState | None] = {}
        touched: dict[str, int] = {}           # account id -> partition
        processed: list[tuple[int, str]] = []  # (partition, command id)
        seen: set[str] = set()
        decided: list[Decided] = []
        sends = []
        messages = await self.guard.complete([event.message for event in batch])
        for message in messages:
            try:
                check_size(message)   # before decoding: a huge command is nobody's to post
                command: Command = self.codec.decode(message.value, message.headers, self.command_types)
                risk = assessment_of(message.headers)
            except (RecordTooLarge, DecodeError, ValueError) as error:  # ValueError: a malformed risk header
                sends.append(await send_to_dead_letter(LEDGER_COMMANDS_DLQ, message, error))
                continue
            if command.command_id in seen or command.command_id in commands_table:
                COMMANDS_DECIDED.labels(type(command).__name__, "duplicate").inc()
                continue  # a retry or a redelivery: its events are already in the log
            seen.add(command.command_id)
            key = command.account_id
            if key not in states:
                stored = accounts_table.get(key)
                states[key] = ledger.AccountState.from_dict(stored) if stored else None
            results, encoded, states[key] = self._decide(states[key], command, now, risk)
            trace, actor = trace_of(message.headers), actor_of(message.headers)
            for result, record in zip(results, encoded, strict=True):
                sends.append(await self._emit(result, record, message.partition, trace, actor))
            decided.append(Decided(command, results, trace))
            touched[key] = message.partition
            processed.append((message.partition, command.command_id))
        delivered = await asyncio.gather(*sends)
        _report(decided, len(messages))
        failpoint("after_events_acked")
        self._write_snapshots(states, touched, processed, delivered)
        for partition, next_offset in self.guard.advance(messages).items():
            put(commands_table, partition, NEXT_COMMAND_KEY.format(partition), next_offset)
        await direct_producer.flush_tables()

    def _decide(self, state: ledger.AccountState | None, command: Command, now: datetime,
                risk: Assessment | None) -> tuple[list[Event], list[Encoded], ledger.AccountState | None]:
        """The command's events, encoded, and the account after them. Deciding, folding and encoding are pure:
        what raises once raises on every retry, so the command is rejected with the error (`internal_error`)
        instead of being retried until the worker dies, and again after every restart."""
        try:
            events = ledger.decide(state, command, now, risk, self.policy)
            return events, [self.codec.encode(event) for event in events], _folded(state, events)
        except Exception as error:  # noqa: BLE001 - any error of a pure step is the command's, not the batch's
            log.exception("command %s (%s) raised; rejecting it", command.command_id, type(command).__name__)
            rejected = ledger.internal_error(state, command, now, error)
            return [rejected], [self.codec.encode(rejected)], ledger.apply(state, rejected)

    async def _emit(self, event: Event, record: Encoded, partition: int, trace: str | None,
                    actor: bytes | None = None) -> Any:
        value, headers = record
        if trace:  # the command's trace id travels on with its events
            headers.append((TRACE_HEADER, trace.encode()))
        if actor:  # and so does who submitted it (user, role, session)
            headers.append((ACTOR_HEADER, actor))
        return await events_topic.send(key=event.account_id.encode(), value=value, partition=partition,
                                       headers=headers)

    def _write_snapshots(self, states: dict[str, ledger.AccountState | None], touched: dict[str, int],
                         processed: Iterable[tuple[int, str]], delivered: Sequence[Any]) -> None:
        for account_id, partition in touched.items():
            state = states[account_id]
            if state is not None:
                put(accounts_table, partition, account_id, state.to_dict())
        for partition, command_id in processed:
            put(commands_table, partition, command_id, 1)
        # Remember how far the log is reflected, so a catch-up after a crash reads only the tail.
        positions: dict[int, int] = {}
        for meta in delivered:
            if meta.topic == LEDGER_EVENTS:
                positions[meta.partition] = max(positions.get(meta.partition, 0), meta.offset + 1)
        for partition, offset in positions.items():
            put(commands_table, partition, POSITION_KEY.format(partition), offset)

    async def handle_with_retry(self, batch: Sequence[faust.EventT]) -> None:
        """Some of a failed batch's events may have reached the log: catch its partitions up again
        before the retry, which then posts only what is missing."""
        partitions = {e.message.partition for e in batch}
        await retry_batch("ledger", lambda: self.handle(batch),
                          before_retry=lambda: self.caught_up.difference_update(partitions))


def _folded(state: ledger.AccountState | None, events: Iterable[Event]) -> ledger.AccountState | None:
    for event in events:
        state = ledger.apply(state, event)
    return state


def assessment_of(headers: Any) -> Assessment | None:
    """The risk agent's assessment of a forwarded money movement (None: not scored, e.g. risk turned off)."""
    raw = header(headers, ASSESSMENT_HEADER)
    return None if raw is None else Assessment.from_header(raw)


@dataclass(slots=True)
class Decided:
    command: Command
    events: list[Event]
    trace_id: str | None

    @property
    def outcome(self) -> str:
        return "rejected" if isinstance(self.events[0], CommandRejected) else "accepted"


def _report(decided: list[Decided], messages: int) -> None:
    """Once the batch's events are acknowledged: count and time each decision, and log it (one line each)."""
    now = datetime.now(UTC)
    EVENTS_PROCESSED.labels("ledger").inc(messages)
    for d in decided:
        kind = type(d.command).__name__
        COMMANDS_DECIDED.labels(kind, d.outcome).inc()
        COMMAND_LATENCY.labels(kind).observe(max(0.0, (now - d.command.issued_at).total_seconds()))
        log.info("command decided", extra={
            "trace_id": d.trace_id, "command_id": d.command.command_id, "command_type": kind,
            "account_id": d.command.account_id, "outcome": d.outcome, "event_ids": [e.event_id for e in d.events]})


processor = Ledger()


@app.agent(commands_topic)
async def ledger_agent(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_SECONDS):
        await processor.handle_with_retry(batch)


@app.on_partitions_assigned.connect
async def _reset_catch_up(app: faust.App, assigned: set, **kwargs: Any) -> None:
    # A rebalance may hand us a partition another worker wrote to: catch it up again before use.
    processor.caught_up.clear()
    processor.guard.forget()


@app.on_before_shutdown.connect
async def _close_reader(app: faust.App, **kwargs: Any) -> None:
    await processor.close()
