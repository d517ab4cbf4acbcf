"""Domain objects to JSON shapes: minor units become decimal strings in the account's currency."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from api.models import (AccountView, ActivityEntry, AuditEntry, CaseHit, CaseView, CommandStatus, CtrEntry,
                        EventView, SarCandidate, TransactionView)
from core.account_numbers import Iban
from core.events import CommandRejected, Event, RiskFlagged, TransferCreditFailed, TransferReversed
from core.ledger import CommandOutcome
from core.money import format_amount
from core.readmodel import AML_KINDS

_ENVELOPE = {"event_id", "command_id", "correlation_id", "account_id", "occurred_at", "sequence", "schema_version"}
_AMOUNTS = {"amount", "balance_after", "overdraft_limit", "previous_limit"}


def event_view(event: Event) -> EventView:
    data = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name not in _ENVELOPE}
    currency = data.get("currency")
    for name in _AMOUNTS & data.keys():
        data[name] = format_amount(data[name], currency)
    return EventView(event_id=event.event_id, type=type(event).__name__, account_id=event.account_id,
                     sequence=event.sequence, occurred_at=event.occurred_at, data=data)


# What a customer is told about risk decisions: that a payment is held or declined, never which rules fired,
# the score, or a reviewer's comment (that would tip off a money launderer, and teach a fraudster the rules).
_RISK_FIELDS = ("action", "score", "rule_set_version", "hits", "submitted_by")
_CUSTOMER_DETAIL = {
    "blocked_by_risk": "the payment cannot be processed; please contact the bank",
    "rejected_by_review": "the payment was declined after review; please contact the bank",
}
# What a sender is told when another customer's account refused their transfer's credit: that it was refused
# and the money came back, never why (closed, frozen: the state of an account that is not theirs).
CREDIT_FAILED = "credit_failed"
_CREDIT_FAILED_DETAIL = {True: "the destination account could not be credited; the debit was reversed",
                         False: "the destination account could not be credited; the debit is being reversed"}

Owns = Callable[[str], bool]   # whether the caller owns an account (by id)


def command_status(outcome: CommandOutcome, owns: Owns | None = None) -> CommandStatus:
    """A command's outcome. Staff (`owns` None) see it all; a customer sees only events of accounts they own,
    without what the risk engine and its reviewers saw, and without why another's account refused a credit."""
    if owns is None:
        return CommandStatus(command_id=outcome.command_id, status=outcome.status, in_flight=outcome.in_flight,
                             reason=outcome.reason, detail=outcome.detail,
                             events=[event_view(e) for e in outcome.events or []])
    return _customer_status(outcome, owns)


def _customer_status(outcome: CommandOutcome, owns: Owns) -> CommandStatus:
    events = outcome.events or []
    views = [_customer_event(e, owns) for e in events if _shown_to_customer(e, outcome.command_id, owns)]
    reason, detail = outcome.reason, _CUSTOMER_DETAIL.get(outcome.reason or "", outcome.detail)
    if any(_refused_by_another(e, owns) for e in events):
        reason, detail = CREDIT_FAILED, _CREDIT_FAILED_DETAIL[outcome.status == "rejected"]
    return CommandStatus(command_id=outcome.command_id, status=outcome.status, in_flight=outcome.in_flight,
                         reason=reason, detail=detail, events=views)


def _shown_to_customer(event: Event, command_id: str, owns: Owns) -> bool:
    """Events of their own accounts, and the refusal of the command itself (it may name an account that was
    never opened: a refused OpenAccount). Never a risk flag."""
    if isinstance(event, RiskFlagged):
        return False
    return owns(event.account_id) or (isinstance(event, CommandRejected) and event.command_id == command_id)


def _refused_by_another(event: Event, owns: Owns) -> bool:
    """A refused credit (or its reversal) on an account the caller does not own: its reason is that account's."""
    if isinstance(event, TransferCreditFailed):
        return not owns(event.account_id)
    return isinstance(event, TransferReversed) and not owns(event.to_account_id)


def _customer_event(event: Event, owns: Owns) -> EventView:
    view = event_view(event)
    for name in _RISK_FIELDS:
        view.data.pop(name, None)
    if view.type == "CommandRejected" and view.data.get("reason") in _CUSTOMER_DETAIL:
        view.data["detail"] = _CUSTOMER_DETAIL[view.data["reason"]]
    if _refused_by_another(event, owns):
        view.data["reason"] = CREDIT_FAILED
    return view


def account_from_row(row: Mapping[str, Any], iban: Iban | None) -> AccountView:
    """A read model's account (a PostgreSQL row or a Redis hash of strings) as the API shows it, with its number
    and IBAN (from the API's ledger view: the read models do not store them)."""
    currency = str(row["currency"])

    def money(name: str) -> str:
        return format_amount(int(row[name]), currency)

    numbers = dict(account_number=iban.account_number, iban=iban.machine,
                   iban_formatted=iban.formatted) if iban is not None else {}
    return AccountView(account_id=str(row["account_id"]), customer_id=str(row["customer_id"]), currency=currency,
                       **numbers,
                       balance=money("balance"), available_balance=money("available_balance"),
                       overdraft_limit=money("overdraft_limit"), status=row["status"], version=int(row["version"]))


def transaction_from_row(row: Mapping[str, Any]) -> TransactionView:
    currency = row["currency"]
    return TransactionView(transaction_id=row["posting_id"], account_id=row["account_id"], sequence=row["sequence"],
                           type=row["type"], amount=format_amount(row["amount"], currency), currency=currency,
                           balance_after=format_amount(row["balance_after"], currency),
                           counterparty_account_id=row["counterparty_account_id"], reference=row["reference"],
                           transfer_id=row["transfer_id"], command_id=row["command_id"],
                           occurred_at=row["occurred_at"], channel=row["channel"])


def audit_entry(doc: Mapping[str, Any]) -> AuditEntry:
    """An audit document; money is stored as minor units with a decimal-string twin, and JSON gets the string."""
    data = dict(doc.get("data") or {})
    for key in [k for k in data if k.endswith("_text")]:
        data[key.removesuffix("_text")] = data.pop(key)
    schema = doc.get("schema") or {}
    return AuditEntry(event_id=doc["_id"], type=doc["type"], account_id=doc["account_id"],
                      customer_id=doc.get("customer_id"), command_id=doc["command_id"],
                      correlation_id=doc["correlation_id"], occurred_at=doc["occurred_at"], sequence=doc["sequence"],
                      data=data, topic=doc["topic"], partition=doc["partition"], offset=doc["offset"],
                      schema_name=schema.get("name"), schema_fingerprint=schema.get("fingerprint"))


# An account id as the MongoDB timeline's summaries name a transfer's other account.
_ACCOUNT_ID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def activity_entry(doc: Mapping[str, Any], account_numbers: Mapping[str, str] | None = None) -> ActivityEntry:
    """A timeline document for people: an account id in its summary (a transfer's other account) reads as the
    account's number's last four digits, as the web app shows accounts. Done here, at read time, from the API's
    view of the accounts: the read model itself stays a function of the log alone (a rebuild writes the same)."""
    amount, currency = doc.get("amount"), doc.get("currency")
    numbers = account_numbers or {}

    def named(match: re.Match[str]) -> str:
        number = numbers.get(match[0])
        return f"account ···{number[-4:]}" if number else match[0]

    return ActivityEntry(event_id=doc["_id"], account_id=doc["account_id"], occurred_at=doc["occurred_at"],
                         type=doc["type"], summary=_ACCOUNT_ID.sub(named, doc["summary"]), currency=currency,
                         amount=format_amount(int(amount), currency) if amount is not None and currency else None)


def case_view(row: Mapping[str, Any]) -> CaseView:
    """A row of the cases table; the amount becomes a decimal string in the movement's currency."""
    currency = str(row["currency"])
    return CaseView(case_id=row["case_id"], account_id=row["account_id"], customer_id=row["customer_id"],
                    command_type=row["command_type"], amount=format_amount(row["amount"], currency),
                    currency=currency, channel=row["channel"], to_account_id=row["to_account_id"],
                    counterparty_name=row["counterparty_name"], counterparty_country=row["counterparty_country"],
                    reference=row["reference"], action=row["action"], score=row["score"], severity=row["severity"],
                    rule_ids=list(row["rule_ids"]), kinds=list(row["kinds"]),
                    hits=[CaseHit(**hit) for hit in json.loads(row["hits"])],
                    rule_set_version=row["rule_set_version"], status=row["status"], created_at=row["created_at"],
                    issued_at=row["issued_at"], decided_at=row["decided_at"], reviewer=row["reviewer"],
                    comment=row["comment"], decision_event_id=row["decision_event_id"])


def ctr_entry(row: Mapping[str, Any]) -> CtrEntry:
    currency = str(row["currency"])
    return CtrEntry(customer_id=row["customer_id"], currency=currency, direction=row["direction"],
                    total=format_amount(row["total"], currency), count=row["count"],
                    account_ids=list(row["account_ids"]))


def sar_candidate(row: Mapping[str, Any]) -> SarCandidate:
    currency = str(row["currency"])
    return SarCandidate(case_id=row["case_id"], account_id=row["account_id"], customer_id=row["customer_id"],
                        created_at=row["created_at"], command_type=row["command_type"],
                        amount=format_amount(row["amount"], currency), currency=currency, channel=row["channel"],
                        counterparty_name=row["counterparty_name"], counterparty_country=row["counterparty_country"],
                        action=row["action"], score=row["score"], severity=row["severity"], status=row["status"],
                        rule_ids=list(row["rule_ids"]), aml_kinds=[k for k in row["kinds"] if k in AML_KINDS])
