"""What the read models hold and where: shared by the projections (writers) and the API (reader).

Pure definitions, no I/O: how an event becomes a posting, how positions in the event log are written
down, and the names of the tables, keys and collections each store uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core import events as e
from core import ledger

ProjectionName = Literal["postgres", "redis", "mongo"]
PROJECTIONS: tuple[ProjectionName, ...] = ("postgres", "redis", "mongo")

# The reference of a reversal in every read model: the same words whichever account refused the credit.
REVERSAL_REFERENCE = "credit_failed"


def consumer_group(projection: str) -> str:
    """Each projection is its own consumer group, so each has its own offsets and lag."""
    return f"bankstream-projection-{projection}"


# ---------------------------------------------------------------- postings

PostingType = Literal["deposit", "withdrawal", "transfer_out", "transfer_in", "transfer_reversal", "payment_out",
                      "payment_return", "payment_in", "loan_disbursement", "loan_repayment", "interest"]
POSTING_TYPES: tuple[PostingType, ...] = ("deposit", "withdrawal", "transfer_out", "transfer_in",
                                          "transfer_reversal", "payment_out", "payment_return", "payment_in",
                                          "loan_disbursement", "loan_repayment", "interest")


@dataclass(frozen=True, slots=True)
class Posting:
    """One movement of money on one account: a row of its transaction history. Its id is the event's id."""

    posting_id: str
    account_id: str
    type: PostingType
    amount: int                      # signed minor units: negative leaves the account
    currency: str
    balance_after: int
    counterparty_account_id: str | None
    reference: str | None
    transfer_id: str | None
    command_id: str
    correlation_id: str
    occurred_at: datetime
    sequence: int
    channel: str                     # cash | transfer | card: how the money came or went (CTR counts cash)


def posting_for(event: e.Event) -> Posting | None:
    """The posting an event makes, or None for events that move no money."""
    match event:
        case e.FundsDeposited():
            kind, counterparty, reference, transfer = "deposit", None, event.reference, None
        case e.FundsWithdrawn():
            kind, counterparty, reference, transfer = "withdrawal", None, event.reference, None
        case e.TransferDebited():
            kind, counterparty, reference, transfer = ("transfer_out", event.to_account_id, event.reference,
                                                       event.transfer_id)
        case e.TransferCredited():
            kind, counterparty, reference, transfer = ("transfer_in", event.from_account_id, event.reference,
                                                       event.transfer_id)
        case e.TransferReversed():
            # Not the destination's own reason (closed, frozen): the sender's history must not tell them about
            # another customer's account. Staff read the reason on the destination's TransferCreditFailed.
            kind, counterparty, reference, transfer = ("transfer_reversal", event.to_account_id,
                                                       REVERSAL_REFERENCE, event.transfer_id)
        case e.PaymentDebited():
            kind, counterparty, reference, transfer = ("payment_out", None, event.remittance_information,
                                                       event.payment_id)
        case e.PaymentReturned():
            kind, counterparty, reference, transfer = "payment_return", None, event.reason_code, event.payment_id
        case e.PaymentReceived():
            kind, counterparty, reference, transfer = ("payment_in", None, event.remittance_information,
                                                       event.payment_id)
        case e.LoanDisbursed():
            kind, counterparty, reference, transfer = "loan_disbursement", None, "loan paid out", event.loan_id
        case e.LoanRepaid():
            kind, counterparty, reference, transfer = "loan_repayment", None, f"loan repayment ({event.kind})", \
                event.loan_id
        case e.InterestCredited():
            kind, counterparty, reference, transfer = "interest", None, f"interest {event.period}", None
        case _:
            return None
    # Money between accounts of the bank always moves by transfer; deposits and withdrawals say how.
    channel = event.channel if isinstance(event, (e.FundsDeposited, e.FundsWithdrawn)) else "transfer"
    sign = e.POSTING_SIGN[type(event)]
    return Posting(posting_id=event.event_id, account_id=event.account_id, type=kind,  # type: ignore[arg-type]
                   amount=sign * event.amount, currency=event.currency,
                   balance_after=event.balance_after,
                   counterparty_account_id=counterparty, reference=reference, transfer_id=transfer,
                   command_id=event.command_id, correlation_id=event.correlation_id,
                   occurred_at=event.occurred_at, sequence=event.sequence, channel=channel)


# ---------------------------------------------------------------- risk cases

# A case is a money movement the risk engine flagged (its id is the flagged command's id). It starts as open
# (alert: the movement posted), held (hold: it waits for a reviewer) or blocked (block: it was rejected), and
# a reviewer's decision turns an open or held case into approved or rejected.
CaseStatus = Literal["open", "held", "blocked", "approved", "rejected"]
REVIEWABLE_STATUSES: tuple[CaseStatus, ...] = ("open", "held")    # what the review backlog counts
DECIDED_STATUS: dict[str, CaseStatus] = {"approve": "approved", "reject": "rejected"}
# Rule kinds that point at money laundering rather than fraud: a case hitting one is a SAR candidate.
AML_KINDS: tuple[str, ...] = ("structuring", "ctr", "rapid_movement", "high_risk_jurisdiction", "sanctions")


class FoldError(ValueError):
    """An event a read model cannot fold in order: it belongs in the projection's parked events."""


# Events that may name an account the ledger does not know (a rejected command, a refused credit).
_STATELESS = e.NON_STATE_EVENTS


def fold(state: ledger.AccountState | None, event: e.Event) -> ledger.AccountState | None:
    """core.ledger.apply for read models: idempotent, and strict about events of an account it never saw
    opened (which would otherwise be dropped silently)."""
    if state is None and not isinstance(event, (e.AccountOpened, *_STATELESS)):
        raise FoldError(f"{type(event).__name__} {event.event_id} for account {event.account_id}, "
                        f"which this read model has not seen opened")
    try:
        return ledger.apply(state, event)
    except ValueError as error:
        raise FoldError(str(error)) from None


# ---------------------------------------------------------------- positions in the event log

Positions = dict[int, int]  # partition -> next offset (everything before it is reflected)


class PositionError(ValueError):
    pass


def format_positions(positions: Positions) -> str:
    """`0:12,3:40`: for each partition, the offset after the last event reflected."""
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))


_DIGITS = re.compile(r"[0-9]{1,18}")   # at most 18 digits: an offset fits Kafka's int64


def parse_positions(text: str) -> Positions:
    positions: Positions = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        partition, sep, offset = part.partition(":")
        # ASCII digits only: str.isdigit() also admits '²' or '①', which int() refuses
        if not sep or not _DIGITS.fullmatch(partition) or not _DIGITS.fullmatch(offset):
            raise PositionError(f"{part!r} is not <partition>:<offset>")
        positions[int(partition)] = max(positions.get(int(partition), 0), int(offset))
    return positions


def reached(current: Positions, wanted: Positions) -> bool:
    return all(current.get(p, 0) >= o for p, o in wanted.items())


def lag(current: Positions, head: Positions) -> int:
    """Events the read model is behind the head of the log (as far as the caller knows the head)."""
    return sum(max(0, o - current.get(p, 0)) for p, o in head.items())


# ---------------------------------------------------------------- where each store keeps what

PG_SCHEMA = "readmodel"                  # the live read model; rebuilds fill PG_REBUILD_SCHEMA and swap
PG_REBUILD_SCHEMA = "readmodel_rebuild"
PG_RETIRED_SCHEMA = "readmodel_retired"

# Redis: every key of a generation starts with its prefix; REDIS_LIVE names the live generation.
REDIS_LIVE = "bank:rm:live"
REDIS_RECENT_POSTINGS = 50


def redis_prefix(generation: int | str) -> str:
    return f"bank:rm:{generation}:"


def redis_account_key(generation: int | str, account_id: str) -> str:
    return f"{redis_prefix(generation)}account:{account_id}"


def redis_postings_key(generation: int, account_id: str) -> str:
    return f"{redis_prefix(generation)}postings:{account_id}"


def redis_offsets_key(generation: int | str) -> str:
    return f"{redis_prefix(generation)}offsets"


REDIS_STATUS = "bank:rm:status"          # hash: last error of the redis projection
REDIS_PARKED = "bank:rm:parked"          # hash: "<partition>:<offset>" -> parked event JSON

# MongoDB: collections carry their generation as a suffix; the meta document names the live one.
MONGO_DB = "bankstream"
MONGO_META = "projection_meta"           # {_id: "mongo", live: <generation>, last_error: ..}
MONGO_PARKED = "parked_events"


def mongo_collection(kind: Literal["audit", "timeline", "accounts", "offsets"], generation: int) -> str:
    return f"{kind}_g{generation}"
