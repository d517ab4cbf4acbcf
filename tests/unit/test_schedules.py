"""Standing orders' recurrence rules (core/schedules.py): due dates, end-of-month, counts, time zones, ids."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.schedules import (Recurrence, RecurrenceError, due_at, due_dates, missed, next_runs, occurrence_id,
                            occurrences)

pytestmark = pytest.mark.unit

starts = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))


def _last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


# ---------------------------------------------------------------- monthly and the end of the month


def test_monthly_on_the_31st_over_13_months_pays_every_month_on_its_last_day_when_short() -> None:
    order = Recurrence(frequency="monthly", start=date(2027, 1, 31))
    paid = occurrences(order, None, date(2028, 1, 31))
    assert [o.due_date for o in paid] == [
        date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30), date(2027, 5, 31),
        date(2027, 6, 30), date(2027, 7, 31), date(2027, 8, 31), date(2027, 9, 30), date(2027, 10, 31),
        date(2027, 11, 30), date(2027, 12, 31), date(2028, 1, 31)]
    assert [o.number for o in paid] == list(range(1, 14))


def test_february_of_a_leap_year_pays_on_the_29th() -> None:
    order = Recurrence(frequency="monthly", start=date(2028, 1, 30))
    assert [o.due_date for o in next_runs(order, None, 3)] == [date(2028, 1, 30), date(2028, 2, 29),
                                                                date(2028, 3, 30)]


def test_a_count_of_12_stops_at_12_over_13_months() -> None:
    order = Recurrence(frequency="monthly", start=date(2027, 1, 31), count=12)
    paid = occurrences(order, None, date(2028, 1, 31))
    assert len(paid) == 12
    assert paid[-1].due_date == date(2027, 12, 31)
    assert next_runs(order, date(2027, 12, 31), 5) == []


def test_the_end_date_is_inclusive() -> None:
    order = Recurrence(frequency="monthly", start=date(2027, 1, 15), end=date(2027, 4, 15))
    assert [o.due_date for o in occurrences(order, None, date(2030, 1, 1))] == [
        date(2027, 1, 15), date(2027, 2, 15), date(2027, 3, 15), date(2027, 4, 15)]


def test_a_start_after_the_day_of_the_month_begins_next_month() -> None:
    order = Recurrence(frequency="monthly", start=date(2027, 3, 20), day_of_month=5)
    assert next_runs(order, None, 1)[0].due_date == date(2027, 4, 5)
    late_start = Recurrence(frequency="monthly", start=date(2027, 2, 10), day_of_month=31)
    assert next_runs(late_start, None, 2)[0].due_date == date(2027, 2, 28)


@given(start=starts, day=st.integers(min_value=1, max_value=31), months=st.integers(min_value=1, max_value=40))
def test_monthly_pays_exactly_once_in_every_month_never_skipping(start: date, day: int, months: int) -> None:
    order = Recurrence(frequency="monthly", start=start, day_of_month=day, count=months)
    paid = [o.due_date for o in occurrences(order, None, date(2100, 1, 1))]
    assert len(paid) == months
    month_numbers = [d.year * 12 + d.month for d in paid]
    assert month_numbers == list(range(month_numbers[0], month_numbers[0] + months))   # one a month, none skipped
    assert paid[0] >= start and paid[0] - start < timedelta(days=32)
    assert all(d.day == min(day, _last_day(d)) for d in paid)


# ---------------------------------------------------------------- the other frequencies


def test_yearly_on_29_february_pays_on_the_28th_in_common_years() -> None:
    order = Recurrence(frequency="yearly", start=date(2028, 2, 29), count=5)
    assert [o.due_date for o in occurrences(order, None, date(2040, 1, 1))] == [
        date(2028, 2, 29), date(2029, 2, 28), date(2030, 2, 28), date(2031, 2, 28), date(2032, 2, 29)]


def test_weekly_on_a_weekday_starts_on_the_first_one_on_or_after_the_start() -> None:
    order = Recurrence(frequency="weekly", start=date(2027, 3, 3), weekday=4)   # a Wednesday; Fridays
    runs = [o.due_date for o in next_runs(order, None, 3)]
    assert runs == [date(2027, 3, 5), date(2027, 3, 12), date(2027, 3, 19)]
    assert all(d.weekday() == 4 for d in runs)


def test_daily_and_one_off() -> None:
    daily = Recurrence(frequency="daily", start=date(2027, 12, 30), count=4)
    assert [o.due_date for o in next_runs(daily, None, 10)] == [
        date(2027, 12, 30), date(2027, 12, 31), date(2028, 1, 1), date(2028, 1, 2)]
    once = Recurrence(frequency="once", start=date(2027, 6, 1))
    assert list(due_dates(once)) == [date(2027, 6, 1)]
    assert next_runs(once, date(2027, 6, 1), 3) == []


@given(start=starts, frequency=st.sampled_from(["daily", "weekly", "monthly", "yearly"]),
       total=st.integers(min_value=1, max_value=30), split=st.integers(min_value=0, max_value=30))
def test_windows_partition_the_schedule(start: date, frequency: str, total: int, split: int) -> None:
    """Paying (a, b] then (b, c] pays what (a, c] pays: a scheduler running in steps misses and repeats nothing."""
    order = Recurrence(frequency=frequency, start=start, count=total)  # type: ignore[arg-type]
    every = [o.due_date for o in occurrences(order, None, date(2200, 1, 1))]
    middle = start + timedelta(days=split * 11)
    first, second = occurrences(order, None, middle), occurrences(order, middle, date(2200, 1, 1))
    assert [o.due_date for o in first + second] == every
    assert len(every) == total and every == sorted(set(every))


@pytest.mark.parametrize("bad", [
    dict(frequency="monthly", start=date(2027, 1, 1), day_of_month=32),
    dict(frequency="weekly", start=date(2027, 1, 1), weekday=7),
    dict(frequency="daily", start=date(2027, 1, 1), count=0),
    dict(frequency="daily", start=date(2027, 2, 1), end=date(2027, 1, 1)),
    dict(frequency="fortnightly", start=date(2027, 1, 1)),
    dict(frequency="daily", start=date(2027, 1, 1), time_zone="Mars/Olympus_Mons"),
])
def test_invalid_rules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(RecurrenceError):
        Recurrence(**bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- time zones


def test_due_at_is_local_midnight_in_utc_across_berlin_dst() -> None:
    # Summer time in Berlin 2027: from 28 March to 31 October.
    assert due_at(date(2027, 3, 27), "Europe/Berlin") == datetime(2027, 3, 26, 23, 0, tzinfo=UTC)
    assert due_at(date(2027, 3, 28), "Europe/Berlin") == datetime(2027, 3, 27, 23, 0, tzinfo=UTC)  # before 02:00
    assert due_at(date(2027, 3, 29), "Europe/Berlin") == datetime(2027, 3, 28, 22, 0, tzinfo=UTC)
    assert due_at(date(2027, 10, 31), "Europe/Berlin") == datetime(2027, 10, 30, 22, 0, tzinfo=UTC)
    assert due_at(date(2027, 11, 1), "Europe/Berlin") == datetime(2027, 10, 31, 23, 0, tzinfo=UTC)


def test_a_midnight_lost_to_dst_falls_due_at_the_first_instant_of_the_day() -> None:
    # Chile moved its clocks from 00:00 to 01:00 on 8 September 2024: that day began at 01:00 -03 (04:00 UTC).
    assert due_at(date(2024, 9, 8), "America/Santiago") == datetime(2024, 9, 8, 4, 0, tzinfo=UTC)


def test_daily_orders_fall_due_24_or_23_or_25_hours_apart_over_dst() -> None:
    def gaps(start: date) -> list[float]:
        order = Recurrence(frequency="daily", start=start, time_zone="Europe/Berlin", count=5)
        moments = [o.due_at for o in next_runs(order, None, 5)]
        return [(b - a) / timedelta(hours=1) for a, b in zip(moments, moments[1:], strict=False)]

    assert gaps(date(2027, 3, 26)) == [24, 24, 23, 24]     # 28 March is 23 hours long
    assert gaps(date(2027, 10, 29)) == [24, 24, 25, 24]    # 31 October is 25 hours long


def test_what_is_due_depends_on_the_customers_day_not_utcs() -> None:
    order = Recurrence(frequency="monthly", start=date(2027, 7, 1), time_zone="Europe/Berlin")
    before = datetime(2027, 6, 30, 21, 59, tzinfo=UTC)    # 23:59 in Berlin, 30 June
    after = datetime(2027, 6, 30, 22, 0, tzinfo=UTC)      # 00:00 in Berlin, 1 July; still 30 June in UTC
    assert missed(order, None, before).pay == ()
    assert [o.due_date for o in missed(order, None, after).pay] == [date(2027, 7, 1)]


# ---------------------------------------------------------------- ids and catch-up


def test_occurrence_ids_are_stable_and_distinct() -> None:
    assert occurrence_id("order-1", date(2027, 2, 28)) == occurrence_id("order-1", date(2027, 2, 28))
    ids = {occurrence_id(order, day) for order in ("order-1", "order-2")
           for day in (date(2027, 2, 28), date(2027, 3, 31))}
    assert len(ids) == 4


def test_an_occurrence_id_never_changes_between_releases() -> None:
    """Ids on the log must stay the ones a later release derives, or a replay would pay twice."""
    assert occurrence_id("order-1", date(2027, 2, 28)) == PINNED_ID


PINNED_ID = "ca91af58-d1d9-59ee-bae3-424a892cea1b"   # uuid5(BANK_NAMESPACE, "standing-order/order-1/2027-02-28")


def test_catch_up_pays_late_or_skips_what_fell_due_while_down() -> None:
    order = Recurrence(frequency="daily", start=date(2027, 5, 1), time_zone="Europe/Berlin")
    now = datetime(2027, 5, 4, 9, 0, tzinfo=UTC)         # 11:00 in Berlin, 4 May; last run: 1 May
    late = missed(order, date(2027, 5, 1), now, "pay_late")
    assert [o.due_date for o in late.pay] == [date(2027, 5, 2), date(2027, 5, 3), date(2027, 5, 4)]
    assert [o.due_date for o in late.late] == [date(2027, 5, 2), date(2027, 5, 3)] and late.skip == ()
    skipped = missed(order, date(2027, 5, 1), now, "skip")
    assert [o.due_date for o in skipped.pay] == [date(2027, 5, 4)]          # today's is on time
    assert [o.due_date for o in skipped.skip] == [date(2027, 5, 2), date(2027, 5, 3)]


def test_nothing_is_missed_twice() -> None:
    order = Recurrence(frequency="monthly", start=date(2027, 1, 31), count=12)
    now = datetime(2028, 6, 1, tzinfo=UTC)
    first = missed(order, None, now)
    assert len(first.pay) == 12
    assert missed(order, first.pay[-1].due_date, now).pay == ()
