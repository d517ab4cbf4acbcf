"""Ids kept for a retention window (core/retention.py): which expire, in what order, and a rebuilt window."""

from core.retention import RetentionWindow


def test_ids_expire_once_past_the_window_oldest_first() -> None:
    window = RetentionWindow(seconds=100)
    window.add(1_000, "a", 0)
    window.add(1_050, "b", 3)
    window.add(1_090, "c", 1)
    assert window.expired(1_099) == []                # nothing is 100 s old yet
    assert window.expired(1_150) == [("a", 0), ("b", 3)]
    assert len(window) == 1
    assert window.expired(1_150) == []                # taken out once
    assert window.expired(10_000) == [("c", 1)]


def test_an_id_inside_the_window_stays() -> None:
    window = RetentionWindow(seconds=7 * 24 * 3600)
    window.add(0, "retried-tomorrow", 2)
    assert window.expired(24 * 3600) == []
    assert window.expired(7 * 24 * 3600) == [("retried-tomorrow", 2)]


def test_a_rebuilt_window_expires_in_time_order_whatever_order_it_was_restored_in() -> None:
    window = RetentionWindow(seconds=10)
    window.rebuild([(30, "late", 1), (5, "early", 0), (20, "middle", 2)])
    assert window.expired(31) == [("early", 0), ("middle", 2)]
    assert window.expired(40) == [("late", 1)]
