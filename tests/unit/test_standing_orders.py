"""The scheduler's pure decision (core/standing_orders.py): what is due, what a ledger answer makes of it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from core.schedules import occurrence_id
from core.standing_orders import (Orders, SchedulerPolicy, StandingOrderOccurrence, StandingOrderSet, Submit,
                                  outcome, plan, retry_command_id, set_event_id)

pytestmark = pytest.mark.unit

POLICY = SchedulerPolicy()


def order(**changes: object) -> StandingOrderSet:
    base = StandingOrderSet(
        event_id=set_event_id("o-1", 1), order_id="o-1", version=1, change="created", status="active",
        customer_id="c-1", from_account_id="a-1", to_account_id="a-2", amount=1000, currency="EUR", reference=None,
        frequency="monthly", start_date="2027-01-31", end_date=None, count=None, weekday=None, day_of_month=None,
        time_zone="UTC", set_at=datetime(2027, 1, 1, tzinfo=UTC), set_by="u-1")
    return replace(base, **changes)  # type: ignore[arg-type]


def run(orders: Orders, now: datetime, policy: SchedulerPolicy = POLICY) -> list[Submit | StandingOrderOccurrence]:
    """One scheduler tick that records what it does (as the scheduler reads its own writes)."""
    actions = plan(orders, now, policy)
    for action in actions:
        orders.apply(action.record if isinstance(action, Submit) else action)
    return actions


def paid(orders: Orders, actions: list[Submit | StandingOrderOccurrence], now: datetime) -> None:
    for action in actions:
        if isinstance(action, Submit):
            record = outcome(orders, action.command.command_id, "debited", None, now, POLICY)
            assert record is not None and record.status == "paid"
            orders.apply(record)


def test_a_monthly_order_of_twelve_pays_twelve_times_over_thirteen_months_on_month_ends() -> None:
    orders = Orders()
    orders.apply(order(count=12))
    submitted = []
    moment = datetime(2027, 1, 31, 9, tzinfo=UTC)
    for _ in range(14):
        actions = run(orders, moment)
        paid(orders, actions, moment)
        submitted += [a for a in actions if isinstance(a, Submit)]
        moment += timedelta(days=31)
    days = [date.fromisoformat(s.record.due_date) for s in submitted]
    assert len(submitted) == 12
    assert days[:4] == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]
    assert [s.command.command_id for s in submitted] == [occurrence_id("o-1", d) for d in days]
    assert all(s.command.amount == 1000 and s.command.to_account_id == "a-2" for s in submitted)


def test_an_occurrence_recorded_once_is_not_submitted_again_by_a_second_scheduler_or_a_replay() -> None:
    first, second = Orders(), Orders()
    now = datetime(2027, 1, 31, 0, 5, tzinfo=UTC)
    for orders in (first, second):
        orders.apply(order())
    one, two = run(first, now), plan(second, now, POLICY)
    assert [a.command.command_id for a in one if isinstance(a, Submit)] == \
        [a.command.command_id for a in two if isinstance(a, Submit)]   # the same command: the ledger takes it once
    assert plan(first, now, POLICY) == []
    for action in one:   # a replay of the records
        first.apply(action.record if isinstance(action, Submit) else action)
    assert plan(first, now + timedelta(hours=1), POLICY) == []


def test_insufficient_funds_retries_at_the_retry_time_then_fails() -> None:
    orders = Orders()
    orders.apply(order())
    due = datetime(2027, 1, 31, 0, 1, tzinfo=UTC)
    [first] = run(orders, due)
    assert isinstance(first, Submit)
    retry = outcome(orders, first.command.command_id, "rejected", "insufficient_funds", due, POLICY)
    assert retry is not None and retry.status == "retry_pending"
    assert retry.retry_at == datetime.combine(date(2027, 1, 31), POLICY.retry_time, UTC)
    orders.apply(retry)
    assert plan(orders, due + timedelta(hours=1), POLICY) == []       # not yet
    [second] = run(orders, retry.retry_at)
    assert isinstance(second, Submit) and second.command.command_id == retry_command_id(first.command.command_id)
    assert second.record.attempt == 2
    assert outcome(orders, first.command.command_id, "rejected", "insufficient_funds", due, POLICY) is None
    failed = outcome(orders, second.command.command_id, "rejected", "insufficient_funds", retry.retry_at, POLICY)
    assert failed is not None and failed.status == "failed" and failed.reason == "insufficient_funds"
    orders.apply(failed)
    assert plan(orders, retry.retry_at + timedelta(hours=1), POLICY) == []


def test_another_refusal_fails_at_once() -> None:
    orders = Orders()
    orders.apply(order())
    now = datetime(2027, 1, 31, 0, 1, tzinfo=UTC)
    [first] = run(orders, now)
    assert isinstance(first, Submit)
    failed = outcome(orders, first.command.command_id, "rejected", "account_frozen", now, POLICY)
    assert failed is not None and failed.status == "failed"


def test_missed_occurrences_are_paid_late_or_skipped_by_policy() -> None:
    now = datetime(2027, 4, 2, tzinfo=UTC)   # 31 Jan, 28 Feb, 31 Mar missed
    late = Orders()
    late.apply(order())
    actions = run(late, now)
    assert [a.record.late for a in actions if isinstance(a, Submit)] == [True, True, True]
    skipping = Orders()
    skipping.apply(order())
    skipped = run(skipping, now, SchedulerPolicy(catch_up="skip", retry_time=time(14)))
    assert [(a.status, a.reason) for a in skipped if isinstance(a, StandingOrderOccurrence)] == [("skipped", "missed")] * 3
    assert plan(skipping, now, POLICY) == []


def test_a_paused_order_pays_nothing_and_skips_what_fell_due_meanwhile_on_resume() -> None:
    orders = Orders()
    orders.apply(order())
    orders.apply(order(version=2, change="paused", status="paused", event_id=set_event_id("o-1", 2)))
    assert plan(orders, datetime(2027, 3, 1, tzinfo=UTC), POLICY) == []
    resumed_at = datetime(2027, 3, 1, tzinfo=UTC)
    orders.apply(order(version=3, change="resumed", status="active", event_id=set_event_id("o-1", 3),
                       set_at=resumed_at))
    actions = run(orders, resumed_at)
    assert [(a.due_date, a.status, a.reason) for a in actions if isinstance(a, StandingOrderOccurrence)] == [
        ("2027-01-31", "skipped", "paused"), ("2027-02-28", "skipped", "paused")]
    assert [a.record.due_date for a in run(orders, datetime(2027, 3, 31, tzinfo=UTC)) if isinstance(a, Submit)] == [
        "2027-03-31"]


def test_an_edit_takes_effect_from_the_next_run_and_a_cancelled_order_stops() -> None:
    orders = Orders()
    orders.apply(order())
    [first] = run(orders, datetime(2027, 1, 31, tzinfo=UTC))
    orders.apply(order(version=2, change="edited", amount=2500, event_id=set_event_id("o-1", 2)))
    [second] = run(orders, datetime(2027, 2, 28, tzinfo=UTC))
    assert isinstance(first, Submit) and isinstance(second, Submit)
    assert (first.command.amount, second.command.amount) == (1000, 2500)
    assert orders.orders["o-1"].next_runs(1)[0].due_date == date(2027, 3, 31)
    orders.apply(order(version=3, change="cancelled", status="cancelled", event_id=set_event_id("o-1", 3)))
    assert plan(orders, datetime(2027, 6, 1, tzinfo=UTC), POLICY) == []
    assert orders.orders["o-1"].next_runs(3) == []


def test_a_reversed_payment_is_recorded_once() -> None:
    orders = Orders()
    orders.apply(order())
    now = datetime(2027, 1, 31, tzinfo=UTC)
    actions = run(orders, now)
    paid(orders, actions, now)
    [submit] = actions
    assert isinstance(submit, Submit)
    back = outcome(orders, submit.command.command_id, "reversed", "account_closed", now, POLICY)
    assert back is not None and back.status == "reversed"
    orders.apply(back)
    assert outcome(orders, submit.command.command_id, "reversed", "account_closed", now, POLICY) is None
    assert outcome(orders, submit.command.command_id, "debited", None, now, POLICY) is None
