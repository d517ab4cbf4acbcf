"""core/pointintime.py on a log made by the ledger's own decide: cutoffs, per-account prefixes, in-flight
transfers and totals (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core import commands as c
from core import events as e
from core.books import books_as_of
from core.ledger import AccountState, apply, decide
from core.pointintime import CutoffError, LoggedEvent, account_as_of, ledger_as_of, parse_cutoff, report

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _log(pay_another_bank: bool = False) -> list[LoggedEvent]:
    """A on partition 0, B on partition 1: open both, deposit 100 on A, transfer 30 A -> B (debit at +3s,
    credit at +5s, completion at +6s), withdraw 10 from A at +7s; with `pay_another_bank`, A pays 20 to another
    bank at +8s."""
    states: dict[str, AccountState | None] = {"A": None, "B": None}
    partition = {"A": 0, "B": 1}
    log: list[LoggedEvent] = []

    def run(command: c.Command, second: int) -> list[e.Event]:
        events = decide(states[command.account_id], command, T0 + timedelta(seconds=second))
        for event in events:
            states[event.account_id] = apply(states[event.account_id], event)
            log.append(LoggedEvent(partition[event.account_id], sum(i.partition == partition[event.account_id]
                                                                    for i in log), event))
        return events

    common = dict(issued_at=T0)
    run(c.OpenAccount(command_id="oa", account_id="A", correlation_id="oa", customer_id="x", currency="EUR", **common), 0)
    run(c.OpenAccount(command_id="ob", account_id="B", correlation_id="ob", customer_id="y", currency="EUR", **common), 1)
    run(c.Deposit(command_id="d", account_id="A", correlation_id="d", amount=100, currency="EUR", **common), 2)
    run(c.Transfer(command_id="t", account_id="A", correlation_id="t", to_account_id="B", amount=30, currency="EUR",
                   **common), 3)
    run(c.CreditTransfer(command_id="ct", account_id="B", correlation_id="t", transfer_id="t", from_account_id="A",
                         amount=30, currency="EUR", **common), 5)
    run(c.CompleteTransfer(command_id="cp", account_id="A", correlation_id="t", transfer_id="t", to_account_id="B",
                           **common), 6)
    run(c.Withdraw(command_id="w", account_id="A", correlation_id="w", amount=10, currency="EUR", **common), 7)
    if pay_another_bank:
        run(c.Payment(command_id="p", account_id="A", correlation_id="p", amount=20, currency="EUR",
                      creditor_iban="DE89370400440532013000", creditor_name="Zahl GmbH", **common), 8)
    return log


def _report(log: list[LoggedEvent], cutoff: datetime) -> dict[str, Any]:
    books = books_as_of(log, cutoff)
    return report(ledger_as_of(log, cutoff), {currency: books.trial_balance(currency).total
                                              for currency in books.currencies})


def test_an_account_as_of_a_moment_folds_the_events_that_occurred_by_then() -> None:
    log = _log()
    assert account_as_of(log, "A", T0 - timedelta(seconds=1)) is None
    assert account_as_of(log, "A", T0 + timedelta(seconds=2)).balance == 100
    mid = account_as_of(log, "A", T0 + timedelta(seconds=4))
    assert (mid.balance, mid.transfers_out_in_flight) == (70, 1)
    assert account_as_of(log, "B", T0 + timedelta(seconds=4)).balance == 0
    assert account_as_of(log, "A", T0 + timedelta(seconds=60)).balance == 60


def test_an_account_as_of_a_position_folds_the_events_before_it() -> None:
    log = _log()
    assert account_as_of(log, "A", {0: 2}).balance == 100            # opened, deposited
    assert account_as_of(log, "A", {1: 99}) is None                   # its partition not named: nothing read
    assert account_as_of(log, "B", {1: 2}).balance == 30


def test_the_ledger_mid_transfer_has_it_in_flight_and_the_books_balance() -> None:
    mid = ledger_as_of(_log(), T0 + timedelta(seconds=4))
    assert list(mid.in_flight) == ["t"]
    assert mid.totals()["EUR"] == {"accounts": 2, "balance": 70, "held": 0, "in_flight": 30, "deposited": 100,
                                   "withdrawn": 0}
    after = _report(_log(), T0 + timedelta(seconds=60))
    assert after["in_flight"] == [] and after["totals"]["EUR"]["balanced"]
    assert {row["account_id"]: row["balance"] for row in after["accounts"]} == {"A": "0.60", "B": "0.30"}
    assert after["positions"] == "0:5,1:2"


def test_the_books_balance_with_a_payment_to_another_bank_in_clearing() -> None:
    """The 20 left A for the bank's clearing account: no deposit, withdrawal or transfer says where it went, the
    double-entry books do (`bank replay` said "do not balance" of a healthy ledger once a payment was made)."""
    ledger = ledger_as_of(_log(pay_another_bank=True), T0 + timedelta(seconds=60))
    row = ledger.totals()["EUR"]
    assert row["balance"] + row["in_flight"] != row["deposited"] - row["withdrawn"]
    totals = _report(_log(pay_another_bank=True), T0 + timedelta(seconds=60))["totals"]
    assert totals["EUR"]["balanced"] and totals["EUR"]["trial_balance_minor"] == 0, totals


def test_an_accounts_history_is_cut_as_a_prefix() -> None:
    """An event stamped before the cutoff but after one of the account's events past it does not count: the
    fold stays gapless even if a clock stepped back."""
    log = _log()
    late = log[-1]
    stepped_back = LoggedEvent(late.partition, late.offset + 1, e.AccountFrozen(
        event_id="f", command_id="f", correlation_id="f", account_id="A", occurred_at=T0 + timedelta(seconds=1),
        sequence=late.event.sequence + 1))
    cutoff = T0 + timedelta(seconds=6, milliseconds=500)
    assert account_as_of([*log, stepped_back], "A", cutoff).status == "open"
    assert ledger_as_of([*log, stepped_back], cutoff).accounts["A"].status == "open"


def test_cutoffs_parse() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert parse_cutoff("2026-12-01T10:00:00Z", now) == T0
    assert parse_cutoff("2026-12-01T11:00:00+01:00", now) == T0
    assert parse_cutoff("2026-12-01T10:00:00", now) == T0
    assert parse_cutoff("1h", now) == now - timedelta(hours=1)
    assert parse_cutoff("0:12,3:40", now) == {0: 12, 3: 40}
    for nonsense in ("yesterday", "0:x", "999999d", "0001-01-01T00:00+01:00", ""):
        with pytest.raises(CutoffError):
            parse_cutoff(nonsense, now)


def test_a_credit_read_before_its_debit_settles_the_transfer() -> None:
    """The log is ordered per partition only: a reader may see B's partition (the credit) before A's (the debit)."""
    log = _log()
    by_partition = sorted(log, key=lambda logged: -logged.partition)
    ledger = ledger_as_of(by_partition, T0 + timedelta(seconds=60))
    assert ledger.in_flight == {} and _report(by_partition, T0 + timedelta(seconds=60))["totals"]["EUR"]["balanced"]
    assert list(ledger_as_of(by_partition, T0 + timedelta(seconds=4)).in_flight) == ["t"]
