"""Domain objects to JSON shapes: minor units become decimal strings in the account's currency."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from api.models import AccountView, ActivityEntry, AuditEntry, CommandStatus, EventView, TransactionView
from core.events import Event
from core.ledger import CommandOutcome
from core.money import format_amount

_ENVELOPE = {"event_id", "command_id", "correlation_id", "account_id", "occurred_at", "sequence", "schema_version"}
_AMOUNTS = {"amount", "balance_after", "overdraft_limit"}


def event_view(event: Event) -> EventView:
    data = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name not in _ENVELOPE}
    currency = data.get("currency")
    for name in _AMOUNTS & data.keys():
        data[name] = format_amount(data[name], currency)
    return EventView(event_id=event.event_id, type=type(event).__name__, account_id=event.account_id,
                     sequence=event.sequence, occurred_at=event.occurred_at, data=data)


def command_status(outcome: CommandOutcome) -> CommandStatus:
    return CommandStatus(command_id=outcome.command_id, status=outcome.status, in_flight=outcome.in_flight,
                         reason=outcome.reason, detail=outcome.detail,
                         events=[event_view(e) for e in outcome.events or []])


def account_from_row(row: Mapping[str, Any]) -> AccountView:
    """A read model's account (a PostgreSQL row or a Redis hash of strings) as the API shows it."""
    currency = str(row["currency"])

    def money(name: str) -> str:
        return format_amount(int(row[name]), currency)

    return AccountView(account_id=str(row["account_id"]), customer_id=str(row["customer_id"]), currency=currency,
                       balance=money("balance"), available_balance=money("available_balance"),
                       overdraft_limit=money("overdraft_limit"), status=row["status"], version=int(row["version"]))


def transaction_from_row(row: Mapping[str, Any]) -> TransactionView:
    currency = row["currency"]
    return TransactionView(transaction_id=row["posting_id"], account_id=row["account_id"], sequence=row["sequence"],
                           type=row["type"], amount=format_amount(row["amount"], currency), currency=currency,
                           balance_after=format_amount(row["balance_after"], currency),
                           counterparty_account_id=row["counterparty_account_id"], reference=row["reference"],
                           transfer_id=row["transfer_id"], command_id=row["command_id"],
                           occurred_at=row["occurred_at"])


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


def activity_entry(doc: Mapping[str, Any]) -> ActivityEntry:
    amount, currency = doc.get("amount"), doc.get("currency")
    return ActivityEntry(event_id=doc["_id"], account_id=doc["account_id"], occurred_at=doc["occurred_at"],
                         type=doc["type"], summary=doc["summary"], currency=currency,
                         amount=format_amount(int(amount), currency) if amount is not None and currency else None)
