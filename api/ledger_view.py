"""The API's view of the ledger: it follows the event log and folds it with core.ledger.apply.

It answers "does this account exist", "what did this command come to" and "where in the log are its
events" (the position a client passes as `?min_position=` to read its own write from a read model), and
wakes requests waiting for a command's outcome (`?wait=true`). It also knows the head of the log, against
which query responses report their read model's lag. Queries themselves are served by the read models.

A record it cannot take (unreadable, of a type the log does not carry, an event that does not fold) is logged
and skipped: one bad record must not stop the view, and with it every `?wait=true`. Should the follower die all
the same, `failure` says why and /readyz reports the API not ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from core import ledger
from core.events import Event
from core.readmodel import Positions
from core.topics import LEDGER_EVENTS, record_types
from schemas.codec import DecodeError, get_codec

log = logging.getLogger(__name__)
# BANK_FAILPOINT for the tests of /readyz: the follower raises on the first records it reads after catching up
# (never set in production).
FOLLOWER_FAILPOINT = "ledger_view_follow"


class LedgerView:
    def __init__(self, bootstrap: str, failpoint: str | None = None) -> None:
        # Committed data only: after exactly_once traffic the log also holds aborted records.
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                          isolation_level="read_committed")
        self._codec = get_codec()
        self._event_types = record_types(LEDGER_EVENTS)
        self._failpoint = failpoint == FOLLOWER_FAILPOINT
        self.accounts: dict[str, ledger.AccountState] = {}
        self.outcomes: dict[str, ledger.CommandOutcome] = {}
        self.outcome_positions: dict[str, Positions] = {}  # command id -> where its events are in the log
        self.positions: Positions = {}   # partition -> next offset to read: the head of the log, as seen here
        self.caught_up = asyncio.Event()
        self._waiters: dict[str, list[asyncio.Event]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(LEDGER_EVENTS) or set()
        if not partitions:
            raise RuntimeError(f"topic {LEDGER_EVENTS} does not exist; run `bank topics apply`")
        tps = [TopicPartition(LEDGER_EVENTS, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        ends = await self._consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._follow({tp.partition: end for tp, end in ends.items()}))

    async def end_offsets(self) -> Positions:
        """The log's end per partition, from the broker (committed data: the last stable offsets)."""
        tps = sorted(self._consumer.assignment())
        return {tp.partition: end for tp, end in (await self._consumer.end_offsets(tps)).items()}

    @property
    def failure(self) -> str | None:
        """Why the follower stopped, if it has: the view no longer moves, so the API is not ready."""
        if self._task is None or not self._task.done():
            return None
        error = None if self._task.cancelled() else self._task.exception()
        return f"the ledger follower stopped: {type(error).__name__}: {error}" if error else \
            "the ledger follower stopped"

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()

    async def _follow(self, start_ends: dict[int, int]) -> None:
        if all(end == 0 for end in start_ends.values()):
            self.caught_up.set()
        while True:
            was_caught_up = self.caught_up.is_set()
            batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            if self._failpoint and was_caught_up and batches:
                raise RuntimeError(f"failpoint {FOLLOWER_FAILPOINT} reached")
            for tp, records in batches.items():
                for record in records:
                    self._take(tp, record)
            for tp in self._consumer.assignment():
                # The consumer's position, not the last record's offset + 1: transaction markers take
                # offsets too, so after exactly-once traffic no record sits at end - 1.
                self.positions[tp.partition] = await self._consumer.position(tp)
            if not self.caught_up.is_set() and all(
                self.positions.get(p, 0) >= end for p, end in start_ends.items()
            ):
                self.caught_up.set()

    def _take(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        try:
            event = self._codec.decode(record.value, record.headers, self._event_types)
            self.apply(event)
        except DecodeError as error:  # unreadable, or not a ledger event: skip, loudly
            log.error("cannot read event %s/%s/%s: %s", tp.topic, tp.partition, record.offset, error)
            return
        except Exception:  # noqa: BLE001 - an event that does not fold must not stop the view
            log.exception("cannot apply event %s/%s/%s", tp.topic, tp.partition, record.offset)
            return
        positions = self.outcome_positions.setdefault(event.correlation_id, {})
        positions[tp.partition] = max(positions.get(tp.partition, 0), record.offset + 1)

    def apply(self, event: Event) -> None:
        new_state = ledger.apply(self.accounts.get(event.account_id), event)
        if new_state is not None:
            self.accounts[event.account_id] = new_state
        outcome = self.outcomes.get(event.correlation_id)
        if outcome is None:
            outcome = self.outcomes[event.correlation_id] = ledger.CommandOutcome(event.correlation_id)
        outcome.add(event)
        if outcome.status != "pending":
            for waiter in self._waiters.pop(event.correlation_id, []):
                waiter.set()

    async def wait_for_outcome(self, command_id: str, timeout_s: float) -> ledger.CommandOutcome | None:
        """The command's outcome once it is final, or None if it is still pending after the timeout."""
        outcome = self.outcomes.get(command_id)
        if outcome is not None and outcome.status != "pending":
            return outcome
        waiter = asyncio.Event()
        self._waiters[command_id].append(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), timeout_s)
        except TimeoutError:
            return None
        finally:
            if waiter in self._waiters.get(command_id, []):
                self._waiters[command_id].remove(waiter)
        return self.outcomes.get(command_id)
