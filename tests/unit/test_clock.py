"""Business time (core/clock.py): moves forward only, whatever order the moves are seen in; its offset as the API
writes it (api/routes/clock.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from api.routes.clock import days_duration
from core.clock import MAX_OFFSET, ClockBackwards, ClockTooFar, ControlledClock, SystemClock
from schemas.codec import get_codec

pytestmark = pytest.mark.unit

REAL = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def _clock() -> ControlledClock:
    return ControlledClock(real=lambda: REAL)


def test_the_system_clock_is_aware_utc() -> None:
    assert SystemClock().now().tzinfo is UTC


def test_a_move_to_a_later_time_sets_the_offset() -> None:
    clock = _clock()
    move = clock.move_to(datetime(2027, 1, 31, tzinfo=UTC), "admin-1")
    assert clock.now() == REAL   # a move is only proposed; it counts once observed (from the topic)
    clock.observe(move)
    assert clock.now() == datetime(2027, 1, 31, tzinfo=UTC)
    assert move.offset == datetime(2027, 1, 31, tzinfo=UTC) - REAL and clock.last == move


def test_advancing_adds_to_business_time() -> None:
    clock = _clock()
    clock.observe(clock.advance_by(timedelta(days=31), "admin-1"))
    clock.observe(clock.advance_by(timedelta(hours=2), "admin-1"))
    assert clock.now() == REAL + timedelta(days=31, hours=2)


def test_time_never_runs_back() -> None:
    clock = _clock()
    clock.observe(clock.advance_by(timedelta(days=1), "admin-1"))
    with pytest.raises(ClockBackwards):
        clock.move_to(REAL + timedelta(hours=1), "admin-1")
    with pytest.raises(ClockBackwards):
        clock.advance_by(timedelta(seconds=-1), "admin-1")
    with pytest.raises(ValueError):
        clock.move_to(datetime(2030, 1, 1), "admin-1")   # no zone: ambiguous


def test_business_time_stays_within_a_century_of_real_time() -> None:
    clock = _clock()
    clock.observe(clock.advance_by(MAX_OFFSET - timedelta(days=1), "admin-1"))
    with pytest.raises(ClockTooFar):
        clock.advance_by(timedelta(days=2), "admin-1")
    with pytest.raises(ClockTooFar):
        clock.advance_by(timedelta.max, "admin-1")             # refused before the date could overflow
    with pytest.raises(ClockTooFar):
        clock.move_to(datetime(9999, 12, 31, tzinfo=UTC), "admin-1")
    with pytest.raises(ClockBackwards):
        clock.advance_by(timedelta.min, "admin-1")             # nor underflow


def test_a_zone_other_than_utc_is_converted() -> None:
    move = _clock().move_to(datetime(2027, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))), "admin-1")
    assert move.business_time == datetime(2027, 1, 1, 0, 0, tzinfo=UTC) and move.business_time.tzinfo is UTC


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=20), st.randoms())
def test_moves_seen_in_any_order_or_twice_give_the_largest_offset(offsets: list[int], rng: object) -> None:
    moves = [_clock().advance_by(timedelta(microseconds=o), "admin-1") for o in offsets]
    shuffled = moves + moves
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    clock = _clock()
    for move in shuffled:
        before = clock.now()
        clock.observe(move)
        assert clock.now() >= before
    assert clock.now() == REAL + timedelta(microseconds=max(offsets))


def test_a_move_survives_the_codec() -> None:
    move = _clock().advance_by(timedelta(days=400, microseconds=7), "admin-1")
    codec = get_codec()
    value, headers = codec.encode(move)
    assert codec.decode(value, headers, {"ClockSet"}) == move


@pytest.mark.parametrize(("duration", "written"), [
    (timedelta(0), "P0D"),
    (timedelta(minutes=3, seconds=59, microseconds=990799), "PT3M59.990799S"),
    (timedelta(days=1330, hours=2, minutes=12, seconds=9, microseconds=600000), "P1330DT2H12M9.6S"),   # not P3Y235D
    (timedelta(days=2), "P2D"),
    (-timedelta(seconds=1, microseconds=500000), "-PT1.5S"),
])
def test_the_clock_offset_is_written_in_days_at_most_and_reads_back(duration: timedelta, written: str) -> None:
    assert days_duration(duration) == written
    assert TypeAdapter(timedelta).validate_python(written) == duration
