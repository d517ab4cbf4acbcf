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

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faust

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
from streams import direct_producer
from streams.app import app, commands_table, events_topic, put, settings
from streams.dead_letters import send_to_dead_letter
from streams.gaps import LazyReader, OffsetGuard
from streams.metrics import EVENTS_PROCESSED, SAGA_IN_FLIGHT, SAGA_OLDEST_AGE
from streams.retry import retry_batch

codec = get_codec()
event_types = record_types(LEDGER_EVENTS)
NEXT_EVENT_KEY = "__saga_next_event__/{}"
# Under exactly_once the events topic holds transaction markers, which look like holes to the guard;
# there Faust's transactional offsets are the saga's record.
guard: OffsetGuard | None = None
if settings.processing_guarantee == "at_least_once":
    guard = OffsetGuard(LEDGER_EVENTS, lambda p: commands_table.get(NEXT_EVENT_KEY.format(p)),
                        LazyReader(settings.kafka, "read_committed"))


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


async def drive(batch: Sequence[faust.EventT]) -> None:
    now = datetime.now(UTC)
    sends: list[Any] = []
    messages = [item.message for item in batch]
    if guard is not None:
        messages = await guard.complete(messages)
    for message in messages:
        try:
            step = _step_for(message, now)
        except Exception as error:  # noqa: BLE001 - decoding and building a step are pure: a retry fails alike
            sends.append(await send_to_dead_letter(LEDGER_EVENTS_DLQ, message, error))
            continue
        if step is not None:
            record, value, headers = step
            if isinstance(record, c.Command):
                sends.append(await direct_producer.send(LEDGER_COMMANDS, value, record.account_id.encode(), headers))
            else:
                sends.append(await direct_producer.send(PAYMENTS_OUTBOUND, value, record.instruction_id.encode(),
                                                        headers))
    await asyncio.gather(*sends)  # delivered before the events' offsets are committed
    EVENTS_PROCESSED.labels("saga").inc(len(messages))
    in_flight.publish(now)
    if guard is not None:
        for partition, next_offset in guard.advance(messages).items():
            put(commands_table, partition, NEXT_EVENT_KEY.format(partition), next_offset)
    await direct_producer.flush_tables()


def _step_for(message: Any, now: datetime) -> tuple[c.Command | PaymentInstruction, bytes,
                                                    list[tuple[str, bytes]]] | None:
    """The next step of the transfer an event belongs to, or the instruction of a payment, encoded, or None.
    Raises DecodeError for a record that is no ledger event; the ledger's other events are not decoded at all."""
    name = codec.schema_name(message.value, message.headers)
    if name in event_types and name not in STEP_EVENTS and name not in TRANSFER_ENDS and name != "PaymentDebited":
        return None
    event = codec.decode(message.value, message.headers, event_types)
    in_flight.end(event)
    in_flight.start(event, message.partition)
    step: c.Command | PaymentInstruction | None = next_step(event, now) or instruction_of(event)
    if step is None:
        return None
    value, headers = codec.encode(step)
    if (trace := trace_of(message.headers)) is not None:  # the transfer's trace id reaches its steps
        headers.append((TRACE_HEADER, trace.encode()))
    if (actor := actor_of(message.headers)) is not None:  # and its actor, the destination's events
        headers.append((ACTOR_HEADER, actor))
    return step, value, headers


@app.agent(events_topic)
async def transfer_saga(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(500, within=0.005):
        # Steps have deterministic ids, so resending a whole batch after a failure is harmless.
        await retry_batch("saga", partial(drive, batch))


@app.on_partitions_assigned.connect
async def _forget_offsets(app: faust.App, assigned: set, **kwargs: Any) -> None:
    in_flight.keep_partitions({tp.partition for tp in assigned if tp.topic == LEDGER_EVENTS})
    if guard is not None:
        guard.forget()
