"""The preferences form becomes the whole preferences document the API's PUT takes."""

from __future__ import annotations

from web.customer.notifications import preferences_body

CURRENT = {"channels": {"transaction_posted": ["in_app"], "password_changed": ["in_app", "email"]},
           "security_types": ["password_changed"], "mandatory_channels": ["in_app", "email"]}


def test_ticked_boxes_are_the_channels_and_security_ones_stay_on_even_unticked() -> None:
    form = {"channel:transaction_posted:email": "on", "channel:transaction_posted:sms": "on"}
    body = preferences_body(form, CURRENT, [])
    assert body["channels"] == {"transaction_posted": ["email", "sms"], "password_changed": ["in_app", "email"]}
    assert body["thresholds"] == [] and body["quiet_hours"] is None


def test_thresholds_only_for_accounts_with_an_amount_and_quiet_hours_only_when_ticked() -> None:
    form = {"debit_above:a1": " 20.00 ", "balance_below:a2": "5", "debit_above:a3": "", "start": "22:00",
            "end": "07:00", "timezone": ""}
    body = preferences_body(form, CURRENT, ["a1", "a2", "a3"])
    assert body["thresholds"] == [{"account_id": "a1", "debit_above": "20.00", "balance_below": None},
                                  {"account_id": "a2", "debit_above": None, "balance_below": "5"}]
    assert body["quiet_hours"] is None
    ticked = preferences_body(form | {"quiet_hours": "on"}, CURRENT, [])
    assert ticked["quiet_hours"] == {"start": "22:00", "end": "07:00", "timezone": "UTC"}


def test_every_notification_type_has_words_on_the_preferences_page() -> None:
    from core.notifications import DEFAULT_CHANNELS
    from web.customer.notifications import TYPE_NAMES
    assert set(TYPE_NAMES) == set(DEFAULT_CHANNELS)
