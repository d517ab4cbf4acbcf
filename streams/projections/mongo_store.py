"""The MongoDB read model: the audit trail (every event as recorded) and each customer's activity timeline.

Collections carry their generation as a suffix (core.readmodel.mongo_collection); the meta document names
the live one, and a rebuild fills a fresh generation and switches `live` in one update. MongoDB standalone
has no transactions, so a batch writes its documents first, keyed by the event id (an id already there
holds the same document, so re-inserting is a no-op), and moves the offsets last: a crash in between
re-applies events that change nothing. Each collection gets one unordered bulk write per batch, not a
round trip per event.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from bson import Int64
from bson.errors import InvalidDocument
from pymongo import ASCENDING, AsyncMongoClient, IndexModel, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError

from core import events as e
from core.money import MoneyError, format_amount
from core.readmodel import MONGO_DB, MONGO_META, MONGO_PARKED, Positions, ProjectionName, mongo_collection
from core.topics import LEDGER_EVENTS
from streams.projections.base import ApplyError, EventRecord, Parked, ProjectionStore, Status

Kind = Literal["audit", "timeline", "accounts", "offsets"]
KINDS: tuple[Kind, ...] = ("audit", "timeline", "accounts", "offsets")
META_ID = "mongo"

_ENVELOPE = ("event_id", "command_id", "correlation_id", "account_id", "occurred_at", "sequence")
_MONEY = ("amount", "balance_after", "overdraft_limit", "previous_limit")
# Events that may name an account never opened (a rejected command, a refused credit): as core.readmodel.fold.
_STATELESS = e.NON_STATE_EVENTS
# Internal saga bookkeeping, not something a customer did; and the risk engine's flags and reviewers' decisions,
# which a customer must not be shown (no tipping-off). A hold is shown: the customer was told their movement
# waits for review, and its posting or rejection follows in the timeline.
# The rail's bookkeeping (a payment handed to the rail) is left out too: its settlement or return is shown.
# So is a loan's daily interest accrual, the bank's books' (the loan's page shows the interest earned).
_NOT_IN_TIMELINE = (e.TransferCompleted, e.RiskFlagged, e.CaseReviewed, e.PaymentSent, e.LoanInterestAccrued)
# Commands of the bank's own bookkeeping whose refusal is no activity of the customer's: a late or repeated report
# of the rail, an accrual for dates already accrued.
_BOOKKEEPING_COMMANDS = ("RecordPaymentOutcome", "AccrueLoanInterest")


def _in_timeline(event: e.Event) -> bool:
    if isinstance(event, e.CommandRejected) and event.command_type in _BOOKKEEPING_COMMANDS:
        return False
    return not isinstance(event, _NOT_IN_TIMELINE)
# A duplicate key on an upsert means a concurrent writer inserted the same id first: a retry succeeds.
_DUPLICATE_KEY = 11000
_TRANSIENT_WRITE_CODES = {_DUPLICATE_KEY, 11001}
_COMMANDS = {"OpenAccount": "Account opening", "Deposit": "Deposit", "Withdraw": "Withdrawal",
             "Transfer": "Transfer", "FreezeAccount": "Freeze", "UnfreezeAccount": "Unfreeze",
             "CloseAccount": "Closing", "SetOverdraftLimit": "Overdraft limit change", "CreditTransfer": "Incoming transfer",
             "ReverseTransfer": "Transfer reversal", "CompleteTransfer": "Transfer completion",
             "ReviewCase": "Case review", "Payment": "Payment", "RecordPaymentOutcome": "Payment report",
             "ReceivePayment": "Incoming payment", "DisburseLoan": "Loan disbursement", "RepayLoan": "Loan repayment",
             "CreditInterest": "Interest credit", "SetReceiveLimit": "Receiving limit change",
             "AccrueLoanInterest": "Loan interest accrual", "WriteOffLoan": "Loan write-off"}
_INDEXES: dict[Kind, list[list[str]]] = {
    "audit": [["account_id", "occurred_at", "_id"], ["customer_id", "occurred_at", "_id"],
              ["type", "occurred_at", "_id"], ["occurred_at", "_id"]],
    "timeline": [["customer_id", "occurred_at", "_id"]],
}


@dataclass(frozen=True, slots=True)
class _Account:
    customer_id: str
    currency: str


class MongoProjection(ProjectionStore):
    name: ProjectionName = "mongo"

    def __init__(self, url: str, generation: int | None = None, client: AsyncMongoClient | None = None,
                 *, database: str = MONGO_DB) -> None:
        """generation=None follows the live generation (re-read every batch); a fixed one is a rebuild target.
        `database` exists for tests, which need a model of their own."""
        self.url = url
        self.database = database
        self._fixed = generation
        self._client: AsyncMongoClient | None = client
        self._owns_client = client is None

    async def open(self) -> None:
        if self._client is None:
            self._client = AsyncMongoClient(self.url, tz_aware=True)
        await self._meta.update_one({"_id": META_ID}, {"$setOnInsert": {"live": 1}}, upsert=True)
        await self._ensure_indexes(await self._generation())

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.close()
            self._client = None

    # ---- where things are

    @property
    def _db(self) -> Any:
        assert self._client is not None, "open() the projection first"
        return self._client[self.database]

    @property
    def _meta(self) -> Any:
        return self._db[MONGO_META]

    def _coll(self, kind: Kind, generation: int) -> Any:
        return self._db[mongo_collection(kind, generation)]

    async def _live(self) -> int:
        meta = await self._meta.find_one({"_id": META_ID})
        return int(meta["live"]) if meta and "live" in meta else 1

    async def _generation(self) -> int:
        return self._fixed if self._fixed is not None else await self._live()

    async def _ensure_indexes(self, generation: int) -> None:
        for kind, indexes in _INDEXES.items():
            await self._coll(kind, generation).create_indexes(
                [IndexModel([(field, ASCENDING) for field in keys]) for keys in indexes])

    async def _drop(self, generation: int) -> None:
        for kind in KINDS:
            await self._db.drop_collection(mongo_collection(kind, generation))

    async def _drop_retired(self, keep: set[int]) -> None:
        """Collections of generations neither live nor being built: a live batch that was running during a
        swap may have recreated some of the old generation's after swap_in dropped them."""
        pattern = re.compile(rf"^(?:{'|'.join(KINDS)})_g(\d+)$")
        for name in await self._db.list_collection_names():
            match = pattern.match(name)
            if match and int(match[1]) not in keep:
                await self._db.drop_collection(name)

    # ---- offsets and batches

    async def offsets(self) -> Positions:
        docs = await self._coll("offsets", await self._generation()).find({}).to_list()
        return {int(d["_id"]): int(d["next_offset"]) for d in docs}

    async def apply(self, records: list[EventRecord], starts: Positions, ends: Positions) -> Positions:
        generation = await self._generation()
        offsets = self._coll("offsets", generation)
        docs = await offsets.find({"_id": {"$in": list(ends)}}).to_list()
        stored = {int(d["_id"]): int(d["next_offset"]) for d in docs}
        # Partitions whose stored offset lies before this batch were rewound: leave them to the re-read.
        live = {p for p in ends if stored.get(p, 0) >= starts.get(p, 0)}
        todo = [r for r in records if r.partition in live and r.offset >= stored.get(r.partition, 0)]
        await self._write(generation, todo)
        moved = {p: ends[p] for p in live if ends[p] > stored.get(p, 0)}
        if not moved:
            return {p: stored.get(p, 0) for p in ends}
        if await self._advance(offsets, stored, moved):
            return {p: stored.get(p, 0) for p in ends} | moved
        # Someone moved an offset meanwhile (an operator's rewind): theirs stands, report what is stored.
        docs = await offsets.find({"_id": {"$in": list(ends)}}).to_list()
        return {p: 0 for p in ends} | {int(d["_id"]): int(d["next_offset"]) for d in docs}

    async def _advance(self, offsets: Any, stored: Positions, moved: Positions) -> bool:
        """Move offsets only from the value this batch read (compare-and-set, no transaction needed), so a
        rewind written while the batch ran is not overwritten; True if every offset moved."""
        ops = [UpdateOne({"_id": p, "next_offset": stored[p]}, {"$set": {"next_offset": Int64(o)}})
               if p in stored else
               UpdateOne({"_id": p}, {"$setOnInsert": {"next_offset": Int64(o)}}, upsert=True)
               for p, o in moved.items()]
        result = await offsets.bulk_write(ops, ordered=False)
        return result.modified_count + result.upserted_count == len(ops)

    async def reapply(self, records: list[EventRecord]) -> None:
        await self._write(await self._generation(), records)

    async def _write(self, generation: int, records: list[EventRecord]) -> None:
        if not records:
            return
        accounts, audit, timeline = await self._documents(generation, records)
        with _data_errors():
            if accounts:
                await self._coll("accounts", generation).bulk_write(
                    [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in accounts], ordered=False)
            for kind, docs in (("audit", audit), ("timeline", timeline)):
                if docs:
                    await _insert_new(self._coll(kind, generation), docs)

    async def _documents(self, generation: int, records: list[EventRecord]
                         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """The batch's documents, built before anything is written so a bad event fails the batch cleanly."""
        events = [_event_of(r) for r in records]
        ids = list({ev.account_id for ev in events})
        known = {d["_id"]: _Account(d["customer_id"], d["currency"])
                 for d in await self._coll("accounts", generation).find({"_id": {"$in": ids}}).to_list()}
        accounts: dict[str, dict[str, Any]] = {}
        audit: list[dict[str, Any]] = []
        timeline: list[dict[str, Any]] = []
        for record, event in zip(records, events, strict=True):
            # Every event of an account follows its AccountOpened on the same partition: the map is in order.
            if isinstance(event, e.AccountOpened) and event.account_id not in known:
                known[event.account_id] = _Account(event.customer_id, event.currency)
                accounts[event.account_id] = {"_id": event.account_id, "customer_id": event.customer_id,
                                              "currency": event.currency}
            account = known.get(event.account_id)
            if account is None and not isinstance(event, _STATELESS):
                raise ApplyError(f"{type(event).__name__} {event.event_id} for account {event.account_id}, "
                                 f"which this read model has not seen opened")
            try:
                audit.append(_audit_doc(record, event, account))
                if account is not None and _in_timeline(event):
                    timeline.append(_timeline_doc(event, account))
            except MoneyError as error:
                raise ApplyError(f"{type(event).__name__} {event.event_id}: {error}") from None
        return list(accounts.values()), audit, timeline

    # ---- parked events and status

    async def park(self, parked: list[Parked]) -> None:
        if not parked:
            return
        now = datetime.now(UTC)
        await self._db[MONGO_PARKED].bulk_write([UpdateOne(
            {"_id": f"{p.partition}:{p.offset}"},
            {"$set": {"partition": p.partition, "offset": Int64(p.offset), "reason": p.reason,
                      "schema_name": p.schema_name, "fingerprint": p.fingerprint, "value": p.value,
                      "headers": [[k, v.hex()] for k, v in p.headers]},
             "$setOnInsert": {"parked_at": now}, "$inc": {"attempts": 1}},
            upsert=True) for p in parked], ordered=False)

    async def parked(self) -> list[Parked]:
        docs = await self._db[MONGO_PARKED].find({}).sort([("partition", ASCENDING), ("offset", ASCENDING)]).to_list()
        return [Parked(int(d["partition"]), int(d["offset"]), d["reason"], d.get("schema_name"),
                       d.get("fingerprint"), _bytes(d.get("value")),
                       [(k, bytes.fromhex(v)) for k, v in d.get("headers", [])], d.get("parked_at"),
                       int(d.get("attempts", 1))) for d in docs]

    async def unpark(self, parked: list[Parked]) -> None:
        if parked:
            await self._db[MONGO_PARKED].delete_many({"_id": {"$in": [f"{p.partition}:{p.offset}" for p in parked]}})

    async def record_error(self, error: str | None) -> None:
        await self._meta.update_one(
            {"_id": META_ID},
            {"$set": {"last_error": error, "last_error_at": datetime.now(UTC)}, "$setOnInsert": {"live": 1}},
            upsert=True)

    async def status(self) -> Status:
        meta = await self._meta.find_one({"_id": META_ID}) or {}
        parked = await self._db[MONGO_PARKED].count_documents({})
        return Status(self.name, f"generation {await self._generation()}", await self.offsets(), parked,
                      meta.get("last_error"), meta.get("last_error_at"))

    # ---- rebuild: fill a fresh generation, then switch `live` to it

    async def rebuild_target(self) -> MongoProjection:
        live = await self._live()
        # $max first: a generation number never handed out before, and above the live one.
        await self._meta.update_one({"_id": META_ID}, {"$max": {"next_generation": live}}, upsert=True)
        meta = await self._meta.find_one_and_update({"_id": META_ID}, {"$inc": {"next_generation": 1}},
                                                    return_document=ReturnDocument.AFTER)
        generation = int(meta["next_generation"])
        await self._drop(generation)   # leftovers of an abandoned rebuild
        await self._drop_retired(keep={live, generation})
        await self._ensure_indexes(generation)
        return MongoProjection(self.url, generation=generation, client=self._client, database=self.database)

    async def swap_in(self, built: ProjectionStore) -> str:
        """One update of the meta document switches readers and the live projection to the new generation."""
        assert isinstance(built, MongoProjection) and built._fixed is not None
        new = built._fixed
        before = await self._meta.find_one_and_update({"_id": META_ID}, {"$set": {"live": new}},
                                                      return_document=ReturnDocument.BEFORE, upsert=True)
        old = int(before["live"]) if before and "live" in before else 1
        if old != new:
            await self._drop(old)
        return f"generation {new}"


# ---------------------------------------------------------------- documents


def _event_of(record: EventRecord) -> e.Event:
    if record.event is None:
        raise ApplyError(f"event at {record.partition}:{record.offset} is not decoded: {record.error}")
    return record.event


def _audit_doc(record: EventRecord, event: e.Event, account: _Account | None) -> dict[str, Any]:
    # No wall-clock field: a rebuild must write the very same document.
    return {"_id": event.event_id, "type": type(event).__name__, "account_id": event.account_id,
            "customer_id": account.customer_id if account else None, "command_id": event.command_id,
            "correlation_id": event.correlation_id, "occurred_at": event.occurred_at, "sequence": event.sequence,
            "data": _data(event, account), "topic": LEDGER_EVENTS, "partition": record.partition,
            "offset": Int64(record.offset),
            "schema": {"name": record.schema_name, "fingerprint": record.fingerprint}}


def _data(event: e.Event, account: _Account | None) -> dict[str, Any]:
    """The event's own fields; money as int64 minor units plus a decimal-string twin (never a float)."""
    data: dict[str, Any] = {}
    currency = _currency(event, account)
    for field in dataclasses.fields(event):
        if field.name in _ENVELOPE:
            continue
        value = getattr(event, field.name)
        if field.name in _MONEY and value is not None:
            data[field.name] = Int64(value)
            data[f"{field.name}_text"] = format_amount(value, currency) if currency else None
        else:
            data[field.name] = value
    return data


def _currency(event: e.Event, account: _Account | None) -> str | None:
    return getattr(event, "currency", None) or (account.currency if account else None)


def _timeline_doc(event: e.Event, account: _Account) -> dict[str, Any]:
    sign = e.POSTING_SIGN.get(type(event))
    amount = Int64(sign * event.amount) if sign else None  # type: ignore[attr-defined]
    return {"_id": event.event_id, "customer_id": account.customer_id, "account_id": event.account_id,
            "occurred_at": event.occurred_at, "sequence": event.sequence, "type": type(event).__name__,
            "summary": _summary(event, account), "amount": amount, "currency": _currency(event, account)}


def _summary(event: e.Event, account: _Account) -> str:
    """A short sentence for a customer's activity feed."""
    currency = _currency(event, account) or account.currency

    def money(minor: int) -> str:
        return f"{format_amount(minor, currency)} {currency}"

    match event:
        case e.AccountOpened():
            limit = f", overdraft limit {money(event.overdraft_limit)}" if event.overdraft_limit else ""
            return f"Account opened ({event.currency}{limit})"
        case e.FundsDeposited():
            return f"Deposited {money(event.amount)}"
        case e.FundsWithdrawn():
            return f"Withdrew {money(event.amount)}"
        case e.TransferDebited():
            return f"Sent {money(event.amount)} to {event.to_account_id}"
        case e.TransferCredited():
            return f"Received {money(event.amount)} from {event.from_account_id}"
        case e.TransferCreditFailed():
            return f"Incoming transfer of {money(event.amount)} from {event.from_account_id} refused: {event.reason}"
        case e.TransferReversed():
            return f"Transfer of {money(event.amount)} to {event.to_account_id} reversed: the destination account " \
                "could not be credited"
        case e.AccountFrozen() | e.AccountUnfrozen() | e.AccountClosed():
            verb = {e.AccountFrozen: "frozen", e.AccountUnfrozen: "unfrozen", e.AccountClosed: "closed"}[type(event)]
            return f"Account {verb}" + (f": {event.reason}" if event.reason else "")
        case e.CommandRejected():
            return f"{_COMMANDS.get(event.command_type, event.command_type)} rejected: {event.reason}"
        case e.FundsHeld():
            return f"{_COMMANDS.get(event.command_type, event.command_type)} of {money(event.amount)} held for review"
        case e.OverdraftLimitSet():
            return f"Overdraft limit set to {money(event.overdraft_limit)}"
        case e.PaymentDebited():
            return f"Paid {money(event.amount)} to {event.creditor_name} ({event.creditor_iban})"
        case e.PaymentSent():
            return "Payment sent to the payment rail"
        case e.PaymentSettled():
            return f"Payment of {money(event.amount)} settled"
        case e.PaymentReturned():
            return f"Payment of {money(event.amount)} returned ({event.reason_code}): the money is back"
        case e.PaymentReceived():
            return f"Received {money(event.amount)} by credit transfer"
        case e.LoanDisbursed():
            fee = f" (less a {money(event.fee)} fee)" if event.fee else ""
            return f"Loan paid out: {money(event.amount)}{fee}"
        case e.LoanRepaid():
            return f"Loan repayment of {money(event.amount)}"
        case e.LoanWrittenOff():
            return f"Loan written off: {money(event.principal)} principal, {money(event.interest)} interest"
        case e.ReceiveLimitSet():
            return "Receiving limit lifted: identity verified" if event.receive_limit is None else \
                f"Receiving limit set to {money(event.receive_limit)} until identity is verified"
        case e.InterestCredited():
            return f"Interest of {money(event.amount)} for {event.period}"
        case _:
            return type(event).__name__


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


async def _insert_new(collection: Any, docs: list[dict[str, Any]]) -> None:
    """Insert the documents whose id is not there yet. An event's documents are built only from the log
    (no clock, no counter), so an id already present holds the same document: that event was applied.
    Plain inserts rather than upserts: with the collections' indexes they are twice as fast."""
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as error:
        details = error.details or {}
        if details.get("writeConcernErrors") or any(w.get("code") != _DUPLICATE_KEY
                                                    for w in details.get("writeErrors", [])):
            raise


@contextmanager
def _data_errors() -> Iterator[None]:
    """Errors in the documents, not the connection: retrying the same events would fail the same way."""
    try:
        yield
    except InvalidDocument as error:  # includes DocumentTooLarge
        raise ApplyError(f"{type(error).__name__}: {error}") from None
    except BulkWriteError as error:
        details = error.details or {}
        codes = {w.get("code") for w in details.get("writeErrors", [])}
        if codes - _TRANSIENT_WRITE_CODES and not details.get("writeConcernErrors"):
            first = details["writeErrors"][0]
            raise ApplyError(f"write error {first.get('code')}: {first.get('errmsg')}") from None
        raise
