"""The transfer saga: reacts to transfer events by sending the next step as a command.

TransferDebited      (source)      -> CreditTransfer   to the destination
TransferCredited     (destination) -> CompleteTransfer to the source
TransferCreditFailed (destination) -> ReverseTransfer  to the source (compensation)

Steps have deterministic command ids, so a redelivered event resends a step the ledger has
already processed, and the ledger ignores it.
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
from schemas.codec import get_codec
from core.topics import LEDGER_COMMANDS
from streams import direct_producer
from streams.app import app, events_topic
from streams.retry import retry_batch

codec = get_codec()
SAGA_EVENTS = {"TransferDebited", "TransferCredited", "TransferCreditFailed"}


def next_step(event: e.Event, now: datetime) -> c.Command | None:
    if isinstance(event, e.TransferDebited):
        return c.CreditTransfer(command_id=c.credit_step_id(event.transfer_id), account_id=event.to_account_id,
                                issued_at=now, correlation_id=event.correlation_id, transfer_id=event.transfer_id,
                                from_account_id=event.account_id, amount=event.amount, currency=event.currency,
                                reference=event.reference)
    if isinstance(event, e.TransferCredited):
        return c.CompleteTransfer(command_id=c.complete_step_id(event.transfer_id), account_id=event.from_account_id,
                                  issued_at=now, correlation_id=event.correlation_id,
                                  transfer_id=event.transfer_id, to_account_id=event.account_id)
    if isinstance(event, e.TransferCreditFailed):
        return c.ReverseTransfer(command_id=c.reverse_step_id(event.transfer_id), account_id=event.from_account_id,
                                 issued_at=now, correlation_id=event.correlation_id,
                                 transfer_id=event.transfer_id, to_account_id=event.account_id,
                                 amount=event.amount, currency=event.currency, reason=event.reason)
    return None


async def drive(batch: Sequence[faust.EventT]) -> None:
    now = datetime.now(UTC)
    sends: list[Any] = []
    for item in batch:
        message = item.message
        if codec.schema_name(message.headers) not in SAGA_EVENTS:
            continue
        step = next_step(codec.decode(message.value, message.headers), now)
        if step is not None:
            value, headers = codec.encode(step)
            sends.append(await direct_producer.send(LEDGER_COMMANDS, value, step.account_id.encode(), headers))
    await asyncio.gather(*sends)  # delivered before the events' offsets are committed


@app.agent(events_topic)
async def transfer_saga(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(500, within=0.005):
        # Steps have deterministic ids, so resending a whole batch after a failure is harmless.
        await retry_batch("saga", partial(drive, batch))
