"""The ledger as it was: fold the event log with core.ledger.apply up to a moment or a log position. Pure.

A cutoff is a moment (the events that occurred at or before it, by their `occurred_at`) or a log position
(`0:12,3:40`, the format of core.readmodel.format_positions: per partition, the offset after the last event
included; a partition the position does not name contributes nothing, like a reader that has not read it).

Each account's history is cut as a prefix: its events in log order up to the first one past the cutoff. The
ledger decides an account's commands one after another, so its events' moments only grow along the log; the
prefix rule keeps a fold gapless even if a clock ever stepped back. GET /v1/accounts/{id}/balance?as_of= and
`bank replay --until` both answer with these functions; reading the log is their callers' job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core import events as e
from core.ledger import AccountState, apply
from core.money import format_amount
from core.readmodel import Positions, format_positions, parse_positions

Cutoff = datetime | Positions

_POSITION = re.compile(r"^[0-9]{1,18}:[0-9]{1,18}(,[0-9]{1,18}:[0-9]{1,18})*$")
_RELATIVE = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
_UNITS = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


class CutoffError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event with where it is in the log."""

    partition: int
    offset: int
    event: e.Event
    actor_id: str | None = None   # the user id of the record's actor header (core.audit), when it has one


# ---------------------------------------------------------------- cutoffs


def parse_cutoff(text: str, now: datetime) -> Cutoff:
    """An RFC 3339 moment (`2026-12-01T10:00:00Z`; without a zone: UTC), a moment that long ago (`1h`, `30m`,
    `2d`, `45s`), or a log position (`0:12,3:40`)."""
    text = text.strip()
    if _POSITION.fullmatch(text):
        return parse_positions(text)
    try:
        if relative := _RELATIVE.fullmatch(text):
            return now - int(relative[1]) * _UNITS[relative[2]]
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError:
        raise CutoffError(f"{text!r} is neither an RFC 3339 time (2026-12-01T10:00:00Z), a duration ago (1h, "
                          f"30m, 2d) nor a log position (0:12,3:40)") from None
    except OverflowError:   # `999999d` ago, or year 1 in a zone east of UTC: before Python's first moment
        raise CutoffError(f"{text!r} is before the year 1") from None


def describe(cutoff: Cutoff) -> str:
    return cutoff.isoformat() if isinstance(cutoff, datetime) else format_positions(cutoff)


def within(logged: LoggedEvent, cutoff: Cutoff) -> bool:
    """Whether the event is before the cutoff (at or before a moment; before a position)."""
    if isinstance(cutoff, datetime):
        return logged.event.occurred_at <= cutoff
    return logged.offset < cutoff.get(logged.partition, 0)


# ---------------------------------------------------------------- one account


def account_as_of(log: Iterable[LoggedEvent], account_id: str, cutoff: Cutoff) -> AccountState | None:
    """The account as it was at the cutoff (None: not opened yet). `log` in per-partition order."""
    state: AccountState | None = None
    for logged in log:
        if logged.event.account_id != account_id:
            continue
        if not within(logged, cutoff):
            break
        state = apply(state, logged.event)
    return state


# ---------------------------------------------------------------- the whole ledger


@dataclass(frozen=True, slots=True)
class InFlight:
    """A transfer debited from its source and not yet credited or reversed."""

    transfer_id: str
    from_account_id: str
    to_account_id: str
    amount: int
    currency: str
    debited_at: datetime


@dataclass
class LedgerAsOf:
    """The ledger's state at a cutoff, folded from the log."""

    cutoff: Cutoff
    accounts: dict[str, AccountState] = field(default_factory=dict)
    debited: dict[str, InFlight] = field(default_factory=dict)  # transfer id -> its debit
    settled: set[str] = field(default_factory=set)              # transfers credited or reversed
    deposited: dict[str, int] = field(default_factory=dict)     # currency -> money that came into the bank
    withdrawn: dict[str, int] = field(default_factory=dict)     # currency -> money that left it
    events: int = 0
    positions: Positions = field(default_factory=dict)         # after the last event folded, per partition

    @property
    def in_flight(self) -> dict[str, InFlight]:
        """Debited and not (yet) credited or reversed. A set difference, not a running tally: the log is in
        order per partition only, and a credit may be read before its debit on another partition."""
        return {transfer_id: debit for transfer_id, debit in self.debited.items() if transfer_id not in self.settled}

    def totals(self) -> dict[str, dict[str, int]]:
        """Per currency: accounts, sum of balances, held for review, in flight, deposits and withdrawals.
        The books balance when balances + in flight == deposited - withdrawn."""
        totals: dict[str, dict[str, int]] = {}

        def of(currency: str) -> dict[str, int]:
            return totals.setdefault(currency, dict.fromkeys(
                ("accounts", "balance", "held", "in_flight", "deposited", "withdrawn"), 0))

        for account in self.accounts.values():
            row = of(account.currency)
            row["accounts"] += 1
            row["balance"] += account.balance
            row["held"] += account.held_debits
        for transfer in self.in_flight.values():
            of(transfer.currency)["in_flight"] += transfer.amount
        for currency, amount in self.deposited.items():
            of(currency)["deposited"] += amount
        for currency, amount in self.withdrawn.items():
            of(currency)["withdrawn"] += amount
        return dict(sorted(totals.items()))

    def holds(self) -> list[dict[str, Any]]:
        return [{"account_id": account_id, "case_id": case_id, **hold}
                for account_id, state in sorted(self.accounts.items()) for case_id, hold in sorted(state.holds.items())]


def whole_log_cutoff(log: Sequence[LoggedEvent], cutoff: Cutoff) -> Cutoff:
    """The cutoff for a fold of the whole log (the books, every account). A position that names only some
    partitions (a command's own `position` names its own) says nothing of the others: there the cut is completed
    by time, up to the moment of the latest event it takes from the partitions it names. A credit is decided after
    its debit, so no credit is taken without its debit and transit never looks negative. A moment, or a position
    naming every partition of the log, is returned as it is."""
    if isinstance(cutoff, datetime):
        return cutoff
    unnamed = {logged.partition for logged in log} - set(cutoff)
    if not unnamed:
        return cutoff
    taken = [logged.event.occurred_at for logged in log if logged.partition in cutoff and within(logged, cutoff)]
    moment = max(taken, default=None)
    completed = dict(cutoff)
    for partition in unnamed:
        completed[partition] = 0
    if moment is not None:
        for logged in log:
            if logged.partition in unnamed and logged.event.occurred_at <= moment:
                completed[logged.partition] = max(completed[logged.partition], logged.offset + 1)
    return completed


def events_as_of(log: Iterable[LoggedEvent], cutoff: Cutoff) -> Iterator[LoggedEvent]:
    """The events a fold at the cutoff takes: each account's history cut as a prefix, duplicates left out.
    The ledger (`ledger_as_of`) and the bank's books (core.books) fold the same ones."""
    past: set[str] = set()   # accounts whose history reached the cutoff: their later events do not count
    seen: set[str] = set()
    for logged in log:
        event = logged.event
        if event.account_id in past or not within(logged, cutoff):
            past.add(event.account_id)
            continue
        if event.event_id in seen:
            continue   # a duplicate changes nothing (apply is idempotent); the sums must not count it twice
        seen.add(event.event_id)
        yield logged


def ledger_as_of(log: Sequence[LoggedEvent], cutoff: Cutoff) -> LedgerAsOf:
    """Every account, the transfers in flight and the money totals as they were at the cutoff (a position naming
    only some partitions is completed by time: `whole_log_cutoff`)."""
    cutoff = whole_log_cutoff(log, cutoff)
    ledger = LedgerAsOf(cutoff)
    for logged in events_as_of(log, cutoff):
        _fold(ledger, logged)
    return ledger


def _fold(ledger: LedgerAsOf, logged: LoggedEvent) -> None:
    event = logged.event
    state = apply(ledger.accounts.get(event.account_id), event)
    if state is not None:
        ledger.accounts[event.account_id] = state
    ledger.events += 1
    ledger.positions[logged.partition] = max(ledger.positions.get(logged.partition, 0), logged.offset + 1)
    if isinstance(event, e.FundsDeposited):
        ledger.deposited[event.currency] = ledger.deposited.get(event.currency, 0) + event.amount
    elif isinstance(event, e.FundsWithdrawn):
        ledger.withdrawn[event.currency] = ledger.withdrawn.get(event.currency, 0) + event.amount
    elif isinstance(event, e.TransferDebited):
        ledger.debited[event.transfer_id] = InFlight(event.transfer_id, event.account_id, event.to_account_id,
                                                     event.amount, event.currency, event.occurred_at)
    elif isinstance(event, (e.TransferCredited, e.TransferReversed)):
        ledger.settled.add(event.transfer_id)


# ---------------------------------------------------------------- as plain values


def account_summary(state: AccountState) -> dict[str, Any]:
    """An account's figures in minor units and as decimal strings."""
    money = {name: getattr(state, name) for name in ("balance", "available_balance", "overdraft_limit")}
    money["held"] = state.held_debits
    return {"account_id": state.account_id, "customer_id": state.customer_id, "currency": state.currency,
            "status": state.status, "version": state.sequence, "transfers_out_in_flight": state.transfers_out_in_flight,
            **{f"{name}_minor": value for name, value in money.items()},
            **{name: format_amount(value, state.currency) for name, value in money.items()}}


def report(ledger: LedgerAsOf, trial_balance: Mapping[str, int]) -> dict[str, Any]:
    """The whole state as JSON-able values (`bank replay --json`). `trial_balance`: per currency, debits minus
    credits over every ledger account of the books folded from the same events (core.books.books_as_of); the
    books balance where it is zero. Deposits, withdrawals and transfers alone do not say it: a payment to another
    bank, a loan or interest moves money to or from the bank's own accounts."""
    return {
        "until": describe(ledger.cutoff), "events": ledger.events, "positions": format_positions(ledger.positions),
        "accounts": [account_summary(state) for _, state in sorted(ledger.accounts.items())],
        "in_flight": [{**{k: getattr(t, k) for k in ("transfer_id", "from_account_id", "to_account_id", "currency")},
                       "amount_minor": t.amount, "amount": format_amount(t.amount, t.currency),
                       "debited_at": t.debited_at.isoformat()} for _, t in sorted(ledger.in_flight.items())],
        "holds": ledger.holds(),
        "totals": {currency: {**{f"{k}_minor" if k != "accounts" else k: v for k, v in row.items()},
                              "trial_balance_minor": trial_balance.get(currency, 0),
                              "balanced": trial_balance.get(currency, 0) == 0}
                   for currency, row in ledger.totals().items()},
    }
