"""What every projection store offers the runner, and the records it is handed.

A projection folds the event log into one store. The store, not Kafka, holds the truth about how far it
got: its offsets per partition are written in the same transaction as the data (or, where the store has
no transactions, after idempotent writes). The runner seeks to them on assignment and after every batch.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.events import AccountOpened, CaseReviewed, Event, RiskCase
from core.ledger import AccountState
from core.readmodel import FoldError, Positions, Posting, fold, posting_for
from core.topics import LEDGER_EVENTS
from infra.records import header_list, header_text
from infra.topics import record_types
from schemas.codec import HEADER_SCHEMA, DecodeError, get_codec


@dataclass(slots=True)
class EventRecord:
    """One message of the event log, decoded if possible: a record of a type the log does not carry (an audit
    record, a command) is not, like an unreadable one, so it is parked instead of stalling the projection."""

    partition: int
    offset: int
    value: bytes | None
    headers: list[tuple[str, bytes]]
    event: Event | None = None
    error: str | None = None      # why it could not be decoded

    @property
    def schema_name(self) -> str | None:
        """The record type, by the writer schema's id; a header may name one the codec does not know."""
        return get_codec().schema_name(self.value, self.headers) or header_text(self.headers, HEADER_SCHEMA)

    @property
    def fingerprint(self) -> str | None:
        """The writer schema as the message names it: `schema id N`, or an old-format record's fingerprint."""
        return get_codec().writer_identity(self.value, self.headers)

    @classmethod
    def decode(cls, partition: int, offset: int, value: bytes | None, headers: Any) -> EventRecord:
        record = cls(partition, offset, value, header_list(headers))
        try:
            record.event = get_codec().decode(value, record.headers, record_types(LEDGER_EVENTS))
        except DecodeError as error:
            record.error = str(error)
        return record


@dataclass(slots=True)
class Parked:
    """An event a projection could not apply, kept with the reason until `bank projections retry`."""

    partition: int
    offset: int
    reason: str
    schema_name: str | None
    fingerprint: str | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    parked_at: datetime | None = None
    attempts: int = 1

    @classmethod
    def of(cls, record: EventRecord, reason: str) -> Parked:
        return cls(record.partition, record.offset, reason, record.schema_name, record.fingerprint,
                   record.value, record.headers)

    def record(self) -> EventRecord:
        return EventRecord.decode(self.partition, self.offset, self.value, self.headers)


class ApplyError(Exception):
    """An event the store cannot apply (a bug or data it does not expect): park it, do not retry."""


@dataclass(slots=True)
class AccountsFold:
    """A batch of events folded into the accounts it touches, with core.readmodel.fold (idempotent), for the
    stores that keep account state: what changed, when, the postings the events made, and the risk cases
    they opened and decided (in log order; the store makes re-applying them a no-op)."""

    states: dict[str, AccountState]
    opened: dict[str, datetime]
    changed: dict[str, datetime] = field(default_factory=dict)   # account id -> when it last changed
    postings: list[tuple[EventRecord, Posting]] = field(default_factory=list)
    cases: list[RiskCase] = field(default_factory=list)           # RiskFlagged and FundsHeld
    reviews: list[CaseReviewed] = field(default_factory=list)

    @classmethod
    def of(cls, states: dict[str, AccountState], opened: dict[str, datetime],
           records: list[EventRecord]) -> AccountsFold:
        folded = cls(dict(states), dict(opened))
        for record in records:
            folded.add(record)
        return folded

    def add(self, record: EventRecord) -> None:
        event = record.event
        assert event is not None, "fold decoded records only"
        try:
            new_state = fold(self.states.get(event.account_id), event)
        except FoldError as error:
            raise ApplyError(str(error)) from None
        if isinstance(event, AccountOpened):
            self.opened.setdefault(event.account_id, event.occurred_at)
        if new_state is not None and new_state != self.states.get(event.account_id):
            self.states[event.account_id] = new_state
            self.changed[event.account_id] = event.occurred_at
        posting = posting_for(event)
        if posting is not None and new_state is not None:
            self.postings.append((record, posting))
        if isinstance(event, RiskCase):
            self.cases.append(event)
        elif isinstance(event, CaseReviewed):
            self.reviews.append(event)


@dataclass(slots=True)
class Status:
    projection: str
    generation: str
    offsets: Positions
    parked: int
    last_error: str | None = None
    last_error_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ProjectionStore(abc.ABC):
    """One read model. `apply` must be idempotent: an event applied twice changes nothing."""

    name: str

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def offsets(self) -> Positions:
        """Next offset per partition that the live model has not reflected yet."""

    @abc.abstractmethod
    async def apply(self, records: list[EventRecord], starts: Positions, ends: Positions) -> Positions:
        """Apply a batch and advance the stored offsets, atomically where the store allows.

        `starts[p]` is where the batch's reading of partition p began and `ends[p]` where it ended: the
        records of p are every event in between. Records before the stored offset are skipped (already
        applied); a partition whose stored offset is *before* `starts[p]` (the offsets were rewound, or a
        rebuild was swapped in) is left alone. Returns the stored offsets afterwards, which the runner
        seeks to. Raises ApplyError only if a single-record batch cannot be applied."""

    @abc.abstractmethod
    async def reapply(self, records: list[EventRecord]) -> None:
        """Apply records regardless of offsets (parked events being retried); idempotent like apply."""

    @abc.abstractmethod
    async def park(self, parked: list[Parked]) -> None: ...

    @abc.abstractmethod
    async def parked(self) -> list[Parked]: ...

    @abc.abstractmethod
    async def unpark(self, parked: list[Parked]) -> None: ...

    @abc.abstractmethod
    async def record_error(self, error: str | None) -> None:
        """Remember the projection's last error (None clears it); shown by `bank projections status`."""

    @abc.abstractmethod
    async def status(self) -> Status: ...

    # ---- rebuild: fill a fresh copy from offset 0, then swap it in atomically

    @abc.abstractmethod
    async def rebuild_target(self) -> ProjectionStore:
        """An empty copy of this model (fresh schema/keyspace/collections) to fill from offset 0."""

    @abc.abstractmethod
    async def swap_in(self, built: ProjectionStore) -> str:
        """Make `built` the live model in one atomic step and retire the old one; returns its generation."""
