"""The ledger agent: commands in, events out, per-account state in the engine's tables (streams/tables.py), on the
batch engine (streams/checkpoint.py), which owns the crash-safe order: decide, send and wait for the events, keep
the state, then let the offsets be committed.

The event log is the ledger's changelog: the tables (accounts, processed command ids, how far the log is folded
in) are snapshots written every BANK_LEDGER_SNAPSHOT_INTERVAL, not per batch. A crash leaves events in the log that
the snapshots do not reflect; so before a partition's first command after (re)assignment, the agent folds the
log's tail since the snapshot's position back into its tables, and a replayed command is then recognised as
processed and posts nothing. Event ids are deterministic as well, and `core.ledger.apply` ignores an event the
account has already seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition

from core import ledger
from core.audit import ACTOR_HEADER
from core.commands import Command
from core.events import CommandRejected, Event
from core.risk.evaluate import ASSESSMENT_HEADER, Assessment
from core.saga import steps_here
from core.topics import LEDGER_COMMANDS, LEDGER_COMMANDS_DLQ, LEDGER_EVENTS
from infra.kafka import TailPoll, partition_for
from infra.logs import TRACE_HEADER, log_each, trace_of
from infra.records import actor_of, header
from infra.topics import record_types
from schemas.codec import DecodeError, get_codec
from streams.app import at_shutdown, settings
from streams.checkpoint import Batch, RememberedIds, agent
from streams.consumer import worker_consumer
from streams.dead_letters import RecordTooLarge, check_size
from streams.gaps import LazyReader
from streams.metrics import COMMAND_LATENCY, COMMANDS_DECIDED
from streams.tables import accounts_table, commands_table

log = logging.getLogger(__name__)

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
        self.processed = RememberedIds(commands_table, settings.processed_retention)
        self._reader = LazyReader(settings.kafka, READ_ISOLATION)

    # ------------------------------------------------------------ catch-up from the event log

    async def prepare(self, partitions: set[int], batch: Batch) -> None:
        written_elsewhere = await self._written_by_others(partitions & self.caught_up)
        for partition in (partitions - self.caught_up) | written_elsewhere:
            await self.catch_up(partition, batch)

    async def _written_by_others(self, partitions: set[int]) -> set[int]:
        """The partitions whose event log has grown past what this worker wrote or folded. Another writer: after a
        rebalance, a worker that owns the partition in the group's newer generation while this one has not heard
        of it yet (a worker paused past its session, say), or the API's drawer events. Their events are folded
        before this batch is decided, so a command another worker has decided is recognised here, not posted
        twice (bank chaos, a pause then a kill -9: 341 event ids twice). Under exactly_once the transaction
        markers grow the log too, so there every batch reads its (empty) tail once more."""
        if not partitions:
            return set()
        reader = await self._reader()
        ends = await reader.end_offsets([TopicPartition(LEDGER_EVENTS, partition) for partition in partitions])
        return {tp.partition for tp, end in ends.items() if end > commands_table.get(POSITION_KEY.format(tp.partition), 0)}

    def forget(self, partitions: set[int]) -> None:
        """After a failed batch or a rebalance: fold the log's tail again before the next command."""
        self.caught_up.difference_update(partitions)
        self.processed.restored()

    async def catch_up(self, partition: int, batch: Batch) -> int:
        """Fold events the tables miss (written since their last snapshot) back into them, and keep them through
        the batch, so the next snapshot has them. Returns how many."""
        start = commands_table.get(POSITION_KEY.format(partition), 0)
        reader = await self._reader()
        tp = TopicPartition(LEDGER_EVENTS, partition)
        reader.assign([tp])
        end = (await reader.end_offsets([tp]))[tp]
        reader.seek(tp, start)
        folded, poll = 0, TailPoll()
        while await reader.position(tp) < end:
            fetched = await poll(reader, [tp])
            for record in fetched.get(tp, []):
                try:
                    event = self.codec.decode(record.value, record.headers, self.event_types)
                    self._fold_recovered(partition, event, batch)
                except (DecodeError, ValueError) as error:
                    # Not an event this ledger wrote (unreadable, of another type, out of sequence): it
                    # changes no account here, and stopping on it would stop the partition for good.
                    log.error("%s/%s/%s: skipping an event that does not fold: %s", LEDGER_EVENTS, partition,
                              record.offset, error)
                    continue
                folded += 1
        batch.keep_position(commands_table, partition, POSITION_KEY.format(partition), end)
        self.caught_up.add(partition)
        if folded:
            log.info("partition %s: caught up %s event(s) from offset %s to %s", partition, folded, start, end)
        return folded

    def _fold_recovered(self, partition: int, event: Event, batch: Batch) -> None:
        # Kept with the batch, which decides against it; memory takes it only if the batch succeeds, so a failed
        # batch folds it again (and keeps it for the next snapshot) instead of finding it folded already.
        state = batch.value(accounts_table, event.account_id)
        new_state = ledger.apply(state, event)
        if new_state is not None and new_state != state:
            batch.keep(accounts_table, partition, event.account_id, new_state)
        self.processed.recovered(batch, partition, event.command_id, int(event.occurred_at.timestamp()))

    async def close(self) -> None:
        await self._reader.close()

    # ------------------------------------------------------------ command batches

    async def decide(self, batch: Batch) -> None:
        now = datetime.now(UTC)
        self.processed.forget_expired(batch, int(now.timestamp()))
        work = BatchWork(batch, now, self._partitions())
        work.positions = {r.partition: _position(batch, r.partition) for r in batch.records}
        for message in batch.records:
            try:
                check_size(message)   # before decoding: a huge command is nobody's to post
                command: Command = self.codec.decode(message.value, message.headers, self.command_types)
                risk = assessment_of(message.headers)
            except (RecordTooLarge, DecodeError, ValueError) as error:  # ValueError: a malformed risk header
                batch.dead_letter(LEDGER_COMMANDS_DLQ, message, error)
                continue
            self._decide_here(work, command, risk, message)
        for account_id, partition in work.touched.items():
            if (state := work.states[account_id]) is not None:
                batch.keep(accounts_table, partition, account_id, state)
        batch.on_acknowledged(lambda delivered: _after_acknowledged(batch, work, delivered))

    def _decide_here(self, work: BatchWork, command: Command, risk: Assessment | None, message: Any) -> None:
        """Decide a command, then the steps of its transfer whose accounts are on its partition as well: a transfer
        between two accounts of one partition settles in this batch, and the saga sends none of its steps."""
        trace, actor, partition = trace_of(message.headers), actor_of(message.headers), message.partition
        pending: list[tuple[Command, Assessment | None]] = [(command, risk)]
        while pending:
            command, risk = pending.pop(0)
            if command.command_id in work.seen or command.command_id in self.processed:
                COMMANDS_DECIDED.labels(type(command).__name__, "duplicate").inc()
                continue  # a retry or a redelivery: its events are already in the log
            work.seen.add(command.command_id)
            key = command.account_id
            if key not in work.states:
                work.states[key] = work.batch.value(accounts_table, key)
            results, encoded, work.states[key] = self._decide(work.states[key], command, work.now, risk)
            for result, record in zip(results, encoded, strict=True):
                _emit(work.batch, result, record, partition, trace, actor)
            work.decided.append(Decided(command, results, trace))
            work.touched[key] = partition
            self.processed.remember(work.batch, partition, command.command_id, int(work.now.timestamp()))
            pending += [(step, None) for step in steps_here(results, work.now, work.on(partition))]

    def _partitions(self) -> int | None:
        """How many partitions the commands topic has (None: not known, and then the saga takes every step)."""
        consumer = worker_consumer.consumer
        partitions = consumer.partitions_for_topic(LEDGER_COMMANDS) if consumer is not None else None
        return len(partitions) if partitions else None

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


def _emit(batch: Batch, event: Event, record: Encoded, partition: int, trace: str | None,
          actor: bytes | None) -> None:
    value, headers = record
    if trace:  # the command's trace id travels on with its events
        headers.append((TRACE_HEADER, trace.encode()))
    if actor:  # and so does who submitted it (user, role, session)
        headers.append((ACTOR_HEADER, actor))
    batch.emit(LEDGER_EVENTS, value, event.account_id.encode(), headers, partition, transactional=True)


def _after_acknowledged(batch: Batch, work: BatchWork, delivered: Iterable[Any]) -> None:
    """Report the decisions, and remember how far the log is reflected, so a catch-up reads only the tail: as far
    as this batch's events, if they follow the position it started from. Another writer's records before them
    leave the position where it was, so the next batch folds them (`_written_by_others`)."""
    _report(work.decided)
    first: dict[int, int] = {}
    after: dict[int, int] = {}
    for meta in delivered:
        if meta.topic == LEDGER_EVENTS:
            first[meta.partition] = min(first.get(meta.partition, meta.offset), meta.offset)
            after[meta.partition] = max(after.get(meta.partition, 0), meta.offset + 1)
    for partition, offset in after.items():
        if first[partition] <= work.positions.get(partition, 0):
            batch.keep_position(commands_table, partition, POSITION_KEY.format(partition), offset)


def _position(batch: Batch, partition: int) -> int:
    """How far the partition's event log is folded in, with what this batch has caught up so far."""
    key = POSITION_KEY.format(partition)
    kept = batch.positions.get((commands_table.name, key))
    return int(kept[2]) if kept is not None else int(commands_table.get(key, 0))


def _folded(state: ledger.AccountState | None, events: Iterable[Event]) -> ledger.AccountState | None:
    for event in events:
        state = ledger.apply(state, event)
    return state


def assessment_of(headers: Any) -> Assessment | None:
    """The risk agent's assessment of a forwarded money movement (None: not scored, e.g. risk turned off)."""
    raw = header(headers, ASSESSMENT_HEADER)
    return None if raw is None else Assessment.from_header(raw)


class BatchWork:
    """What one batch of commands reads and changes: the accounts' states, the accounts it touched (by the
    partition of their commands), the command ids it has seen and its decisions."""

    def __init__(self, batch: Batch, now: datetime, partitions: int | None) -> None:
        self.batch, self.now, self.partitions = batch, now, partitions
        self.states: dict[str, ledger.AccountState | None] = {}
        self.touched: dict[str, int] = {}
        self.seen: set[str] = set()
        self.decided: list[Decided] = []
        self.positions: dict[int, int] = {}   # partition -> how far its event log was folded when the batch began

    def on(self, partition: int) -> Callable[[str], bool]:
        """Whether an account's commands are on `partition` (they are keyed by account id)."""
        if self.partitions is None:
            return lambda account_id: False
        count = self.partitions
        return lambda account_id: partition_for(account_id.encode(), count) == partition


@dataclass(slots=True)
class Decided:
    command: Command
    events: list[Event]
    trace_id: str | None

    @property
    def outcome(self) -> str:
        return "rejected" if isinstance(self.events[0], CommandRejected) else "accepted"


def _report(decided: list[Decided]) -> None:
    """Once the batch's events are acknowledged: count and time each decision, and log it (one line each)."""
    now = datetime.now(UTC)
    lines = []
    for d in decided:
        kind = type(d.command).__name__
        COMMANDS_DECIDED.labels(kind, d.outcome).inc()
        COMMAND_LATENCY.labels(kind).observe(max(0.0, (now - d.command.issued_at).total_seconds()))
        lines.append({
            "trace_id": d.trace_id, "command_id": d.command.command_id, "command_type": kind,
            "account_id": d.command.account_id, "outcome": d.outcome, "event_ids": [e.event_id for e in d.events]})
    log_each(log, "command decided", lines)


processor = Ledger()
ledger_agent = agent(LEDGER_COMMANDS, name="ledger", offsets_key=NEXT_COMMAND_KEY, prepare=processor.prepare,
                     reset=processor.forget, snapshot_every=settings.ledger_snapshot_interval)(processor.decide)


at_shutdown(processor.close)
