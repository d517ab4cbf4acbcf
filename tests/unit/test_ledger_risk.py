"""The ledger honouring risk decisions, as pure functions: block, alert, hold, and a reviewer's decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core import commands as c
from core import events as e
from core.ledger import AccountState, CommandOutcome, apply, decide
from core.risk.evaluate import Assessment, RuleHit
from tests.unit.test_ledger_rules import cmd, opened

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def verdict(action: str) -> Assessment:
    hit = RuleHit(rule_id=f"rule-{action}", kind="large_amount_absolute", action=action, severity="high",  # type: ignore
                  score=50, reason="because")
    return Assessment(score=50, action=action, hits=(hit,), rule_set_version="v-test")  # type: ignore[arg-type]


def run(state: AccountState | None, command: c.Command, risk: Assessment | None = None,
        at: datetime = NOW) -> tuple[AccountState | None, list[e.Event]]:
    produced = decide(state, command, at, risk)
    for event in produced:
        state = apply(state, event)
    return state, produced


def review(case_id: str, decision: str, account: str = "A") -> c.ReviewCase:
    cid = c.review_command_id(case_id)
    return c.ReviewCase(command_id=cid, account_id=account, issued_at=NOW, correlation_id=cid, case_id=case_id,
                        decision=decision, reviewer="ana", comment="checked with the customer")


def types(events: list[e.Event]) -> list[str]:
    return [type(ev).__name__ for ev in events]


def test_block_records_the_case_and_rejects_whatever_the_funds() -> None:
    state = opened(balance=1000)
    after, events = run(state, cmd(c.Withdraw, amount=100, currency="EUR", counterparty_name="X"), verdict("block"))
    assert types(events) == ["RiskFlagged", "CommandRejected"]
    flagged, rejected = events
    assert rejected.reason == "blocked_by_risk" and "rule-block" in rejected.detail
    assert flagged.action == "block" and flagged.counterparty_name == "X" and flagged.hits[0]["rule_id"] == "rule-block"
    assert flagged.sequence == rejected.sequence == state.sequence  # records, not changes
    assert after == state


def test_alert_flags_then_posts() -> None:
    state = opened(balance=1000)
    after, events = run(state, cmd(c.Withdraw, amount=100, currency="EUR"), verdict("alert"))
    assert types(events) == ["RiskFlagged", "FundsWithdrawn"]
    assert after is not None and after.balance == 900 and after.sequence == state.sequence + 1


def test_a_command_the_ledger_refuses_is_refused_for_its_own_reason_unless_blocked() -> None:
    state = opened(balance=10)
    for action in ("alert", "hold"):
        _, events = run(state, cmd(c.Withdraw, amount=100, currency="EUR"), verdict(action))
        assert types(events) == ["CommandRejected"] and events[0].reason == "insufficient_funds"


def test_hold_reserves_a_debit_until_approved() -> None:
    state = opened(balance=1000)
    withdraw = cmd(c.Withdraw, amount=700, currency="EUR", reference="rent")
    held_state, events = run(state, withdraw, verdict("hold"))
    assert types(events) == ["FundsHeld"]
    assert held_state.balance == 1000 and held_state.available_balance == 300
    assert held_state.sequence == state.sequence + 1
    # The reservation counts: 400 more would pass the floor.
    _, refused = run(held_state, cmd(c.Withdraw, amount=400, currency="EUR"))
    assert refused[0].reason == "insufficient_funds"
    approved, events = run(held_state, review(withdraw.command_id, "approve"))
    assert types(events) == ["CaseReviewed", "FundsWithdrawn"]
    reviewed, posted = events
    assert reviewed.held and reviewed.reviewer == "ana" and reviewed.case_id == withdraw.command_id
    assert (posted.command_id, posted.correlation_id, posted.reference) == (withdraw.command_id,
                                                                           withdraw.correlation_id, "rent")
    assert approved.balance == 300 and approved.available_balance == 300 and approved.holds == {}


def test_rejecting_a_hold_releases_the_reservation_and_closes_the_command() -> None:
    state = opened(balance=1000)
    withdraw = cmd(c.Withdraw, amount=700, currency="EUR")
    held_state, _ = run(state, withdraw, verdict("hold"))
    after, events = run(held_state, review(withdraw.command_id, "reject"))
    assert types(events) == ["CaseReviewed", "CommandRejected"]
    assert events[1].reason == "rejected_by_review" and events[1].command_id == withdraw.command_id
    assert after.balance == 1000 and after.available_balance == 1000 and after.holds == {}
    outcome = CommandOutcome(withdraw.command_id)
    for event in decide(state, withdraw, NOW, verdict("hold")) + events[1:]:
        outcome.add(event)
    assert outcome.status == "rejected" and outcome.reason == "rejected_by_review"


def test_a_held_deposit_credits_nothing_until_approved() -> None:
    state = opened(balance=0)
    deposit = cmd(c.Deposit, amount=9800, currency="EUR", channel="cash")
    held_state, _ = run(state, deposit, verdict("hold"))
    assert held_state.balance == 0 and held_state.available_balance == 0
    after, events = run(held_state, review(deposit.command_id, "approve"))
    assert types(events) == ["CaseReviewed", "FundsDeposited"] and events[1].channel == "cash"
    assert after.balance == 9800


def test_an_approved_hold_on_a_frozen_account_is_rejected_for_that() -> None:
    state = opened(balance=1000)
    withdraw = cmd(c.Withdraw, amount=100, currency="EUR")
    held_state, _ = run(state, withdraw, verdict("hold"))
    frozen, _ = run(held_state, cmd(c.FreezeAccount, reason="investigation"))
    after, events = run(frozen, review(withdraw.command_id, "approve"))
    assert types(events) == ["CaseReviewed", "CommandRejected"] and events[1].reason == "account_frozen"
    assert after.holds == {} and after.balance == 1000


def test_an_account_with_holds_cannot_close() -> None:
    state = opened(balance=0)
    deposit = cmd(c.Deposit, amount=100, currency="EUR")
    held_state, _ = run(state, deposit, verdict("hold"))
    _, events = run(held_state, cmd(c.CloseAccount))
    assert events[0].reason == "holds_pending"


def test_a_held_transfer_is_debited_on_approval_and_its_saga_goes_on() -> None:
    state = opened(balance=1000)
    transfer = cmd(c.Transfer, to_account_id="B", amount=600, currency="EUR")
    held_state, events = run(state, transfer, verdict("hold"))
    assert events[0].to_account_id == "B" and held_state.available_balance == 400
    outcome = CommandOutcome(transfer.command_id)
    outcome.add(events[0])
    assert outcome.status == "held"
    after, events = run(held_state, review(transfer.command_id, "approve"))
    assert types(events) == ["CaseReviewed", "TransferDebited"]
    assert events[1].transfer_id == transfer.correlation_id and after.transfers_out_in_flight == 1
    outcome.add(events[1])
    assert outcome.status == "pending" and outcome.in_flight


def test_reviewing_an_alert_records_the_decision_and_moves_nothing() -> None:
    state = opened(balance=1000)
    withdraw = cmd(c.Withdraw, amount=100, currency="EUR")
    flagged_state, _ = run(state, withdraw, verdict("alert"))
    after, events = run(flagged_state, review(withdraw.command_id, "approve"))
    assert types(events) == ["CaseReviewed"] and not events[0].held
    assert after.balance == flagged_state.balance and after.sequence == flagged_state.sequence + 1


def test_unknown_decisions_and_channels_are_rejected() -> None:
    state = opened(balance=1000)
    _, events = run(state, review("case-1", "maybe"))
    assert events[0].reason == "invalid_decision"
    _, events = run(state, cmd(c.Deposit, amount=1, currency="EUR", channel="pigeon"))
    assert events[0].reason == "invalid_channel"


def test_holds_survive_the_state_snapshot_round_trip() -> None:
    state = opened(balance=1000)
    held_state, _ = run(state, cmd(c.Transfer, to_account_id="B", amount=600, currency="EUR"), verdict("hold"))
    assert AccountState.from_dict(held_state.to_dict()) == held_state


@pytest.mark.parametrize("header", [b"", b"{}", b'{"action": "explode", "score": 1, "rule_set_version": "v", '
                                                b'"hits": []}', b"\xff"])
def test_a_malformed_assessment_header_is_refused(header: bytes) -> None:
    with pytest.raises(ValueError):
        Assessment.from_header(header)


def test_the_assessment_header_round_trips() -> None:
    assert Assessment.from_header(verdict("hold").to_header()) == verdict("hold")


def test_the_submitter_of_a_held_movement_cannot_decide_its_case_the_hold_remembers_them() -> None:
    """Maker-checker in the ledger too (the API refuses first): the decision is rejected, the hold stays."""
    state = opened(balance=1000)
    withdraw = cmd(c.Withdraw, amount=700, currency="EUR", submitted_by="ana")
    held_state, events = run(state, withdraw, verdict("hold"))
    assert events[0].submitted_by == "ana" and held_state.holds[withdraw.command_id]["submitted_by"] == "ana"
    after, refused = run(held_state, review(withdraw.command_id, "approve"))
    assert types(refused) == ["CommandRejected"] and refused[0].reason == "own_movement"
    assert after == held_state
    other = replace(review(withdraw.command_id, "approve"), reviewer="bob")
    approved, posted = run(held_state, other)
    assert types(posted) == ["CaseReviewed", "FundsWithdrawn"] and approved.balance == 300


def test_cash_marked_for_a_second_approval_is_held_without_any_risk_verdict() -> None:
    state = opened(balance=0)
    deposit = cmd(c.Deposit, amount=2_000_000, currency="EUR", channel="cash", submitted_by="tom",
                  second_approval=True)
    held_state, events = run(state, deposit)
    assert types(events) == ["FundsHeld"] and held_state.balance == 0
    assert [hit["rule_id"] for hit in events[0].hits] == ["dual-control-cash"]
    assert "20000.00 EUR" in events[0].hits[0]["reason"]
    with_alert, alerted = run(state, deposit, verdict("alert"))
    assert types(alerted) == ["FundsHeld"] and len(alerted[0].hits) == 2 and alerted[0].action == "hold"
    approved, posted = run(held_state, replace(review(deposit.command_id, "approve"), reviewer="ana"))
    assert types(posted) == ["CaseReviewed", "FundsDeposited"] and approved.balance == 2_000_000
    assert approved.holds == {}   # approval posts once: the re-decided deposit is not held again
