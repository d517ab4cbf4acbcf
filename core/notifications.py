"""Notifications: which events tell whom what, on which channels, and when (pure; no I/O).

The notifier (streams/notifications/) reads the ledger and the audit log and asks this module what each record
means to people. A record becomes `Draft`s: a notification type, who it is for (the holder of an account, a
user, or the bank's analysts) and the values its templates show. Preferences (per user, kept in PostgreSQL) pick
the channels; security notifications always go in-app and by email whatever the preferences say.

Adding an event type is one entry in LEDGER_RULES (or AUDIT_RULES for bank.audit actions): a function from the
event to its drafts, plus the templates of a new notification type if it needs one (see README, Notifications).
Records of bank.standing-orders and bank.loans name no account holder: their drafts are for the customer the order
or loan belongs to, read from the folds of those topics (`standing_order_drafts`, `loan_drafts`); instalments
coming due are a question of business time, not of a record (`instalment_reminders`).
Personal data (addresses, phone numbers) never comes from here or from the log: the notifier looks it up on
the read side when it delivers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core import events as e
from core.commands import derive_id
from core.lending import LoanBook, LoanLateFeeCharged, LoanPostings, LoanReviewed, LoanState, loan_of
from core.loans import LoanError
from core.money import MoneyError, format_amount, parse_amount
from core.standing_orders import INSUFFICIENT_FUNDS, Orders, StandingOrderOccurrence
from core.topics import AUDIT, LEDGER_EVENTS, LOANS, STANDING_ORDERS

NOTIFIER_GROUP = "bankstream-notifier"   # the notifier's consumer group
# What it reads. Another event topic (payments) is one more entry here, its event types' entries in LEDGER_RULES,
# and the notifier among the topic's consumers in topics.yaml.
NOTIFIER_TOPICS = (LEDGER_EVENTS, AUDIT, STANDING_ORDERS, LOANS)
# PostgreSQL NOTIFY channel: the notifier names a user there when their inbox has a new row (sent at commit); the
# API's streams wait on it.
NOTIFY_CHANNEL = "bank_notifications"

Channel = Literal["in_app", "email", "sms"]
CHANNELS: tuple[Channel, ...] = ("in_app", "email", "sms")

# ---------------------------------------------------------------- types and defaults

# type -> the channels a user gets unless they choose otherwise (documented in README, Notifications)
DEFAULT_CHANNELS: dict[str, tuple[Channel, ...]] = {
    "transaction_posted": ("in_app",),
    "transfer_returned": ("in_app", "email"),
    "payment_held": ("in_app", "email"),
    "payment_released": ("in_app", "email"),
    "payment_declined": ("in_app", "email"),
    "large_debit": ("in_app", "email"),            # a threshold of the user's: debit above an amount
    "low_balance": ("in_app", "email"),            # a threshold of the user's: balance below an amount
    "payee_added": ("in_app", "email"),            # someone who could pay out adds a payee: tell the customer
    "standing_order_failed": ("in_app", "email"),  # an occurrence failed for good (after its retry, if any)
    "loan_decided": ("in_app", "email"),           # approved (all approvals in), offered other terms, declined
    "loan_disbursed": ("in_app", "email"),
    "loan_instalment_due": ("in_app", "email"),    # BANK_LOAN_DUE_REMINDER_DAYS before its due date
    "loan_repayment_failed": ("in_app", "email"),  # not enough money on the account to collect it
    "loan_overdue": ("in_app", "email"),           # an instalment unpaid past its due date: the late fee charged
    "new_device_sign_in": ("in_app", "email"),
    "password_changed": ("in_app", "email"),
    "mfa_changed": ("in_app", "email"),
    "staff_alert": ("in_app",),                    # analysts and admins: fraud cases and held movements
}
# Security notifications cannot be turned off: these channels are always on for them.
SECURITY_TYPES = frozenset({"new_device_sign_in", "password_changed", "mfa_changed"})
MANDATORY_CHANNELS: tuple[Channel, ...] = ("in_app", "email")
STAFF_TYPES = frozenset({"staff_alert"})
# Not a preference: a code goes to the address it confirms, on that channel only, at once (never held).
VERIFICATION_CODE = "verification_code"
NOTIFICATION_TYPES = frozenset(DEFAULT_CHANNELS) | {VERIFICATION_CODE}


def notification_id(source_id: str, recipient: str, channel: str, kind: str = "") -> str:
    """Deterministic: the same event, person and channel always make the same notification, so a replayed or
    re-delivered record creates nothing new and nothing is sent twice. `kind` tells apart two notifications one
    event makes for one person (a debit that is also over their threshold)."""
    return derive_id("notification", source_id, recipient, channel, kind)


# ---------------------------------------------------------------- preferences


class PreferenceError(ValueError):
    def __init__(self, reason: str, detail: str, field_name: str) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.field_name = reason, detail, field_name


@dataclass(frozen=True, slots=True)
class Threshold:
    account_id: str
    currency: str
    debit_above: int | None = None       # minor units: any debit above this
    balance_below: int | None = None     # minor units: the balance falling below this


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    timezone: str = "UTC"

    def holds(self, moment: datetime) -> datetime | None:
        """When an SMS due at `moment` may go: None if now (outside quiet hours), else the end of them."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        now, start, end = local.time().replace(tzinfo=None), self.start, self.end
        inside = (start <= now < end) if start <= end else (now >= start or now < end)
        if not inside or start == end:
            return None
        ends = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        if ends <= local:
            ends += timedelta(days=1)
        return ends


@dataclass(frozen=True, slots=True)
class Preferences:
    channels: Mapping[str, tuple[Channel, ...]] = field(default_factory=dict)   # what the user chose; else defaults
    thresholds: tuple[Threshold, ...] = ()
    quiet_hours: QuietHours | None = None

    def channels_for(self, kind: str) -> tuple[Channel, ...]:
        chosen = tuple(self.channels.get(kind, DEFAULT_CHANNELS.get(kind, ())))
        if kind in SECURITY_TYPES:
            chosen = tuple(c for c in CHANNELS if c in chosen or c in MANDATORY_CHANNELS)
        return chosen

    def threshold(self, account_id: str) -> Threshold | None:
        return next((t for t in self.thresholds if t.account_id == account_id), None)


DEFAULT_PREFERENCES = Preferences()
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def parse_preferences(data: Mapping[str, Any], currencies: Mapping[str, str] | None = None,
                      staff: bool = False) -> Preferences:
    """Preferences from their JSON form (as stored and as PUT). `currencies` (account id -> currency) are the
    accounts thresholds may name; None skips that check (reading what was stored). PreferenceError says what is
    wrong; security types must keep their mandatory channels."""
    channels: dict[str, tuple[Channel, ...]] = {}
    for kind, chosen in dict(data.get("channels") or {}).items():
        where = f"channels.{kind}"
        if kind not in DEFAULT_CHANNELS or (kind in STAFF_TYPES and not staff):
            raise PreferenceError("unknown_notification_type", f"{where}: no such notification type", where)
        if not isinstance(chosen, list | tuple) or any(c not in CHANNELS for c in chosen):
            raise PreferenceError("invalid_channel", f"{where}: a list of {', '.join(CHANNELS)}", where)
        if kind in SECURITY_TYPES and not set(MANDATORY_CHANNELS) <= set(chosen):
            raise PreferenceError("security_notification_required", f"{where}: security notifications cannot be "
                                  f"turned off: they always go {' and '.join(MANDATORY_CHANNELS)}", where)
        channels[kind] = tuple(c for c in CHANNELS if c in chosen)
    thresholds = tuple(_threshold(item, i, currencies) for i, item in enumerate(data.get("thresholds") or []))
    if len({t.account_id for t in thresholds}) != len(thresholds):
        raise PreferenceError("duplicate_threshold", "thresholds: one entry per account", "thresholds")
    quiet = data.get("quiet_hours")
    return Preferences(channels, thresholds, _quiet_hours(quiet) if quiet else None)


def _threshold(item: Any, index: int, currencies: Mapping[str, str] | None) -> Threshold:
    where = f"thresholds[{index}]"
    if not isinstance(item, Mapping) or not isinstance(item.get("account_id"), str):
        raise PreferenceError("invalid_threshold", f"{where}: needs an account_id", where)
    account = item["account_id"]
    currency = item.get("currency")
    if currencies is not None:
        if account not in currencies:
            raise PreferenceError("unknown_account", f"{where}.account_id: not one of your accounts", where)
        currency = currencies[account]
    if not isinstance(currency, str):
        raise PreferenceError("invalid_threshold", f"{where}: no currency", where)
    amounts: dict[str, int | None] = {}
    for name in ("debit_above", "balance_below"):
        text = item.get(name)
        try:
            amounts[name] = None if text is None else parse_amount(text, currency, allow_zero=True)
        except MoneyError as error:
            raise PreferenceError(error.reason, f"{where}.{name}: {error.detail}", f"{where}.{name}") from None
    if amounts["debit_above"] is None and amounts["balance_below"] is None:
        raise PreferenceError("invalid_threshold", f"{where}: set debit_above, balance_below or both", where)
    return Threshold(account, currency, amounts["debit_above"], amounts["balance_below"])


def _quiet_hours(item: Any) -> QuietHours:
    if not isinstance(item, Mapping):
        raise PreferenceError("invalid_quiet_hours", "quiet_hours: {start, end, timezone}", "quiet_hours")
    parsed = []
    for name in ("start", "end"):
        match = _CLOCK.fullmatch(str(item.get(name, "")))
        if match is None:
            raise PreferenceError("invalid_quiet_hours", f"quiet_hours.{name}: HH:MM", f"quiet_hours.{name}")
        parsed.append(time(int(match[1]), int(match[2])))
    zone = str(item.get("timezone") or "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise PreferenceError("invalid_timezone", f"quiet_hours.timezone: {zone!r} is no IANA time zone",
                              "quiet_hours.timezone") from None
    return QuietHours(parsed[0], parsed[1], zone)


def preferences_json(prefs: Preferences) -> dict[str, Any]:
    """The JSON form (stored, and answered by GET): amounts as decimal strings."""
    quiet = prefs.quiet_hours
    return {
        "channels": {kind: list(prefs.channels_for(kind)) for kind in prefs.channels},
        "thresholds": [{"account_id": t.account_id, "currency": t.currency,
                        "debit_above": None if t.debit_above is None else format_amount(t.debit_above, t.currency),
                        "balance_below": None if t.balance_below is None else format_amount(t.balance_below,
                                                                                             t.currency)}
                       for t in prefs.thresholds],
        "quiet_hours": None if quiet is None else {"start": quiet.start.strftime("%H:%M"),
                                                   "end": quiet.end.strftime("%H:%M"), "timezone": quiet.timezone},
    }


# ---------------------------------------------------------------- what events mean to people

Audience = Literal["account_holder", "customer", "user", "staff"]


@dataclass(frozen=True, slots=True)
class Draft:
    """A notification to make: its type, for whom (the holder of `target` account, the users of customer
    `target`, the user `target`, or every analyst and admin), and the values its templates show (never personal
    data, never fraud rules, never credit scores)."""

    kind: str
    audience: Audience
    target: str
    values: dict[str, Any]
    suffix: str = ""      # tells apart two drafts of one event for one person


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": format_amount(amount, currency), "currency": currency}


def _posted(event: e.Event, direction: str, amount: int, currency: str, balance_after: int,
            reference: str | None, counterparty: str | None = None) -> list[Draft]:
    values = _money(amount, currency) | {"direction": direction, "account_id": event.account_id,
                                         "balance_after": format_amount(balance_after, currency),
                                         "reference": reference, "counterparty_account_id": counterparty,
                                         "balance_after_minor": balance_after, "amount_minor": amount}
    return [Draft("transaction_posted", "account_holder", event.account_id, values)]


def _deposited(event: e.Event) -> list[Draft]:
    assert isinstance(event, e.FundsDeposited)
    return _posted(event, "credit", event.amount, event.currency, event.balance_after, event.reference)


def _withdrawn(event: e.Event) -> list[Draft]:
    assert isinstance(event, e.FundsWithdrawn)
    return _posted(event, "debit", event.amount, event.currency, event.balance_after, event.reference)


def _debited(event: e.Event) -> list[Draft]:
    assert isinstance(event, e.TransferDebited)
    return _posted(event, "debit", event.amount, event.currency, event.balance_after, event.reference,
                   event.to_account_id)


def _credited(event: e.Event) -> list[Draft]:
    assert isinstance(event, e.TransferCredited)
    return _posted(event, "credit", event.amount, event.currency, event.balance_after, event.reference,
                   event.from_account_id)


def _reversed(event: e.Event) -> list[Draft]:
    assert isinstance(event, e.TransferReversed)
    values = _money(event.amount, event.currency) | {"account_id": event.account_id,
                                                     "balance_after": format_amount(event.balance_after,
                                                                                    event.currency)}
    return [Draft("transfer_returned", "account_holder", event.account_id, values)]


def _case_values(event: e.RiskCase) -> dict[str, Any]:
    """What a customer may know of a held movement: what and how much, never the rules, score or reviewer."""
    return _money(event.amount, event.currency) | {"account_id": event.account_id, "movement": event.command_type,
                                                   "case_id": event.command_id}


def _held(event: e.Event) -> list[Draft]:
    assert isinstance(event, e.FundsHeld)
    return [Draft("payment_held", "account_holder", event.account_id, _case_values(event)), _staff_alert(event)]


def _flagged(event: e.Event) -> list[Draft]:
    assert isinstance(event, e.RiskFlagged)
    return [_staff_alert(event)]


def _staff_alert(event: e.RiskCase) -> Draft:
    """For analysts: the case to look at (its id, account, action and score; the queue shows the rest)."""
    return Draft("staff_alert", "staff", "analysts", _case_values(event) | {
        "action": event.action, "score": event.score, "customer_id": event.customer_id})


def _reviewed(event: e.Event) -> list[Draft]:
    assert isinstance(event, e.CaseReviewed)
    if not event.held:
        return []
    kind = "payment_released" if event.decision == "approve" else "payment_declined"
    return [Draft(kind, "account_holder", event.account_id, {"account_id": event.account_id,
                                                             "case_id": event.case_id})]


def _loan_disbursed(event: e.Event) -> list[Draft]:
    assert isinstance(event, e.LoanDisbursed)
    values = _money(event.amount, event.currency) | {
        "loan_id": event.loan_id, "account_id": event.account_id, "principal": format_amount(event.principal,
                                                                                             event.currency),
        "fee": format_amount(event.fee, event.currency) if event.fee else None,   # None: no fee was taken
        "balance_after": format_amount(event.balance_after, event.currency)}
    return [Draft("loan_disbursed", "account_holder", event.account_id, values)]


def _rejected(event: e.Event) -> list[Draft]:
    """A loan repayment the ledger refused for want of money (the servicer's collection of an instalment, tried
    again the next business day, or the customer's own). Other refusals are answered to whoever asked."""
    assert isinstance(event, e.CommandRejected)
    if event.command_type != "RepayLoan" or event.reason != INSUFFICIENT_FUNDS:
        return []
    return [Draft("loan_repayment_failed", "account_holder", event.account_id, {"account_id": event.account_id})]


# One entry per ledger event type that tells someone something. New types (payments) add an entry here, mapping
# their event to drafts.
LEDGER_RULES: dict[str, Callable[[e.Event], list[Draft]]] = {
    "FundsDeposited": _deposited,
    "FundsWithdrawn": _withdrawn,
    "TransferDebited": _debited,
    "TransferCredited": _credited,
    "TransferReversed": _reversed,
    "FundsHeld": _held,
    "RiskFlagged": _flagged,
    "CaseReviewed": _reviewed,
    "LoanDisbursed": _loan_disbursed,
    "CommandRejected": _rejected,
}


def drafts_for_event(event: e.Event) -> list[Draft]:
    rule = LEDGER_RULES.get(type(event).__name__)
    return rule(event) if rule is not None else []


def threshold_drafts(draft: Draft, threshold: Threshold | None) -> list[Draft]:
    """A posted debit that crosses the holder's threshold on that account: large_debit, low_balance."""
    if threshold is None or draft.kind != "transaction_posted" or draft.values.get("direction") != "debit":
        return []
    amount, after = int(draft.values["amount_minor"]), int(draft.values["balance_after_minor"])
    values = dict(draft.values)
    out = []
    if threshold.debit_above is not None and amount > threshold.debit_above:
        out.append(Draft("large_debit", draft.audience, draft.target, values | {
            "threshold": format_amount(threshold.debit_above, threshold.currency)}, "large_debit"))
    below = threshold.balance_below
    if below is not None and after < below <= after + amount:   # crossing, not every debit while below
        out.append(Draft("low_balance", draft.audience, draft.target, values | {
            "threshold": format_amount(below, threshold.currency)}, "low_balance"))
    return out


# bank.audit: action -> notification type for the user concerned (the subject, else the actor)
AUDIT_RULES: dict[str, str] = {
    "password_changed": "password_changed",
    "password_reset": "password_changed",
    "mfa_enrolled": "mfa_changed",
    "payee_added": "payee_added",
}
NEW_DEVICE_ACTION = "login"   # a successful login from a device the user never signed in from


# ---------------------------------------------------------------- standing orders and loans (their own topics)


def standing_order_drafts(record: object, orders: Orders) -> list[Draft]:
    """An occurrence recorded `failed` (refused after its same-day retry, or refused for another reason): tell the
    order's customer which payment and why, in words a customer may read (not enough money, or it could not be
    paid). `orders` is the fold of bank.standing-orders up to this record at least (the order's definition)."""
    if not isinstance(record, StandingOrderOccurrence) or record.status != "failed":
        return []
    order = orders.orders.get(record.order_id)
    if order is None:
        return []
    definition = order.definition
    values = _money(record.amount, record.currency) | {
        "order_id": record.order_id, "reference": definition.reference, "due_date": record.due_date,
        "from_account_id": definition.from_account_id, "insufficient_funds": record.reason == INSUFFICIENT_FUNDS,
        "retried": record.attempt > 1}
    return [Draft("standing_order_failed", "customer", definition.customer_id, values)]


def loan_as_of(state: LoanState, positions: Mapping[str, int], event_id: str) -> LoanState:
    """The loan as it stood just after its record `event_id`: the fold may have read further (later decisions and
    answers), and a notification must say what this record changed. `positions`: each record's place in the log."""
    cut = positions[event_id]

    def kept(other: str) -> bool:
        return positions.get(other, cut + 1) <= cut

    return replace(state, reviews=[review for review in state.reviews if kept(review.event_id)],
                   answers=[answer for answer in state.answers if kept(answer.event_id)])


_OUTCOMES = {"approved": "approved", "offered": "offered", "rejected": "declined"}


def loan_drafts(record: object, state: LoanState | None) -> list[Draft]:
    """A decision or a late fee on bank.loans, for the loan's customer. `state` is the loan just after `record`
    (`loan_as_of`). A review tells the customer only when it changes where the application stands: an approval
    that completes the approvals it needs (a first of two tells nothing), a counter-offer, a rejection with the
    reason staff gave. The assessment (scores, bureau) is never in it."""
    if state is None:
        return []
    application = state.application
    if isinstance(record, LoanReviewed):
        before = replace(state, reviews=[review for review in state.reviews if review.event_id != record.event_id])
        outcome = _OUTCOMES.get(state.decision_status)
        if outcome is None or before.decision_status == state.decision_status:
            return []
        values = _money(record.amount, application.currency) | {
            "loan_id": record.loan_id, "outcome": outcome, "term": record.term,
            "annual_rate_percent": record.annual_rate_percent,
            "reason": record.reason if outcome == "declined" else None}
        return [Draft("loan_decided", "customer", application.customer_id, values)]
    if isinstance(record, LoanLateFeeCharged):
        values = _money(record.amount, application.currency) | {
            "loan_id": record.loan_id, "instalment": record.instalment, "charged_on": record.charged_on,
            "account_id": application.account_id}
        return [Draft("loan_overdue", "customer", application.customer_id, values)]
    return []


def reminder_id(loan_id: str, instalment: int) -> str:
    """The source of an instalment's reminder: one per loan and instalment, however often it is asked for."""
    return derive_id("loan-instalment-due", loan_id, str(instalment))


def instalment_reminders(book: LoanBook, postings: LoanPostings, today: date, days: int) -> list[tuple[str, Draft]]:
    """(source id, draft) of `loan_instalment_due` for every unpaid instalment of an active loan falling due within
    `days` days after business day `today` (not yet due: what is due today the servicer collects). Asked again
    and again, it answers the same ids, so each instalment is announced once; 0 days: no reminders."""
    if days <= 0:
        return []
    found = []
    for state in book.loans.values():
        if state.loan_id not in postings.disbursed:
            continue
        try:
            loan = loan_of(state, book, postings, today)
        except LoanError:
            continue   # the servicer logs a loan that no longer computes
        if loan.status != "active":
            continue
        application = state.application
        for item in loan.instalments:
            if item.unpaid > 0 and today < item.due_on <= today + timedelta(days=days):
                values = _money(item.unpaid, application.currency) | {
                    "loan_id": state.loan_id, "instalment": item.number, "due_on": item.due_on.isoformat(),
                    "days": (item.due_on - today).days, "account_id": application.account_id}
                found.append((reminder_id(state.loan_id, item.number),
                              Draft("loan_instalment_due", "customer", application.customer_id, values)))
    return found
