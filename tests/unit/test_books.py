"""The bank's books (core/books.py): each event's legs, the chart's constraints, the trial balance at a cutoff,
one ledger account's entries, and the property that any sequence of events leaves the books balanced."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import commands as c
from core import events as e
from core.books import (BANK_ACCOUNTS, CHART, TRANSIT, VAULT, Books, Leg, UnknownLedgerAccount, books_as_of,
                        entries_of, kind_of, legs_of, unbalanced)
from core.ledger import AccountState, apply, decide
from core.pointintime import LoggedEvent, whole_log_cutoff
from core.saga import next_step   # the saga's own step rule, so the test follows the real path

NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)


def _common(event_id: str, account: str, sequence: int, command: str | None = None,
            at: datetime = NOW) -> dict:
    return {"event_id": event_id, "command_id": command or event_id, "correlation_id": command or event_id,
            "account_id": account, "occurred_at": at, "sequence": sequence}


def _opened(account: str, overdraft: int = 0, currency: str = "EUR") -> e.AccountOpened:
    return e.AccountOpened(**_common(f"open-{account}", account, 1), customer_id="c", currency=currency,
                           overdraft_limit=overdraft)


def _deposit(event_id: str, account: str, sequence: int, amount: int, channel: str = "cash",
             at: datetime = NOW) -> e.FundsDeposited:
    return e.FundsDeposited(**_common(event_id, account, sequence, at=at), amount=amount, currency="EUR",
                            balance_after=amount, channel=channel)


def _withdrawal(event_id: str, account: str, sequence: int, amount: int) -> e.FundsWithdrawn:
    return e.FundsWithdrawn(**_common(event_id, account, sequence), amount=amount, currency="EUR", balance_after=0,
                            channel="cash")


def _transfer(transfer: str, source: str, destination: str, amount: int) -> tuple[e.Event, e.Event]:
    debited = e.TransferDebited(**_common(f"{transfer}-d", source, 3, transfer), transfer_id=transfer,
                                to_account_id=destination, amount=amount, currency="EUR", balance_after=0)
    credited = e.TransferCredited(**_common(f"{transfer}-c", destination, 2, transfer), transfer_id=transfer,
                                  from_account_id=source, amount=amount, currency="EUR", balance_after=amount)
    return debited, credited


# ---------------------------------------------------------------- legs


def test_each_money_moving_event_has_its_two_legs() -> None:
    debited, credited = _transfer("t1", "A", "B", 30)
    reversed_ = e.TransferReversed(**_common("t1-r", "A", 4, "t1"), transfer_id="t1", to_account_id="B", amount=30,
                                   currency="EUR", balance_after=30, reason="account_closed")
    expected = {
        _deposit("d", "A", 2, 100): (("debit", VAULT), ("credit", "customer:A")),
        _withdrawal("w", "A", 3, 40): (("debit", "customer:A"), ("credit", VAULT)),
        _deposit("card", "A", 2, 5, channel="card"): (("debit", "clearing"), ("credit", "customer:A")),
        _deposit("bench", "A", 2, 5, channel="transfer"): (("debit", "suspense"), ("credit", "customer:A")),
        debited: (("debit", "customer:A"), ("credit", TRANSIT)),
        credited: (("debit", TRANSIT), ("credit", "customer:B")),
        reversed_: (("debit", TRANSIT), ("credit", "customer:A")),
    }
    for event, sides in expected.items():
        legs = legs_of(event)
        assert tuple((leg.side, leg.ledger_account_id) for leg in legs) == sides, type(event).__name__
        assert unbalanced(legs) == {} and all(leg.amount == event.amount for leg in legs)  # type: ignore[attr-defined]
    assert legs_of(_opened("A")) == () and legs_of(e.TransferCompleted(**_common("t1-e", "A", 4, "t1"),
                                                                         transfer_id="t1", to_account_id="B")) == ()


def test_cash_lands_on_the_drawer_of_who_took_it() -> None:
    """The actor of the posting, unless the movement was held: then its maker, not the approving reviewer."""
    books = Books()
    books.apply(_opened("A"))
    books.apply(_deposit("d1", "A", 2, 100), actor="teller-1")
    held = e.FundsHeld(**_common("h", "A", 3, "big"), customer_id="c", command_type="Deposit", amount=500,
                       currency="EUR", channel="cash", to_account_id=None, reference=None, counterparty_name=None,
                       counterparty_country=None, issued_at=NOW, action="hold", score=0,
                       rule_set_version="dual-control", hits=[], submitted_by="teller-2")
    books.apply(held, actor="teller-2")
    approved = e.FundsDeposited(**_common("d2", "A", 5, "big"), amount=500, currency="EUR", balance_after=600,
                                channel="cash")
    books.apply(approved, actor="analyst-1")
    books.apply(_withdrawal("w", "A", 6, 30))
    assert books.balance("cash:teller-1", "EUR") == 100
    assert books.balance("cash:teller-2", "EUR") == 500
    assert books.balance("cash:analyst-1", "EUR") == 0
    assert books.balance(VAULT, "EUR") == -30          # nobody known: the vault's
    assert books.balance("customer:A", "EUR") == -570   # a liability: credit side
    assert books.trial_balance("EUR").violations == ()  # the bank's cash as a whole is 570


# ---------------------------------------------------------------- the chart and the books


def test_ledger_account_ids_name_a_line_of_the_chart() -> None:
    assert kind_of("cash:u-1").type == "asset" and kind_of("customer:acc-9").normal_side == "credit"
    assert [kind_of(account).kind for account in BANK_ACCOUNTS] == [k for k in CHART if k != "customer"]
    for wrong in ("cash", "customer:", "transit:x", "nothing", ""):
        with pytest.raises(UnknownLedgerAccount):
            kind_of(wrong)


def test_a_transfer_passes_through_transit() -> None:
    debited, credited = _transfer("t1", "A", "B", 30)
    books = Books()
    for event in (_opened("A"), _opened("B"), _deposit("d", "A", 2, 100), debited):
        books.apply(event)
    assert books.balance(TRANSIT, "EUR") == -30            # in flight: owed to the destination
    books.apply(credited)
    assert books.balance(TRANSIT, "EUR") == 0 and books.balance("customer:B", "EUR") == -30
    trial = books.trial_balance("EUR")
    assert trial.total == 0 and trial.debits == trial.credits == 160
    assert {row.ledger_account_id for row in trial.rows} >= set(BANK_ACCOUNTS) | {"customer:A", "customer:B"}
    assert books.apply(credited) == () and books.balance("customer:B", "EUR") == -30   # a duplicate posts nothing


def test_broken_constraints_are_listed() -> None:
    debited, credited = _transfer("t1", "A", "B", 30)
    books = Books()
    for event in (_opened("A", overdraft=50), _opened("B"), credited, _withdrawal("w", "A", 2, 60)):
        books.apply(event)    # a credit without its debit (a cut through the log), cash paid out of nothing
    broken = {(v.ledger_account_id, v.balance) for v in books.violations()}
    assert broken == {(TRANSIT, -30), ("cash", -60), ("customer:A", -60)}
    assert books.trial_balance("EUR").total == 0     # still balanced: every event is


def test_the_books_as_of_a_moment_leave_out_what_came_after() -> None:
    later = NOW + timedelta(minutes=5)
    log = [LoggedEvent(0, i, event, "teller-1") for i, event in enumerate(
        (_opened("A"), _deposit("d1", "A", 2, 100), _deposit("d2", "A", 3, 7, at=later)))]
    assert books_as_of(log, NOW).balance("cash:teller-1", "EUR") == 100
    assert books_as_of(log, later).balance("cash:teller-1", "EUR") == 107
    assert books_as_of(log, {0: 1}).currencies == []     # a log position: only the opening


def test_a_position_naming_one_partition_is_completed_by_time_so_no_credit_comes_without_its_debit() -> None:
    """A command's own position names only its partition; the books at that position take the other partitions
    up to the moment of its latest event (core.pointintime.whole_log_cutoff), never a credit without its debit."""
    later = NOW + timedelta(seconds=1)
    debited, credited = _transfer("t1", "A", "B", 30)
    credited = replace(credited, occurred_at=later)
    log = [*(LoggedEvent(0, i, event) for i, event in enumerate((_opened("A"), _deposit("d", "A", 2, 100), debited))),
           LoggedEvent(0, 3, _deposit("d2", "A", 4, 5, at=later + timedelta(seconds=1))),
           LoggedEvent(1, 0, _opened("B")), LoggedEvent(1, 1, credited)]
    assert whole_log_cutoff(log, {1: 2}) == {1: 2, 0: 3}      # partition 0 up to the credit's moment, not d2
    books = books_as_of(log, {1: 2})
    assert books.balance(TRANSIT, "EUR") == 0 and books.violations() == []
    assert books.balance("customer:A", "EUR") == -70          # a liability (credit normal): 70 owed; d2 left out
    assert whole_log_cutoff(log, {0: 1, 1: 0}) == {0: 1, 1: 0} and whole_log_cutoff(log, NOW) == NOW


def test_entries_of_one_ledger_account_run_in_time_order() -> None:
    debited, credited = _transfer("t1", "A", "B", 30)
    log = [LoggedEvent(1, 0, _opened("B")), LoggedEvent(1, 1, credited),
           *(LoggedEvent(0, i, event) for i, event in enumerate((_opened("A"), _deposit("d", "A", 2, 100),
                                                                  debited)))]
    entries = entries_of(log, NOW, TRANSIT)
    assert [(x.event_type, x.leg.side, x.balance_after) for x in entries] == [
        ("TransferDebited", "credit", -30), ("TransferCredited", "debit", 0)]   # partition 0 first at equal times
    assert [x.event_type for x in entries_of(log, NOW, "customer:A")] == ["FundsDeposited", "TransferDebited"]
    assert entries_of(log, NOW, TRANSIT, currency="USD") == []


# ---------------------------------------------------------------- properties

ACCOUNTS = ("A", "B", "C")
CURRENCIES = ("EUR", "JPY", "BHD")
amounts = st.integers(min_value=1, max_value=10**15)


@st.composite
def ledger_events(draw: st.DrawFn) -> e.Event:
    """Any money-moving or bookkeeping event, consistent or not: the legs must balance whatever they say."""
    kind = draw(st.sampled_from(["open", "deposit", "withdraw", "debit", "credit", "reverse", "complete", "held"]))
    account, other = draw(st.sampled_from(ACCOUNTS)), draw(st.sampled_from(ACCOUNTS))
    currency, amount = draw(st.sampled_from(CURRENCIES)), draw(amounts)
    common = _common(f"ev-{draw(st.integers(0, 40))}", account, draw(st.integers(1, 50)),
                     f"cmd-{draw(st.integers(0, 10))}")
    money = {"amount": amount, "currency": currency}
    channel = draw(st.sampled_from(["cash", "card", "transfer", "cheque"]))
    return {
        "open": lambda: e.AccountOpened(**common, customer_id="c", currency=currency, overdraft_limit=amount),
        "deposit": lambda: e.FundsDeposited(**common, **money, balance_after=0, channel=channel),
        "withdraw": lambda: e.FundsWithdrawn(**common, **money, balance_after=0, channel=channel),
        "debit": lambda: e.TransferDebited(**common, **money, transfer_id="t", to_account_id=other, balance_after=0),
        "credit": lambda: e.TransferCredited(**common, **money, transfer_id="t", from_account_id=other,
                                             balance_after=0),
        "reverse": lambda: e.TransferReversed(**common, **money, transfer_id="t", to_account_id=other,
                                              balance_after=0, reason="r"),
        "complete": lambda: e.TransferCompleted(**common, transfer_id="t", to_account_id=other),
        "held": lambda: e.FundsHeld(**common, **money, customer_id="c", command_type="Deposit", channel=channel,
                                    to_account_id=None, reference=None, counterparty_name=None,
                                    counterparty_country=None, issued_at=NOW, action="hold", score=0,
                                    rule_set_version="v", hits=[], submitted_by=draw(st.sampled_from(["u1", None]))),
    }[kind]()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(ledger_events(), st.sampled_from(["u1", "u2", None])), max_size=60))
def test_any_sequence_of_events_leaves_every_event_balanced_and_the_books_at_zero(
        events: list[tuple[e.Event, str | None]]) -> None:
    books = Books()
    for event, actor in events:
        legs = books.apply(event, actor)
        assert unbalanced(legs) == {}
        assert all(leg.amount > 0 for leg in legs) and all(isinstance(leg, Leg) for leg in legs)
    for currency in books.currencies:
        trial = books.trial_balance(currency)
        assert trial.total == 0 and trial.debits == trial.credits


@st.composite
def commands(draw: st.DrawFn) -> c.Command:
    account, other = draw(st.sampled_from(ACCOUNTS)), draw(st.sampled_from(ACCOUNTS))
    command_id = f"cmd-{draw(st.uuids())}"   # distinct: the ledger decides a command id once
    common = {"command_id": command_id, "correlation_id": command_id, "account_id": account, "issued_at": NOW}
    amount = draw(st.integers(1, 500))
    kind = draw(st.sampled_from([c.Deposit, c.Withdraw, c.Transfer, c.CloseAccount]))
    if kind is c.Transfer:
        return c.Transfer(**common, to_account_id=other, amount=amount, currency="EUR")
    if kind is c.CloseAccount:
        return c.CloseAccount(**common)
    return kind(**common, amount=amount, currency="EUR", channel="cash", submitted_by="u1")


def _run(accounts: dict[str, AccountState | None], command: c.Command, log: list[e.Event]) -> None:
    """Decide the command and, like the transfer saga, each step its events call for, to the end."""

    pending = [command]
    while pending:
        step = pending.pop(0)
        for event in decide(accounts.get(step.account_id), step, NOW):
            accounts[event.account_id] = apply(accounts.get(event.account_id), event)
            log.append(event)
            if (following := next_step(event, NOW)) is not None:
                pending.append(following)


@settings(max_examples=100, deadline=None)
@given(st.lists(commands(), max_size=40))
def test_any_sequence_of_commands_keeps_the_books_balanced_and_reconciled(sequence: list[c.Command]) -> None:
    """Through the ledger's own decide/apply and the saga's steps: every event balanced, the trial balance zero,
    each customer account in the books equal to its ledger balance, and nothing broken once settled."""
    accounts: dict[str, AccountState | None] = {}
    log: list[e.Event] = []
    for account in ACCOUNTS:
        _run(accounts, c.OpenAccount(command_id=f"open-{account}", account_id=account, issued_at=NOW,
                                     correlation_id=f"open-{account}", customer_id="c", currency="EUR"), log)
    for command in sequence:
        _run(accounts, command, log)
    books = Books()
    for event in log:
        assert unbalanced(books.apply(event)) == {}
    assert books.trial_balance("EUR").total == 0
    for account, state in accounts.items():
        assert state is not None and -books.balance(f"customer:{account}", "EUR") == state.balance
    assert books.violations() == []
