"""The transfer saga: reacts to transfer events by sending the next step as a command (the rule itself, pure, is
core/saga.py `next_step`). It also turns each PaymentDebited into its PaymentInstruction on bank.payments.outbound
(core.payments.instruction_of), for the payment gateway: at least once, keyed by the instruction id, which the
gateway and the rail deduplicate by.

Steps have deterministic command ids, so a redelivered event resends a step the ledger has
already processed, and the ledger ignores it. A record that is no ledger event (undecodable, or of a type the
log does not carry), or whose step cannot be built, goes to bank.ledger.events.dlq with the error: retrying it
would fail the same way until the worker died, and again after every restart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


from core import commands as c
from core import events as e
from core.audit import ACTOR_HEADER
from core.payments import PaymentInstruction, instruction_of
from core.saga import STEP_EVENTS, TRANSFER_ENDS, next_step
from core.topics import LEDGER_COMMANDS, LEDGER_EVENTS, LEDGER_EVENTS_DLQ, PAYMENTS_OUTBOUND
from infra.logs import TRACE_HEADER, trace_of
from infra.records import actor_of
from infra.topics import record_types
from schemas.codec import get_codec
from streams.app import settings
from streams.checkpoint import Batch, agent
from streams.metrics import SAGA_IN_FLIGHT, SAGA_OLDEST_AGE

codec = get_codec()
event_types = record_types(LEDGER_EVENTS)
NEXT_EVENT_KEY = "__saga_next_event__/{}"


class InFlight:
    """Transfers debited on this worker's partitions and not yet completed or reversed, for the gauges.

    Both ends of a transfer are on its source partition, so one worker sees them; after a rebalance it
    knows only the transfers debited since it took the partition."""

    def __init__(self) -> None:
        self._debited: dict[str, tuple[int, datetime]] = {}   # transfer id -> (partition, debited at)

    def start(self, event: e.Event, partition: int) -> None:
        if isinstance(event, e.TransferDebited):
            self._debited.setdefault(event.transfer_id, (partition, event.occurred_at))

    def end(self, event: e.Event) -> None:
        if isinstance(event, (e.TransferCompleted, e.TransferReversed)):
            self._debited.pop(event.transfer_id, None)

    def keep_partitions(self, partitions: set[int]) -> None:
        self._debited = {t: v for t, v in self._debited.items() if v[0] in partitions}

    def publish(self, now: datetime) -> None:
        SAGA_IN_FLIGHT.set(len(self._debited))
        oldest = min((at for _, at in self._debited.values()), default=now)
        SAGA_OLDEST_AGE.set(max(0.0, (now - oldest).total_seconds()))


in_flight = InFlight()


async def drive(batch: Batch) -> None:
    now = datetime.now(UTC)
    events: list[tuple[Any, e.Event]] = []
    for message in batch.records:
        try:
            if (event := _decoded(message)) is not None:
                events.append((message, event))
        except Exception as error:  # noqa: BLE001 - decoding is pure: a retry fails alike
            batch.dead_letter(LEDGER_EVENTS_DLQ, message, error)
    # A step whose own events are in the batch was decided by the ledger with the event before it (both accounts
    # on one partition): sending it would only make the ledger find a duplicate.
    decided_here = {event.command_id for _, event in events}
    for message, event in events:
        try:
            step = _step_for(message, event, now, decided_here)
        except Exception as error:  # noqa: BLE001 - building a step is pure: a retry fails alike
            batch.dead_letter(LEDGER_EVENTS_DLQ, message, error)
            continue
        if step is not None:
            record, value, headers = step
            if isinstance(record, c.Command):
                batch.emit(LEDGER_COMMANDS, value, record.account_id.encode(), headers)
            else:
                batch.emit(PAYMENTS_OUTBOUND, value, record.instruction_id.encode(), headers)
    batch.on_acknowledged(lambda delivered: in_flight.publish(now))


def _decoded(message: Any) -> e.Event | None:
    """The event, if it has a step or ends a transfer (the ledger's other events are not decoded at all).
    Raises DecodeError for a record that is no ledger event."""
    name = codec.schema_name(message.value, message.headers)
    if name in event_types and name not in STEP_EVENTS and name not in TRANSFER_ENDS and name != "PaymentDebited":
        return None
    return codec.decode(message.value, message.headers, event_types)


def _step_for(message: Any, event: e.Event, now: datetime, decided_here: set[str]) -> tuple[
        c.Command | PaymentInstruction, bytes, list[tuple[str, bytes]]] | None:
    """The next step of the transfer an event belongs to, or the instruction of a payment, encoded, or None."""
    in_flight.end(event)
    in_flight.start(event, message.partition)
    step: c.Command | PaymentInstruction | None = next_step(event, now) or instruction_of(event)
    if step is None or (isinstance(step, c.Command) and step.command_id in decided_here):
        return None
    value, headers = codec.encode(step)
    if (trace := trace_of(message.headers)) is not None:  # the transfer's trace id reaches its steps
        headers.append((TRACE_HEADER, trace.encode()))
    if (actor := actor_of(message.headers)) is not None:  # and its actor, the destination's events
        headers.append((ACTOR_HEADER, actor))
    return step, value, headers


# Under exactly_once the events topic holds transaction markers, which look like holes to the offset guard;
# there the offsets committed in each batch's transaction are the saga's record. Steps have deterministic ids, so
# sending a batch's steps again after a failure is harmless.
transfer_saga = agent(LEDGER_EVENTS, name="saga",
                      offsets_key=NEXT_EVENT_KEY if settings.processing_guarantee == "at_least_once" else None,
                      reset=lambda partitions: in_flight.keep_partitions(transfer_saga.owned or set()))(drive)
