"""Reading the ledger log up to a cutoff, for point-in-time answers (GET /v1/accounts/{id}/balance?as_of=,
GET /v1/admin/books/...?as_of=), `bank replay --until` and `bank books`. The folding is core/pointintime.py's and
core/books.py's; this module fetches the events (each with its record's actor) and reads the routes' `as_of`.

Committed data only. For a moment, it reads each partition up to the first record stamped CLOCK_MARGIN after
it (offsets_for_times): a record is stamped when the ledger sends it, just after it decided the event, so no
event that occurred at or before the moment lies beyond that offset. For a position, up to that position.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from fastapi import Query

from api.ledger_view import LedgerView
from api.problems import Problem
from core.audit import parse_actor
from core.events import Event
from core.pointintime import Cutoff, CutoffError, LoggedEvent, parse_cutoff
from core.readmodel import format_positions
from core.topics import LEDGER_EVENTS
from infra.kafka import TailPoll, group_less_consumer, partitions_of, seek_to_beginning, stop_consumer
from infra.records import Headers, actor_of
from schemas.codec import DecodeError, get_codec

log = logging.getLogger(__name__)

CLOCK_MARGIN = timedelta(minutes=5)
Progress = Callable[[int, int], None]   # (records read, records to read)


async def read_ledger_until(bootstrap: str, cutoff: Cutoff, progress: Progress | None = None) -> list[LoggedEvent]:
    """Every committed event of the ledger log that can be before the cutoff, decoded, in per-partition order."""
    consumer = _consumer(bootstrap)
    await consumer.start()
    try:
        tps = partitions_of(consumer, LEDGER_EVENTS)
        consumer.assign(tps)
        await seek_to_beginning(consumer, tps)
        stops = await _stop_offsets(consumer, tps, cutoff)
        return await _read(consumer, stops, progress)
    finally:
        await stop_consumer(consumer)


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    return group_less_consumer(bootstrap)   # committed data only


async def _stop_offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition], cutoff: Cutoff) -> dict[TopicPartition, int]:
    ends = await consumer.end_offsets(tps)
    if not isinstance(cutoff, datetime):
        # A partition the position does not name is read whole: a fold of the whole log completes the cut there
        # by time (core.pointintime.whole_log_cutoff); one account's fold ignores it.
        return {tp: min(ends[tp], cutoff.get(tp.partition, ends[tp])) for tp in tps}
    stamp = max(0, int((cutoff + CLOCK_MARGIN).timestamp() * 1000))   # before 1970: nothing can be before it
    later = await consumer.offsets_for_times({tp: stamp for tp in tps})
    return {tp: min(ends[tp], found.offset) if (found := later.get(tp)) is not None else ends[tp] for tp in tps}


async def _read(consumer: AIOKafkaConsumer, stops: dict[TopicPartition, int],
                progress: Progress | None) -> list[LoggedEvent]:
    codec, found, total, read = get_codec(), [], sum(stops.values()), 0
    pending = {tp for tp, stop in stops.items() if stop > 0}
    consumer.pause(*(tp for tp in stops if tp not in pending))
    poll = TailPoll()
    while pending:
        for tp, records in (await poll(consumer, sorted(pending), max_records=5000)).items():
            for record in records:
                if record.offset >= stops[tp]:
                    break
                try:
                    found.append(_logged(tp.partition, record.offset, codec.decode(record.value, record.headers),
                                         record.headers))
                except DecodeError as error:   # an event this version cannot read: skip it, loudly
                    log.error("cannot read event %s/%s/%s: %s", tp.topic, tp.partition, record.offset, error)
        read = sum([min(await consumer.position(tp), stops[tp]) for tp in stops])
        for tp in list(pending):
            if await consumer.position(tp) >= stops[tp]:
                pending.discard(tp)
                consumer.pause(tp)
        if progress is not None:
            progress(read, total)
    return found


def _logged(partition: int, offset: int, event: Event, headers: Headers) -> LoggedEvent:
    """The event with its actor's user id: who took the cash of a teller's deposit (core/books.py)."""
    actor = parse_actor(actor_of(headers))
    return LoggedEvent(partition, offset, event, actor.user_id if actor else None)


# ---------------------------------------------------------------- the `as_of` of point-in-time routes

AsOf = Annotated[str | None, Query(max_length=400, description="an RFC 3339 moment (events that occurred at or "
                                   "before it), a duration ago (`1h`, `2d`) or a log position as command "
                                   "responses give it (`0:12,3:40`: the events before those offsets). Default: now",
                                   examples=["2026-12-01T10:00:00Z", "0:12,3:40"])]


def cutoff_of(as_of: str | None, now: datetime) -> Cutoff:
    """The cutoff an `as_of` query parameter names (None: now); 422 for one that names none."""
    if as_of is None:
        return now
    try:
        return parse_cutoff(as_of, now)
    except (CutoffError, ValueError) as error:
        raise Problem(422, "Invalid as_of", f"as_of: {error}", "invalid_as_of") from None


async def check_within_log(cutoff: Cutoff, now: datetime, view: LedgerView) -> None:
    """422 for a point the log has not reached: the answer could still change."""
    if isinstance(cutoff, datetime):
        if cutoff > now:
            raise Problem(422, "as_of in the future", f"as_of: {cutoff.isoformat()} is later than now "
                          f"({now.isoformat()})", "as_of_in_future")
        return
    try:
        ends = await view.end_offsets()
    except KafkaError:
        raise Problem(503, "Broker unavailable", "cannot read the ledger log; retry shortly", "broker_unavailable") from None
    beyond = {p: o for p, o in cutoff.items() if o > ends.get(p, 0)}
    if beyond:
        raise Problem(422, "Position beyond the log", f"as_of: {format_positions(beyond)} is past the end of the "
                      f"event log ({format_positions(ends)})", "position_beyond_log")
