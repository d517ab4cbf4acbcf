"""What events mean to people (core/notifications.py), preferences, thresholds, quiet hours, and the templates."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from core import events as e
from core.notifications import (DEFAULT_CHANNELS, LEDGER_RULES, NOTIFICATION_TYPES, SECURITY_TYPES, Draft,
                                PreferenceError, QuietHours, Threshold, drafts_for_event, notification_id,
                                parse_preferences, preferences_json, threshold_drafts)
from streams.notifications.render import BLOCKS, render, template_kinds

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
BASE = {"command_id": "c1", "correlation_id": "c1", "occurred_at": NOW, "sequence": 2}


def _debit(amount: int, balance_after: int) -> e.TransferDebited:
    return e.TransferDebited(event_id="ev1", account_id="acc-1", transfer_id="t1", to_account_id="acc-2",
                             amount=amount, currency="EUR", balance_after=balance_after, **BASE)


def test_a_notification_id_is_the_same_for_the_same_event_person_and_channel_only() -> None:
    first = notification_id("ev1", "u1", "email")
    assert first == notification_id("ev1", "u1", "email")
    assert len({first, notification_id("ev1", "u1", "sms"), notification_id("ev1", "u2", "email"),
                notification_id("ev2", "u1", "email"), notification_id("ev1", "u1", "email", "large_debit")}) == 5


def test_a_transfer_tells_the_sender_of_the_debit_and_the_receiver_of_the_credit() -> None:
    [debit] = drafts_for_event(_debit(5000, 95000))
    assert (debit.kind, debit.audience, debit.target, debit.values["direction"], debit.values["amount"]) == (
        "transaction_posted", "account_holder", "acc-1", "debit", "50.00")
    credit = e.TransferCredited(event_id="ev2", account_id="acc-2", transfer_id="t1", from_account_id="acc-1",
                                amount=5000, currency="EUR", balance_after=5000, **BASE)
    assert [(d.target, d.values["direction"]) for d in drafts_for_event(credit)] == [("acc-2", "credit")]


def test_a_hold_tells_the_customer_and_the_analysts_but_never_the_rules() -> None:
    held = e.FundsHeld(event_id="ev3", account_id="acc-1", customer_id="cust-1", command_type="Transfer",
                       amount=100, currency="EUR", channel="transfer", to_account_id="acc-2", reference=None,
                       counterparty_name=None, counterparty_country=None, issued_at=NOW, action="hold", score=90,
                       rule_set_version="v1", hits=[{"rule_id": "secret-rule"}], **BASE)
    drafts = drafts_for_event(held)
    assert [(d.kind, d.audience) for d in drafts] == [("payment_held", "account_holder"), ("staff_alert", "staff")]
    customer = drafts[0]
    text = " ".join(render(customer.kind, channel, customer.values).body for channel in ("in_app", "email", "sms"))
    assert "secret-rule" not in text and "90" not in text and "score" not in text


def test_a_reviewed_hold_is_released_or_declined_and_an_alert_case_tells_the_customer_nothing() -> None:
    def reviewed(decision: str, held: bool) -> list[str]:
        event = e.CaseReviewed(event_id="ev4", account_id="acc-1", case_id="case-1", decision=decision,
                               reviewer="u9", comment="looked at it", held=held, **BASE)
        return [d.kind for d in drafts_for_event(event)]

    assert reviewed("approve", True) == ["payment_released"]
    assert reviewed("reject", True) == ["payment_declined"]
    assert reviewed("approve", False) == []


def test_every_draft_type_has_a_template_with_every_channel() -> None:
    assert NOTIFICATION_TYPES <= template_kinds()
    assert set(LEDGER_RULES) <= set(e.EVENT_TYPES)


@pytest.mark.parametrize("kind", sorted(NOTIFICATION_TYPES))
def test_every_template_renders_every_channel(kind: str) -> None:
    values = {"amount": "12.50", "currency": "EUR", "direction": "debit", "account_id": "acc-1",
              "balance_after": "7.50", "reference": "rent", "counterparty_account_id": None, "threshold": "10.00",
              "movement": "Transfer", "case_id": "case-1", "action": "hold", "score": 90, "customer_id": "cust-1",
              "device": "Firefox on Linux", "ip": "10.0.0.1", "at": "2026-12-05 12:00 UTC", "reset": False,
              "text": "Your code: 123456"}
    for channel in BLOCKS[1:]:
        rendered = render(kind, channel, values)
        assert rendered.title and rendered.body, (kind, channel)


def test_a_missing_value_is_an_error_not_a_blank() -> None:
    with pytest.raises(Exception, match="amount"):
        render("transaction_posted", "email", {"direction": "debit"})


def test_thresholds_fire_above_the_amount_and_on_crossing_the_balance_only() -> None:
    threshold = Threshold("acc-1", "EUR", debit_above=10000, balance_below=50000)
    [posted] = drafts_for_event(_debit(5000, 95000))
    assert threshold_drafts(posted, threshold) == []                               # 50.00: below both
    [posted] = drafts_for_event(_debit(15000, 80000))
    assert [d.kind for d in threshold_drafts(posted, threshold)] == ["large_debit"]  # above 100.00
    [posted] = drafts_for_event(_debit(10000, 45000))                               # exactly 100.00: not above
    assert [d.kind for d in threshold_drafts(posted, threshold)] == ["low_balance"]  # 550.00 -> 450.00 crosses
    [posted] = drafts_for_event(_debit(1000, 44000))
    assert threshold_drafts(posted, threshold) == []                               # already below: no repeat
    assert all(d.suffix for d in threshold_drafts(drafts_for_event(_debit(20000, 40000))[0], threshold))


def test_security_notifications_cannot_be_turned_off() -> None:
    with pytest.raises(PreferenceError) as caught:
        parse_preferences({"channels": {"new_device_sign_in": ["sms"]}})
    assert caught.value.reason == "security_notification_required"
    prefs = parse_preferences({"channels": {"password_changed": ["in_app", "email", "sms"],
                                            "transaction_posted": []}})
    assert prefs.channels_for("password_changed") == ("in_app", "email", "sms")
    assert prefs.channels_for("transaction_posted") == ()
    for kind in SECURITY_TYPES:
        assert {"in_app", "email"} <= set(parse_preferences({}).channels_for(kind))


def test_preferences_are_checked_and_round_trip() -> None:
    accounts = {"acc-1": "EUR", "acc-2": "JPY"}
    data = {"channels": {"transaction_posted": ["in_app", "email"]},
            "thresholds": [{"account_id": "acc-1", "debit_above": "100.00"},
                           {"account_id": "acc-2", "balance_below": "5000"}],
            "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}}
    prefs = parse_preferences(data, accounts)
    assert prefs.threshold("acc-2") == Threshold("acc-2", "JPY", None, 5000)
    assert parse_preferences(preferences_json(prefs)) == prefs
    for bad, reason in ((["carrier-pigeon"], "invalid_channel"),):
        with pytest.raises(PreferenceError, match="channels") as caught:
            parse_preferences({"channels": {"transaction_posted": bad}})
        assert caught.value.reason == reason
    cases = [({"thresholds": [{"account_id": "theirs", "debit_above": "1.00"}]}, "unknown_account"),
             ({"thresholds": [{"account_id": "acc-2", "debit_above": "1.5"}]}, "too_many_decimals"),
             ({"thresholds": [{"account_id": "acc-1"}]}, "invalid_threshold"),
             ({"channels": {"staff_alert": ["email"]}}, "unknown_notification_type"),
             ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "invalid_quiet_hours"),
             ({"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}}, "invalid_timezone")]
    for data, reason in cases:
        with pytest.raises(PreferenceError) as caught:
            parse_preferences(data, accounts)
        assert caught.value.reason == reason, data
    assert parse_preferences({"channels": {"staff_alert": ["email"]}}, staff=True).channels_for("staff_alert") == (
        "email",)


def test_quiet_hours_hold_until_their_end_in_the_users_time_zone() -> None:
    night = QuietHours(time(22, 0), time(7, 0), "Europe/Berlin")   # UTC+1 in December
    assert night.holds(datetime(2026, 12, 5, 20, 59, tzinfo=UTC)) is None                  # 21:59 Berlin
    until = night.holds(datetime(2026, 12, 5, 21, 30, tzinfo=UTC))                         # 22:30 Berlin
    assert until is not None and until.astimezone(UTC) == datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
    until = night.holds(datetime(2026, 12, 6, 5, 0, tzinfo=UTC))                           # 06:00 Berlin
    assert until is not None and until.astimezone(UTC) == datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
    assert night.holds(datetime(2026, 12, 6, 6, 0, tzinfo=UTC)) is None                    # 07:00: over
    lunch = QuietHours(time(12, 0), time(13, 0))
    assert lunch.holds(datetime(2026, 12, 5, 12, 30, tzinfo=UTC)) == datetime(2026, 12, 5, 13, 0, tzinfo=UTC)
    assert lunch.holds(datetime(2026, 12, 5, 13, 30, tzinfo=UTC)) is None


def test_defaults_cover_every_type_but_codes() -> None:
    assert set(DEFAULT_CHANNELS) == NOTIFICATION_TYPES - {"verification_code"}
    assert Draft("x", "user", "u", {}).suffix == ""
