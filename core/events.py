"""Events: immutable facts on the ledger topic, the system of record. Keyed by account id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.commands import derive_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    event_id: str
    command_id: str          # the command that caused this event (a saga step has its own)
    correlation_id: str      # the customer command it belongs to (a transfer's saga shares one)
    account_id: str
    occurred_at: datetime
    # The account's version after this event; rejections carry the version they were judged at.
    sequence: int
    schema_version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountOpened(Event):
    customer_id: str
    currency: str
    overdraft_limit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FundsDeposited(Event):
    amount: int
    currency: str
    balance_after: int
    reference: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FundsWithdrawn(Event):
    amount: int
    currency: str
    balance_after: int
    reference: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferDebited(Event):
    """Money left the source; until TransferCredited or TransferReversed it is in flight."""

    transfer_id: str
    to_account_id: str
    amount: int
    currency: str
    balance_after: int
    reference: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferCredited(Event):
    transfer_id: str
    from_account_id: str
    amount: int
    currency: str
    balance_after: int
    reference: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferCreditFailed(Event):
    """The destination refused the credit; the saga answers with a reversal on the source."""

    transfer_id: str
    from_account_id: str
    amount: int
    currency: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferReversed(Event):
    transfer_id: str
    to_account_id: str
    amount: int
    currency: str
    balance_after: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferCompleted(Event):
    """The source's record that its transfer was credited: the saga is over, nothing is in flight."""

    transfer_id: str
    to_account_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountFrozen(Event):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountUnfrozen(Event):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountClosed(Event):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRejected(Event):
    command_type: str
    reason: str
    detail: str


EVENT_TYPES: dict[str, type[Event]] = {
    e.__name__: e
    for e in (
        AccountOpened, FundsDeposited, FundsWithdrawn, TransferDebited, TransferCredited,
        TransferCreditFailed, TransferReversed, TransferCompleted, AccountFrozen, AccountUnfrozen, AccountClosed,
        CommandRejected,
    )
}

# Events that move money, with the sign they apply to their account's balance.
POSTING_SIGN: dict[type[Event], int] = {
    FundsDeposited: +1, FundsWithdrawn: -1, TransferDebited: -1, TransferCredited: +1, TransferReversed: +1,
}


def event_id_for(command_id: str, event_type: type[Event]) -> str:
    """Deterministic: replaying a command yields the same event ids, so readers can deduplicate."""
    return derive_id(command_id, event_type.__name__)
