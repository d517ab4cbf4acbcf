"""The risk engine's topics as `bank rules` reads and writes them: bank.risk.rules and bank.risk.assessments.

Reads are infra.kafka.read_topic: committed data from the beginning up to the end offsets seen when they start,
so a command works on one fixed snapshot of the log even while scoring workers keep appending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.risk.features import Movement
from core.risk.records import RiskAssessed, RuleSetPublished
from core.topics import RISK_ASSESSMENTS, RISK_RULES
from infra.kafka import Progress, read_topic
from infra.producer import create_producer
from schemas.codec import DecodeError, get_codec


@dataclass(frozen=True, slots=True)
class Published:
    """A RuleSetPublished record and where it is on bank.risk.rules."""

    offset: int
    record: RuleSetPublished


# ---------------------------------------------------------------- bank.risk.rules


async def read_published(bootstrap: str) -> list[Published]:
    """Every RuleSetPublished on bank.risk.rules, in offset order (a version may appear more than once until
    compaction keeps only its newest record). Records that are not a RuleSetPublished are skipped."""
    snapshot = await read_topic(bootstrap, RISK_RULES)
    codec = get_codec()
    published = []
    for r in snapshot.records:
        try:
            record = codec.decode(r.value, r.headers)
        except DecodeError:
            continue
        if isinstance(record, RuleSetPublished):
            published.append(Published(r.offset, record))
    return published


def versions(published: list[Published]) -> list[Published]:
    """One entry per version, its newest record, ordered by that record's offset: the last one is live.

    That is what compaction keeps, so the answer does not depend on whether the broker has compacted yet."""
    newest = {p.record.version: p for p in published}
    return sorted(newest.values(), key=lambda p: p.offset)


async def publish(bootstrap: str, record: RuleSetPublished) -> int:
    """Produce `record` to bank.risk.rules keyed by its version (idempotent, acks=all); returns its offset."""
    value, headers = get_codec().encode(record)
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(RISK_RULES, value, key=record.version.encode(), headers=headers)
        return sent.offset
    finally:
        await producer.stop()


# ---------------------------------------------------------------- bank.risk.assessments


@dataclass
class History:
    """The scoring history in replay order: (movement, event id) by time, then partition and offset."""

    movements: list[tuple[Movement, str]]
    starts: dict[int, int]
    ends: dict[int, int]
    duplicates: int          # the same event id seen again (a re-delivered assessment): replayed once
    skipped: int             # records that are not a readable RiskAssessed movement


async def read_history(bootstrap: str, progress: Progress | None = None) -> History:
    snapshot = await read_topic(bootstrap, RISK_ASSESSMENTS, progress=progress)
    codec = get_codec()
    seen: set[str] = set()
    keyed: list[tuple[tuple[Any, int, int], Movement, str]] = []
    duplicates = skipped = 0
    for r in snapshot.records:
        try:
            record = codec.decode(r.value, r.headers)
            movement = record.movement if isinstance(record, RiskAssessed) else None
        except (DecodeError, ValueError):
            movement = None
        if movement is None:
            skipped += 1
        elif record.event_id in seen:
            duplicates += 1
        else:
            seen.add(record.event_id)
            keyed.append(((movement.at, r.partition, r.offset), movement, record.event_id))
    keyed.sort(key=lambda k: k[0])
    return History([(m, ref) for _, m, ref in keyed], snapshot.starts, snapshot.ends, duplicates, skipped)
