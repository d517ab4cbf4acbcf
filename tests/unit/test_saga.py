"""The transfer saga's rule (core/saga.py): each transfer event's next step, with ids derived from the transfer."""

from __future__ import annotations

from datetime import UTC, datetime

from core import commands as c
from core import events as e
from core.saga import STEP_EVENTS, TRANSFER_ENDS, next_step, step_account, steps_here

NOW = datetime(2026, 12, 5, 9, tzinfo=UTC)


def _common(event_id: str, account: str) -> dict:
    return {"event_id": event_id, "command_id": "t1", "correlation_id": "t1", "account_id": account,
            "occurred_at": NOW, "sequence": 3}


def test_each_transfer_event_has_its_step_and_a_redelivery_the_same_one() -> None:
    debited = e.TransferDebited(**_common("d", "A"), transfer_id="t1", to_account_id="B", amount=30, currency="EUR",
                                balance_after=70)
    credited = e.TransferCredited(**_common("c", "B"), transfer_id="t1", from_account_id="A", amount=30,
                                  currency="EUR", balance_after=30)
    failed = e.TransferCreditFailed(**_common("f", "B"), transfer_id="t1", from_account_id="A", amount=30,
                                    currency="EUR", reason="account_closed")
    credit, complete, reverse = (next_step(event, NOW) for event in (debited, credited, failed))
    assert isinstance(credit, c.CreditTransfer) and (credit.account_id, credit.amount) == ("B", 30)
    assert isinstance(complete, c.CompleteTransfer) and complete.account_id == "A"
    assert isinstance(reverse, c.ReverseTransfer) and (reverse.account_id, reverse.reason) == ("A", "account_closed")
    assert len({credit.command_id, complete.command_id, reverse.command_id}) == 3
    assert next_step(debited, NOW.replace(hour=10)).command_id == credit.command_id   # derived, not random
    assert all(step.correlation_id == "t1" for step in (credit, complete, reverse))
    assert {type(x).__name__ for x in (debited, credited, failed)} == STEP_EVENTS


def test_the_ends_of_a_transfer_and_other_events_have_no_step() -> None:
    completed = e.TransferCompleted(**_common("e", "A"), transfer_id="t1", to_account_id="B")
    deposited = e.FundsDeposited(**_common("x", "A"), amount=5, currency="EUR", balance_after=5)
    assert next_step(completed, NOW) is None and next_step(deposited, NOW) is None
    assert "TransferCompleted" in TRANSFER_ENDS


def test_the_steps_on_the_deciding_partition_are_taken_at_once() -> None:
    debited = e.TransferDebited(**_common("d", "A"), transfer_id="t1", to_account_id="B", amount=30, currency="EUR",
                                balance_after=70)
    deposited = e.FundsDeposited(**_common("x", "A"), amount=5, currency="EUR", balance_after=5)
    here = steps_here([deposited, debited], NOW, lambda account: account == "B")
    assert [type(step) for step in here] == [c.CreditTransfer] and here[0].command_id == c.credit_step_id("t1")
    assert steps_here([debited], NOW, lambda account: account == "A") == []   # B is elsewhere: the saga's


def test_the_account_of_each_next_step_is_known_without_building_it() -> None:
    debited = e.TransferDebited(**_common("d", "A"), transfer_id="t1", to_account_id="B", amount=30, currency="EUR",
                                balance_after=70)
    credited = e.TransferCredited(**_common("c", "B"), transfer_id="t1", from_account_id="A", amount=30,
                                  currency="EUR", balance_after=30)
    completed = e.TransferCompleted(**_common("e", "A"), transfer_id="t1", to_account_id="B")
    for event in (debited, credited, completed):
        step = next_step(event, NOW)
        assert step_account(event) == (None if step is None else step.account_id)
