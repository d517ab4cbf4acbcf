"""Domain objects to JSON shapes: minor units become decimal strings in the account's currency."""

from __future__ import annotations

import dataclasses

from api.models import AccountView, CommandStatus, EventView
from core.events import Event
from core.ledger import AccountState, CommandOutcome
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


def account_view(state: AccountState) -> AccountView:
    def money(minor: int) -> str:
        return format_amount(minor, state.currency)

    return AccountView(account_id=state.account_id, customer_id=state.customer_id, currency=state.currency,
                       balance=money(state.balance), available_balance=money(state.available_balance),
                       overdraft_limit=money(state.overdraft_limit), status=state.status, version=state.sequence)
