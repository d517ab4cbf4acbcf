"""The invariant checks themselves (core/invariants.py), on hand-made logs: each kind of breakage is caught."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from core import events as e
from core.invariants import (AGREED, ANSWERED, GAPLESS, MONEY, SETTLED, UNIQUE, LedgerAudit, answered_checks,
                             compare_models)

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def _common(event_id: str, command: str, account: str, sequence: int) -> dict:
    return {"event_id": event_id, "command_id": command, "correlation_id": command, "account_id": account,
            "occurred_at": NOW, "sequence": sequence}


def _history() -> list[e.Event]:
    """Two accounts; 100 deposited on A, 30 transferred A -> B and credited."""
    return [
        e.AccountOpened(**_common("o-a", "open-a", "A", 1), customer_id="c", currency="EUR", overdraft_limit=0),
        e.AccountOpened(**_common("o-b", "open-b", "B", 1), customer_id="c", currency="EUR", overdraft_limit=0),
        e.FundsDeposited(**_common("d-a", "dep", "A", 2), amount=100, currency="EUR", balance_after=100),
        e.TransferDebited(**_common("t-d", "t1", "A", 3), transfer_id="t1", to_account_id="B", amount=30,
                          currency="EUR", balance_after=70),
        e.TransferCredited(**_common("t-c", "t1-credit", "B", 2) | {"correlation_id": "t1"}, transfer_id="t1",
                           from_account_id="A", amount=30, currency="EUR", balance_after=30),
    ]


def _broken(audit: LedgerAudit) -> dict[str, int]:
    return {check.name: check.broken for check in audit.settled_checks() if not check.held}


def test_a_sound_log_breaks_nothing() -> None:
    audit = LedgerAudit(_history())
    assert _broken(audit) == {} and audit.violations == []
    assert audit.checks[MONEY].counts == {"balances": 100, "in_flight": 0, "deposited": 100, "withdrawn": 0,
                                          "currencies": 1, "ledger_accounts": 4, "constraints_broken": 0,
                                          "unreconciled": 0}
    assert audit.books.trial_balance("EUR").total == 0
    assert audit.checks[SETTLED].counts["credited"] == 1


def test_the_log_is_quiet_only_once_the_sender_completed() -> None:
    """Credited is not the end: the sender's TransferCompleted still changes its account (and every read model),
    so a check that compares read models must wait for it (bank chaos once compared too early)."""
    credited = LedgerAudit(_history())
    assert not credited.in_flight and credited.awaiting_completion == {"t1"} and not credited.quiet
    completed = e.TransferCompleted(**_common("t-e", "t1-complete", "A", 4) | {"correlation_id": "t1"},
                                    transfer_id="t1", to_account_id="B")
    done = LedgerAudit([*_history(), completed])
    assert done.quiet and done.accounts["A"].transfers_out_in_flight == 0


def test_each_breakage_is_caught() -> None:
    history = _history()
    assert _broken(LedgerAudit([*history, history[2]])) == {UNIQUE: 2}          # an event (a posting) twice
    lost_deposit = [history[0], history[1], history[3], history[4]]            # A jumps from 1 to 3
    # The lost deposit's legs are gone from both sides, so the trial balance is still zero; but A's balance in
    # the books (-30) is not the 70 its events left it at, and -30 is past its overdraft of zero.
    lost = LedgerAudit(lost_deposit)
    assert _broken(lost) == {GAPLESS: 1, MONEY: 2}
    assert any("the books hold -30, its events left it at 70" in p for p in lost.checks[MONEY].problems)
    no_credit = LedgerAudit(history[:4])                                         # the debit alone
    assert no_credit.violations == [] and no_credit.in_flight == {"t1"}         # in flight: fine while moving
    assert _broken(no_credit) == {SETTLED: 1}                                   # not once settled


def test_answers_are_held_to_the_log() -> None:
    history = _history()
    held = {check.name: check for check in answered_checks(history, {"dep": 200, "t1": 422, "lost": 202})}
    assert held[ANSWERED].problems == ["command lost was answered 202 and has no event"]
    assert held[AGREED].problems == ["command t1 was answered 422 (rejected); the log says accepted"]


def test_read_models_compare_row_for_row() -> None:
    live = {"accounts": [("A", 100), ("B", 30)], "keys": {"a": "1"}}
    assert compare_models("pg", live, live).held
    check = compare_models("pg", live, {"accounts": [("A", 100)], "keys": {"a": "2"}})
    assert check.broken == 2 and "2 rows live, 1 rebuilt" in check.problems[0] and "'a'" in check.problems[1]


def test_identical_copies_pass_only_where_the_broker_restart_allows_them() -> None:
    """Broker defect 7: a retried batch appended twice is a byte-for-byte copy; a re-decision is not (its
    occurred_at differs), and neither is a posting twice under another id."""
    history = _history()
    copied = [*history, history[2], history[4]]
    assert _broken(LedgerAudit(copied)) == {UNIQUE: 4}                            # strict by default
    allowed = LedgerAudit(copied, identical_copies_allowed=True)
    assert _broken(allowed) == {} and allowed.checks[UNIQUE].counts["identical_copies"] == 2
    redecided = dataclasses.replace(history[2], occurred_at=datetime(2026, 1, 2, tzinfo=UTC))
    assert _broken(LedgerAudit([*history, redecided], identical_copies_allowed=True)) == {UNIQUE: 2}
    under_another_id = dataclasses.replace(history[2], event_id="d-a-2")
    assert UNIQUE in _broken(LedgerAudit([*history, under_another_id], identical_copies_allowed=True))
