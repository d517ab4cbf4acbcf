"""What events mean to people (core/notifications.py), preferences, thresholds, quiet hours, and the templates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from core import events as e
from core.lending import (LoanApplicantAnswered, LoanApplied, LoanAssessed, LoanBook, LoanLateFeeCharged,
                          LoanPostings, LoanProductSet, LoanReviewed, loan_of)
from core.notifications import (DEFAULT_CHANNELS, LEDGER_RULES, NOTIFICATION_TYPES, SECURITY_TYPES, Draft,
                                PreferenceError, QuietHours, Threshold, drafts_for_event, instalment_reminders,
                                loan_as_of, loan_drafts, notification_id, parse_preferences, preferences_json,
                                reminder_id, standing_order_drafts, threshold_drafts)
from core.standing_orders import Orders, StandingOrderOccurrence, StandingOrderSet
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
              "text": "Your code: 123456", "order_id": "so-1", "due_date": "2026-12-05", "from_account_id": "acc-1",
              "insufficient_funds": True, "retried": True, "loan_id": "loan-1", "outcome": "declined", "term": 12,
              "annual_rate_percent": "12", "reason": "income too low", "principal": "1000.00", "fee": "10.00",
              "instalment": 2, "charged_on": "2026-12-05", "due_on": "2026-12-08", "days": 3}
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


# ---------------------------------------------------------------- standing orders and loans


def _texts(draft: Draft) -> str:
    """Everything a customer would read of a draft, on every channel."""
    return " ".join(f"{render(draft.kind, channel, draft.values).title} {render(draft.kind, channel, draft.values).body}"
                    for channel in BLOCKS[1:])


def _order(reference: str | None = "rent") -> Orders:
    orders = Orders()
    orders.apply(StandingOrderSet(
        event_id="s1", order_id="so-1", version=1, change="created", status="active", customer_id="cust-1",
        from_account_id="acc-1", to_account_id="acc-9", amount=2500, currency="EUR", reference=reference,
        frequency="monthly", start_date="2026-12-05", end_date=None, count=None, weekday=None, day_of_month=None,
        time_zone="UTC", set_at=NOW, set_by="u1"))
    return orders


def _occurrence(status: str, reason: str | None, attempt: int = 2) -> StandingOrderOccurrence:
    return StandingOrderOccurrence(event_id=f"o-{status}-{attempt}", order_id="so-1", occurrence_id="occ-1", number=1,
                                   due_date="2026-12-05", status=status, attempt=attempt, command_id="cmd-1",
                                   amount=2500, currency="EUR", late=False, reason=reason, retry_at=None,
                                   recorded_at=NOW)


def test_a_failed_standing_order_tells_its_customer_which_payment_and_why_in_plain_words() -> None:
    [draft] = standing_order_drafts(_occurrence("failed", "insufficient_funds"), _order())
    assert (draft.kind, draft.audience, draft.target) == ("standing_order_failed", "customer", "cust-1")
    assert (draft.values["amount"], draft.values["due_date"], draft.values["reference"]) == ("25.00", "2026-12-05",
                                                                                             "rent")
    text = _texts(draft)
    assert "not enough money" in text and "tried again" in text and "insufficient_funds" not in text
    [other] = standing_order_drafts(_occurrence("failed", "account_frozen", attempt=1), _order(reference=None))
    text = _texts(other)
    assert "could not be paid" in text and "account_frozen" not in text and "not enough" not in text
    for status in ("submitted", "retry_pending", "paid", "skipped", "reversed"):
        assert standing_order_drafts(_occurrence(status, "insufficient_funds"), _order()) == []
    assert standing_order_drafts(_occurrence("failed", None), Orders()) == []   # an order the fold does not know


LOAN_PRODUCT = LoanProductSet(
    event_id="p1", product_id="personal", version=1, change="created", status="active", name="Personal",
    currency="EUR", principal_min=50_000, principal_max=5_000_000, term_min=3, term_max=36,
    rates=[{"effective_on": "2026-01-01", "annual_rate_percent": "12"}], amortisation="equal_instalments",
    frequency="monthly", day_count="ACT/365F", grace_on_principal=0, late_fee_flat=1_500, late_fee_percent="0",
    origination_fee_flat=0, origination_fee_percent="1", origination_fee_on="disbursement", set_by="admin", set_at=NOW)
APPLIED = LoanApplied(event_id="a1", loan_id="L1", customer_id="cust-1", product_id="personal", product_version=1,
                      account_id="acc-1", amount=120_000, currency="EUR", term=12, purpose="car", applied_at=NOW,
                      applied_by="u1")
ASSESSED = LoanAssessed(event_id="s1", loan_id="L1", score=37, recommendation="decline", reasons=["thin file"],
                        inputs={}, bureau_score=512, bureau_report_id="CB-1", assessed_at=NOW)


def _review(number: int, decision: str = "approve", reviewer: str = "R1", needed: int = 1, amount: int = 120_000,
            reason: str | None = None) -> LoanReviewed:
    return LoanReviewed(event_id=f"r{number}", loan_id="L1", decision=decision, reviewer=reviewer, reason=reason,
                        amount=amount, term=12, annual_rate_percent="12", approvals_needed=needed, reviewed_at=NOW)


def _loan_log(*records: object) -> tuple[LoanBook, dict[str, int]]:
    """The loans' fold and each record's place in the log (as the notifier's folds keep them)."""
    book, positions = LoanBook(), {}
    for offset, record in enumerate((LOAN_PRODUCT, APPLIED, ASSESSED, *records)):
        book.apply(record)
        positions[record.event_id] = offset
    return book, positions


def _decided(record: LoanReviewed, *log: object) -> list[Draft]:
    book, positions = _loan_log(*log)
    return loan_drafts(record, loan_as_of(book.loans["L1"], positions, record.event_id))


def test_a_loan_decision_tells_the_customer_approved_offered_or_declined_with_the_reason_never_the_score() -> None:
    approve = _review(1)
    [draft] = _decided(approve, approve)
    assert (draft.kind, draft.audience, draft.target, draft.values["outcome"]) == ("loan_decided", "customer",
                                                                                   "cust-1", "approved")
    assert draft.values["amount"] == "1200.00" and draft.values["reason"] is None
    offer = _review(1, "counter_offer", amount=60_000, reason="internal: score 37")
    [draft] = _decided(offer, offer)
    assert draft.values["outcome"] == "offered" and draft.values["amount"] == "600.00"
    assert "internal" not in _texts(draft)                   # only a rejection's reason is the customer's to read
    reject = _review(1, "reject", reason="Your income does not cover the instalments.")
    [draft] = _decided(reject, reject)
    text = _texts(draft)
    assert draft.values["outcome"] == "declined" and "Your income does not cover the instalments." in text
    for secret in ("37", "512", "thin file", "score", "bureau"):
        assert secret not in text, secret


def test_a_first_of_two_approvals_tells_nothing_the_second_tells_approved() -> None:
    first, second = _review(1, needed=2), _review(2, reviewer="R2", needed=2)
    assert _decided(first, first, second) == []              # judged as it stood then, though the fold read further
    [draft] = _decided(second, first, second)
    assert draft.values["outcome"] == "approved"


def test_a_counter_offer_is_an_offer_even_once_the_fold_has_read_its_acceptance() -> None:
    offer = _review(1, "counter_offer", amount=60_000)
    accept = LoanApplicantAnswered(event_id="x1", loan_id="L1", answer="accept_offer", answered_by="u1",
                                   answered_at=NOW)
    [draft] = _decided(offer, offer, accept)
    assert draft.values["outcome"] == "offered"
    book, positions = _loan_log(offer, accept)
    assert loan_drafts(accept, loan_as_of(book.loans["L1"], positions, "x1")) == []   # their own answer: no news
    assert loan_drafts(offer, None) == []


def test_a_late_fee_tells_the_customer_the_instalment_is_overdue_with_the_fee() -> None:
    fee = LoanLateFeeCharged(event_id="f1", loan_id="L1", instalment=1, amount=1_500, charged_on="2027-01-06",
                             charged_at=NOW)
    book, positions = _loan_log(_review(1), fee)
    [draft] = loan_drafts(fee, loan_as_of(book.loans["L1"], positions, "f1"))
    assert (draft.kind, draft.target, draft.values["amount"], draft.values["instalment"]) == (
        "loan_overdue", "cust-1", "15.00", 1)
    assert "15.00 EUR" in _texts(draft) and "overdue" in _texts(draft)


def _disbursed(fee: int = 1_200) -> e.LoanDisbursed:
    return e.LoanDisbursed(event_id="d1", account_id="acc-1", loan_id="L1", principal=120_000, fee=fee,
                           amount=120_000 - fee, currency="EUR", balance_after=120_000 - fee,
                           disbursed_on="2026-12-05", **BASE)


def test_a_loan_paid_out_tells_the_account_holder_the_amount() -> None:
    [draft] = drafts_for_event(_disbursed())
    assert (draft.kind, draft.audience, draft.target, draft.values["amount"], draft.values["fee"]) == (
        "loan_disbursed", "account_holder", "acc-1", "1188.00", "12.00")
    assert "1188.00 EUR" in _texts(draft) and "fee" in _texts(draft)
    [free] = drafts_for_event(_disbursed(fee=0))
    assert free.values["fee"] is None and "fee" not in render(free.kind, "in_app", free.values).body


def test_a_loan_repayment_refused_for_want_of_money_tells_the_holder_other_refusals_do_not() -> None:
    def refused(command_type: str, reason: str) -> list[str]:
        event = e.CommandRejected(event_id="ev9", account_id="acc-1", command_type=command_type, reason=reason,
                                  detail="balance 1.00 minus 100.00 EUR would pass the limit", **BASE)
        return [d.kind for d in drafts_for_event(event)]

    assert refused("RepayLoan", "insufficient_funds") == ["loan_repayment_failed"]
    assert refused("RepayLoan", "more_than_owed") == []
    assert refused("Transfer", "insufficient_funds") == []
    [draft] = drafts_for_event(e.CommandRejected(event_id="ev9", account_id="acc-1", command_type="RepayLoan",
                                                 reason="insufficient_funds", detail="balance 1.00", **BASE))
    assert draft.audience == "account_holder" and "balance 1.00" not in _texts(draft)


def test_an_instalment_is_announced_once_within_the_reminder_days_before_it_is_due() -> None:
    book, _positions = _loan_log(_review(1))
    postings = LoanPostings()
    postings.apply(_disbursed())
    first_due = date(2027, 1, 5)                    # a month after 2026-12-05
    assert instalment_reminders(book, postings, first_due - timedelta(days=4), 3) == []
    [(source, draft)] = instalment_reminders(book, postings, first_due - timedelta(days=3), 3)
    assert source == reminder_id("L1", 1) and draft.target == "cust-1" and draft.audience == "customer"
    assert (draft.values["instalment"], draft.values["due_on"], draft.values["days"]) == (1, "2027-01-05", 3)
    [(again, _draft)] = instalment_reminders(book, postings, first_due - timedelta(days=1), 3)
    assert again == source                          # asked again: the same id, so the same notifications
    assert instalment_reminders(book, postings, first_due, 3) == []           # due today: the servicer collects it
    assert instalment_reminders(book, postings, first_due - timedelta(days=2), 0) == []   # 0 days: no reminders
    text = _texts(draft)
    assert "2027-01-05" in text and draft.values["amount"] in text
    first = loan_of(book.loans["L1"], book, postings, first_due).instalments[0]
    paid = LoanPostings()
    paid.apply(_disbursed())
    paid.apply(e.LoanRepaid(event_id="p1", account_id="acc-1", loan_id="L1", amount=first.total, currency="EUR",
                            principal=first.principal, interest=first.interest, fees=first.fees, kind="manual",
                            paid_on="2027-01-01", balance_after=0,
                            outstanding_principal=first.outstanding_principal, **BASE))
    assert instalment_reminders(book, paid, first_due - timedelta(days=3), 3) == []  # paid ahead: nothing to say
    undisbursed, _ = _loan_log(_review(1))
    assert instalment_reminders(undisbursed, LoanPostings(), first_due - timedelta(days=3), 3) == []


def test_every_new_type_has_default_channels() -> None:
    for kind in ("standing_order_failed", "loan_decided", "loan_disbursed", "loan_instalment_due",
                 "loan_repayment_failed", "loan_overdue"):
        assert DEFAULT_CHANNELS[kind] == ("in_app", "email"), kind
