"""The ledger's rules: decide(state, command) -> events, and apply(state, event) -> state. Pure functions.

The stream agent, the API's view of the ledger and the tests' invariant checks all fold events with
`apply`, so there is one definition of what an event does to an account.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from core import commands as c
from core import events as e
from core.money import CURRENCY_DIGITS, MAX_MINOR_UNITS, format_amount

AccountStatus = Literal["open", "frozen", "closed"]


@dataclass(frozen=True, slots=True)
class AccountState:
    account_id: str
    customer_id: str
    currency: str
    overdraft_limit: int
    balance: int = 0
    status: AccountStatus = "open"
    sequence: int = 0
    transfers_out_in_flight: int = 0

    @property
    def available_balance(self) -> int:
        """What can still be spent: the balance plus the overdraft the account may use."""
        return self.balance + self.overdraft_limit

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountState:
        return cls(**data)


class Rejection(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- decide


def decide(state: AccountState | None, cmd: c.Command, now: datetime) -> list[e.Event]:
    """The events a command produces against the account's current state (a rejection is an event too)."""
    try:
        _validate_payload(cmd)
        return _DECIDERS[type(cmd)](state, cmd, now)
    except Rejection as rejection:
        return [_rejected(state, cmd, now, rejection)]


def _validate_payload(cmd: c.Command) -> None:
    """Guards against producers other than the API writing nonsense onto the command topic."""
    amount = getattr(cmd, "amount", None)
    if amount is not None and not 0 < amount <= MAX_MINOR_UNITS:
        raise Rejection("invalid_amount", f"amount of {amount} minor units is outside 1..{MAX_MINOR_UNITS}")
    currency = getattr(cmd, "currency", None)
    if currency is not None and currency not in CURRENCY_DIGITS:
        raise Rejection("unknown_currency", f"{currency!r} is not a supported currency")
    if isinstance(cmd, c.OpenAccount) and not 0 <= cmd.overdraft_limit <= MAX_MINOR_UNITS:
        raise Rejection("invalid_overdraft_limit", "overdraft limit must be between 0 and the posting maximum")
    if isinstance(cmd, c.Transfer) and cmd.to_account_id == cmd.account_id:
        raise Rejection("same_account", "a transfer needs two different accounts")


def _base(state: AccountState | None, cmd: c.Command, now: datetime, kind: type[e.Event], seq: int) -> dict:
    return dict(
        event_id=e.event_id_for(cmd.command_id, kind),
        command_id=cmd.command_id,
        correlation_id=cmd.correlation_id,
        account_id=cmd.account_id,
        occurred_at=now,
        sequence=seq,
    )


def _rejected(state: AccountState | None, cmd: c.Command, now: datetime, r: Rejection) -> e.CommandRejected:
    seq = state.sequence if state else 0
    return e.CommandRejected(
        **_base(state, cmd, now, e.CommandRejected, seq),
        command_type=type(cmd).__name__, reason=r.reason, detail=r.detail,
    )


def _require_account(state: AccountState | None, cmd: c.Command) -> AccountState:
    if state is None:
        raise Rejection("unknown_account", f"account {cmd.account_id} does not exist")
    if state.status == "closed":
        raise Rejection("account_closed", f"account {cmd.account_id} is closed")
    return state


def _require_movable(state: AccountState | None, cmd: c.Command, currency: str) -> AccountState:
    acct = _require_account(state, cmd)
    if acct.status == "frozen":
        raise Rejection("account_frozen", f"account {cmd.account_id} is frozen")
    if currency != acct.currency:
        raise Rejection("currency_mismatch", f"account {cmd.account_id} holds {acct.currency}, not {currency}")
    return acct


def _require_funds(acct: AccountState, amount: int) -> None:
    if acct.balance - amount < -acct.overdraft_limit:
        def money(minor: int) -> str:
            return format_amount(minor, acct.currency)

        raise Rejection(
            "insufficient_funds",
            f"balance {money(acct.balance)} minus {money(amount)} {acct.currency} would pass the overdraft "
            f"limit of {money(acct.overdraft_limit)}",
        )


def _open(state: AccountState | None, cmd: c.OpenAccount, now: datetime) -> list[e.Event]:
    if state is not None:
        raise Rejection("duplicate", f"account {cmd.account_id} already exists")
    return [e.AccountOpened(**_base(state, cmd, now, e.AccountOpened, 1), customer_id=cmd.customer_id,
                            currency=cmd.currency, overdraft_limit=cmd.overdraft_limit)]


def _deposit(state: AccountState | None, cmd: c.Deposit, now: datetime) -> list[e.Event]:
    acct = _require_movable(state, cmd, cmd.currency)
    return [e.FundsDeposited(**_base(state, cmd, now, e.FundsDeposited, acct.sequence + 1), amount=cmd.amount,
                             currency=cmd.currency, balance_after=acct.balance + cmd.amount,
                             reference=cmd.reference)]


def _withdraw(state: AccountState | None, cmd: c.Withdraw, now: datetime) -> list[e.Event]:
    acct = _require_movable(state, cmd, cmd.currency)
    _require_funds(acct, cmd.amount)
    return [e.FundsWithdrawn(**_base(state, cmd, now, e.FundsWithdrawn, acct.sequence + 1), amount=cmd.amount,
                             currency=cmd.currency, balance_after=acct.balance - cmd.amount,
                             reference=cmd.reference)]


def _transfer(state: AccountState | None, cmd: c.Transfer, now: datetime) -> list[e.Event]:
    acct = _require_movable(state, cmd, cmd.currency)
    _require_funds(acct, cmd.amount)
    return [e.TransferDebited(**_base(state, cmd, now, e.TransferDebited, acct.sequence + 1),
                              transfer_id=cmd.correlation_id, to_account_id=cmd.to_account_id,
                              amount=cmd.amount, currency=cmd.currency, balance_after=acct.balance - cmd.amount,
                              reference=cmd.reference)]


def _credit(state: AccountState | None, cmd: c.CreditTransfer, now: datetime) -> list[e.Event]:
    try:
        acct = _require_movable(state, cmd, cmd.currency)
    except Rejection as r:
        # The source was already debited: record the refusal so the saga compensates it.
        return [e.TransferCreditFailed(**_base(state, cmd, now, e.TransferCreditFailed,
                                               state.sequence if state else 0),
                                       transfer_id=cmd.transfer_id, from_account_id=cmd.from_account_id,
                                       amount=cmd.amount, currency=cmd.currency, reason=r.reason)]
    return [e.TransferCredited(**_base(state, cmd, now, e.TransferCredited, acct.sequence + 1),
                               transfer_id=cmd.transfer_id, from_account_id=cmd.from_account_id,
                               amount=cmd.amount, currency=cmd.currency, balance_after=acct.balance + cmd.amount,
                               reference=cmd.reference)]


def _reverse(state: AccountState | None, cmd: c.ReverseTransfer, now: datetime) -> list[e.Event]:
    # A compensation always applies: the source cannot close while a transfer is in flight,
    # and a freeze must not trap money that is coming back.
    if state is None:
        raise Rejection("unknown_account", f"account {cmd.account_id} does not exist")
    return [e.TransferReversed(**_base(state, cmd, now, e.TransferReversed, state.sequence + 1),
                               transfer_id=cmd.transfer_id, to_account_id=cmd.to_account_id, amount=cmd.amount,
                               currency=cmd.currency, balance_after=state.balance + cmd.amount, reason=cmd.reason)]


def _complete(state: AccountState | None, cmd: c.CompleteTransfer, now: datetime) -> list[e.Event]:
    if state is None:
        raise Rejection("unknown_account", f"account {cmd.account_id} does not exist")
    return [e.TransferCompleted(**_base(state, cmd, now, e.TransferCompleted, state.sequence + 1),
                                transfer_id=cmd.transfer_id, to_account_id=cmd.to_account_id)]


def _freeze(state: AccountState | None, cmd: c.FreezeAccount, now: datetime) -> list[e.Event]:
    acct = _require_account(state, cmd)
    if acct.status == "frozen":
        raise Rejection("account_frozen", f"account {cmd.account_id} is already frozen")
    return [e.AccountFrozen(**_base(state, cmd, now, e.AccountFrozen, acct.sequence + 1), reason=cmd.reason)]


def _unfreeze(state: AccountState | None, cmd: c.UnfreezeAccount, now: datetime) -> list[e.Event]:
    acct = _require_account(state, cmd)
    if acct.status != "frozen":
        raise Rejection("account_not_frozen", f"account {cmd.account_id} is not frozen")
    return [e.AccountUnfrozen(**_base(state, cmd, now, e.AccountUnfrozen, acct.sequence + 1), reason=cmd.reason)]


def _close(state: AccountState | None, cmd: c.CloseAccount, now: datetime) -> list[e.Event]:
    acct = _require_account(state, cmd)
    if acct.transfers_out_in_flight:
        raise Rejection("transfers_in_flight", f"{acct.transfers_out_in_flight} transfer(s) still in flight")
    if acct.balance != 0:
        raise Rejection("balance_not_zero", f"an account closes only at zero balance; it holds "
                        f"{format_amount(acct.balance, acct.currency)} {acct.currency}")
    return [e.AccountClosed(**_base(state, cmd, now, e.AccountClosed, acct.sequence + 1), reason=cmd.reason)]


_DECIDERS = {
    c.OpenAccount: _open, c.Deposit: _deposit, c.Withdraw: _withdraw, c.Transfer: _transfer,
    c.CreditTransfer: _credit, c.ReverseTransfer: _reverse, c.CompleteTransfer: _complete, c.FreezeAccount: _freeze,
    c.UnfreezeAccount: _unfreeze, c.CloseAccount: _close,
}

# ---------------------------------------------------------------- apply


def apply(state: AccountState | None, event: e.Event) -> AccountState | None:
    """Fold one event into the account. Idempotent: an event at or below the account's version is a no-op."""
    if isinstance(event, e.AccountOpened):
        if state is not None:
            return state
        return AccountState(account_id=event.account_id, customer_id=event.customer_id, currency=event.currency,
                            overdraft_limit=event.overdraft_limit, sequence=event.sequence)
    if state is None or event.sequence <= state.sequence or isinstance(event, _NON_STATE_EVENTS):
        return state
    if event.sequence != state.sequence + 1:
        raise ValueError(f"event {event.event_id} has sequence {event.sequence}; account is at {state.sequence}")
    changes: dict[str, Any] = {"sequence": event.sequence}
    if type(event) in e.POSTING_SIGN:
        changes["balance"] = event.balance_after  # type: ignore[attr-defined]
    if isinstance(event, e.TransferDebited):
        changes["transfers_out_in_flight"] = state.transfers_out_in_flight + 1
    elif isinstance(event, (e.TransferReversed, e.TransferCompleted)):
        changes["transfers_out_in_flight"] = max(0, state.transfers_out_in_flight - 1)
    elif isinstance(event, e.AccountFrozen):
        changes["status"] = "frozen"
    elif isinstance(event, e.AccountUnfrozen):
        changes["status"] = "open"
    elif isinstance(event, e.AccountClosed):
        changes["status"] = "closed"
    return replace(state, **changes)


# Events that record a decision without changing the account they are keyed by.
_NON_STATE_EVENTS = (e.CommandRejected, e.TransferCreditFailed)


# ---------------------------------------------------------------- command outcomes

CommandStatus = Literal["pending", "accepted", "rejected"]


@dataclass(slots=True)
class CommandOutcome:
    """What a customer command came to, folded from the events that carry its correlation id."""

    command_id: str
    status: CommandStatus = "pending"
    reason: str | None = None
    detail: str | None = None
    in_flight: bool = False
    events: list[e.Event] | None = None

    def add(self, event: e.Event) -> None:
        if self.events is None:
            self.events = []
        if any(known.event_id == event.event_id for known in self.events):
            return
        self.events.append(event)
        if isinstance(event, e.CommandRejected):
            self.status, self.reason, self.detail = "rejected", event.reason, event.detail
        elif isinstance(event, e.TransferDebited):
            self.in_flight = True
        elif isinstance(event, e.TransferCreditFailed):
            self.reason = event.reason
        elif isinstance(event, e.TransferReversed):
            self.status, self.reason, self.in_flight = "rejected", event.reason, False
            self.detail = f"the credit failed ({event.reason}); the debit was reversed"
        elif isinstance(event, e.TransferCredited):
            self.status, self.in_flight = "accepted", False
        elif not isinstance(event, e.TransferCompleted):
            self.status = "accepted"
