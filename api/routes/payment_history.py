"""The payment history (issue 16 point 6): `GET /v1/payments` and `GET /v1/payments.csv` list every outbound
payment to another bank and every standing-order payment, newest first, each with its confirmation number and its
state now. Filters: status, type, account, payee, from/to; cursor pages.

Both sources are folds the API already keeps (the ledger view's payments, the standing-order book), merged by
core.payment_history: nothing is read from a database. A customer sees their own; staff name a customer
(`?customer_id=`) or see every customer's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.authz import unknown_account, unknown_customer, unknown_payee
from api.csv_export import csv_line, csv_response
from api.deps import Platform, PlatformDep, ViewDep
from api.ibans import parse_iban
from api.ledger_view import LedgerView
from api.openapi import CSV
from api.problems import PROBLEM_JSON, Problem
from api.routes.auth import caller
from api.routes.standing_orders import _ready as standing_orders_ready
from core.money import format_amount
from core.payment_history import (CursorError, HistoryEntry, HistoryFilter, PaymentType, external_entry, page,
                                  standing_order_entries)

router = APIRouter(prefix="/v1", tags=["payments"])
_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
_RESPONSES: dict[int | str, dict[str, object]] = {404: _PROBLEMS, 422: _PROBLEMS, 503: _PROBLEMS}
CSV_LIMIT = 10_000
CSV_COLUMNS = ("created_at", "confirmation", "type", "status", "from_account_id", "amount", "currency",
               "to_account_id", "creditor_name", "creditor_iban", "reference", "reason", "payment_id",
               "standing_order_id")


class PaymentHistoryItem(BaseModel):
    payment_id: str = Field(description="the payment's id, or the standing-order occurrence's")
    confirmation: str = Field(description="a confirmation number to quote: the same payment always has the same one")
    type: PaymentType
    status: str = Field(description="external: pending, sent, settled, returned; standing order: submitted, paid, "
                                    "retry_pending, failed, skipped, reversed")
    from_account_id: str
    amount: str
    currency: str
    to_account_id: str | None = Field(description="an account of this bank (standing orders)")
    creditor_name: str | None = Field(description="another bank's account holder (external payments)")
    creditor_iban: str | None
    reference: str | None
    reason: str | None = Field(description="why it was returned, failed or skipped, in words")
    standing_order_id: str | None
    created_at: datetime = Field(description="when the ledger took it (external) or when it fell due (standing order)")


class PaymentHistory(BaseModel):
    items: list[PaymentHistoryItem] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page; null: no more")


def _item(entry: HistoryEntry) -> PaymentHistoryItem:
    return PaymentHistoryItem(
        payment_id=entry.payment_id, confirmation=entry.confirmation, type=entry.type, status=entry.status,
        from_account_id=entry.account_id, amount=format_amount(entry.amount, entry.currency),
        currency=entry.currency, to_account_id=entry.to_account_id, creditor_name=entry.creditor_name,
        creditor_iban=entry.creditor_iban, reference=entry.reference, reason=entry.reason,
        standing_order_id=entry.standing_order_id, created_at=entry.created_at)


def _whose(customer_id: str | None) -> str | None:
    """The customer whose history is asked for: a customer's own (another's is 404); staff: whom they name, or all."""
    principal = caller()
    if principal.role != "customer":
        return customer_id
    if customer_id is not None and customer_id != principal.customer_id:
        raise unknown_customer(customer_id)
    return principal.customer_id


def _entries(platform: Platform, view: LedgerView, customer_id: str | None) -> list[HistoryEntry]:
    standing_orders_ready(platform)
    book = platform.standing_orders.orders
    orders = book.of_customer(customer_id) if customer_id is not None else list(book.orders.values())
    entries = [entry for order in orders for entry in standing_order_entries(order)]
    for record in list(view.payments.values()):
        account = view.accounts.get(record.account_id)
        if customer_id is None or (account is not None and account.customer_id == customer_id):
            entries.append(external_entry(record))
    return entries


async def _filter(platform: Platform, view: LedgerView, customer_id: str | None, status: str | None,
                  payment_type: PaymentType | None, account_id: str | None, payee_id: str | None,
                  since: datetime | None, until: datetime | None) -> HistoryFilter:
    accounts = None
    if account_id is not None:
        account = view.accounts.get(account_id)
        if account is None or (customer_id is not None and account.customer_id != customer_id):
            raise unknown_account(account_id)
        accounts = frozenset({account_id})
    to_account_id = creditor_iban = None
    if payee_id is not None:
        payee = await platform.payees.get(payee_id, customer_id)
        if payee is None:
            raise unknown_payee(payee_id)
        iban = parse_iban(view, payee.iban)
        ours = view.account_for_iban(iban) if view.numbering.is_ours(iban) else None
        to_account_id, creditor_iban = (ours.account_id, None) if ours is not None else (None, iban.machine)
    for name, moment in (("from", since), ("to", until)):
        if moment is not None and moment.tzinfo is None:
            raise Problem(422, "Invalid request", f"{name}: a moment with its UTC offset", "naive_datetime",
                          errors=[{"loc": ["query", name], "type": "naive_datetime", "msg": "needs an offset"}])
    return HistoryFilter(status=status, type=payment_type, account_ids=accounts, to_account_id=to_account_id,
                         creditor_iban=creditor_iban, since=since, until=until)


Status = Annotated[str | None, Query(max_length=20, description="only payments in this state")]
Type = Annotated[PaymentType | None, Query(alias="type", description="external or standing_order")]
AccountId = Annotated[str | None, Query(max_length=100, description="only payments from this account")]
PayeeId = Annotated[str | None, Query(max_length=100, description="only payments to this payee")]
Since = Annotated[datetime | None, Query(alias="from", description="from this moment (inclusive)")]
Until = Annotated[datetime | None, Query(alias="to", description="before this moment (exclusive)")]
CustomerId = Annotated[str | None, Query(max_length=64, description="staff: whose (default: every customer's)")]


@router.get("/payments", response_model=PaymentHistory, name="list_payments", responses=_RESPONSES,
            summary="Payment history: payments to other banks and standing-order payments, newest first")
async def list_payments(platform: PlatformDep, view: ViewDep, status: Status = None, payment_type: Type = None,
                        account_id: AccountId = None, payee_id: PayeeId = None, since: Since = None,
                        until: Until = None, customer_id: CustomerId = None,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50,
                        cursor: Annotated[str | None, Query(max_length=200)] = None) -> PaymentHistory:
    whose = _whose(customer_id)
    where = await _filter(platform, view, whose, status, payment_type, account_id, payee_id, since, until)
    try:
        shown, next_cursor = page(_entries(platform, view, whose), where, limit, cursor)
    except CursorError as error:
        raise Problem(422, "Invalid cursor", str(error), "invalid_cursor",
                      errors=[{"loc": ["query", "cursor"], "type": "invalid_cursor", "msg": str(error)}]) from None
    return PaymentHistory(items=[_item(entry) for entry in shown], next_cursor=next_cursor)


@router.get("/payments.csv", response_class=StreamingResponse, name="list_payments_csv", responses=_RESPONSES | CSV,
            summary="The payment history as CSV (the same filters; up to 10,000 rows, newest first)")
async def list_payments_csv(platform: PlatformDep, view: ViewDep, status: Status = None, payment_type: Type = None,
                            account_id: AccountId = None, payee_id: PayeeId = None, since: Since = None,
                            until: Until = None, customer_id: CustomerId = None) -> StreamingResponse:
    whose = _whose(customer_id)
    where = await _filter(platform, view, whose, status, payment_type, account_id, payee_id, since, until)
    shown, _ = page(_entries(platform, view, whose), where, CSV_LIMIT)

    async def lines() -> AsyncIterator[str]:
        yield csv_line(CSV_COLUMNS)
        for entry in shown:
            item = _item(entry)
            yield csv_line([item.created_at.isoformat(), *(getattr(item, name) for name in CSV_COLUMNS[1:])])

    return csv_response(lines(), "payments.csv", {})
