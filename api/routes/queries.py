"""Queries, served by the read models only (PostgreSQL, Redis, MongoDB); the command side serves none.

Every response says which read model answered and how fresh it is (Bank-Read-Model, Bank-Read-Position,
Bank-Read-Lag); `?min_position=` waits until the model reflects a command the caller just issued.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Mapping
import time
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from api.csv_export import csv_line, csv_response
from api.deps import FreshnessDep, PlatformDep, ViewDep, utc_moment
from api.ibans import parse_iban, unknown_iban
from api.models import AccountView, ActivityPage, AuditPage, CustomerAccounts, Statement, TransactionPage, TransactionView
from api.presenters import account_from_row, activity_entry, audit_entry, transaction_from_row
from api.openapi import CSV
from api.problems import PROBLEM_JSON, Problem
from api.readmodels import POLL_S, AuditFilter, TransactionFilter
from core.money import MoneyError, format_amount, parse_amount
from core.readmodel import Positions, PostingType, reached

router = APIRouter(prefix="/v1", tags=["queries"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"content": {PROBLEM_JSON: {}}}}
_INVALID: dict[int | str, dict[str, Any]] = {422: {"description": "not a valid IBAN (invalid_iban)",
                                                   "content": {PROBLEM_JSON: {}}}}
_CSV_COLUMNS = tuple(TransactionView.model_fields)
MAX_PAGE = 500
# How long an account read waits for Redis to reach `min_position` before asking PostgreSQL instead.
REDIS_PATIENCE_S = 1.0

# Dates: a bare date means midnight UTC; a datetime without a zone is taken as UTC.
Since = Annotated[datetime | date | None, Query(alias="from", description="inclusive, ISO 8601 date or datetime")]
Until = Annotated[datetime | date | None, Query(alias="to", description="exclusive, ISO 8601 date or datetime")]
Types = Annotated[list[PostingType] | None, Query(alias="type", description="repeat to match several")]
Amount = Annotated[str | None, Query(description="decimal string; compared with the absolute amount",
                                     examples=["10.00"])]
Text = Annotated[str | None, Query(alias="q", max_length=140, description="text contained in the reference")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def _unknown_account(account_id: str) -> Problem:
    return Problem(404, "Unknown account", f"account {account_id} does not exist", "unknown_account")


async def _account_view(platform: PlatformDep, row: Mapping[str, Any], positions: Positions) -> AccountView:
    """The account with its number and IBAN. They come from the API's ledger view; should a read model be ahead
    of it (it shows an account the view has not read the opening of yet), wait for the view to read as far."""
    view, account_id = platform.view, str(row["account_id"])
    if account_id not in view.account_numbers:
        await view.reach(positions, platform.settings.read_your_writes_timeout.total_seconds())
    return account_from_row(row, view.iban_of(account_id))


# ---------------------------------------------------------------- accounts


@router.get("/accounts/{account_id}", response_model=AccountView, responses=_NOT_FOUND,
            summary="An account's balance and status")
async def get_account(account_id: str, platform: PlatformDep, fresh: FreshnessDep, response: Response) -> AccountView:
    """From Redis; from PostgreSQL when Redis does not have it, stays behind `min_position`, or is down."""
    patience = time.monotonic() + REDIS_PATIENCE_S
    while True:
        try:
            cached, positions = await platform.reads.cached_account(account_id)
        except RedisError:  # the cache is a convenience: PostgreSQL has the same answer
            cached, positions = None, {}
        if cached is not None and reached(positions, fresh.wanted):
            fresh.label(response, "redis", positions)
            return await _account_view(platform, cached, positions)
        if cached is None or time.monotonic() > patience:
            break
        await asyncio.sleep(POLL_S)
    positions = await fresh.ensure("postgres")
    row = await platform.reads.account(account_id)
    if row is None:
        raise _unknown_account(account_id)
    fresh.label(response, "postgres", positions)
    return await _account_view(platform, row, positions)


@router.get("/customers/{customer_id}/accounts", response_model=CustomerAccounts, summary="A customer's accounts")
async def customer_accounts(customer_id: str, platform: PlatformDep, fresh: FreshnessDep,
                            response: Response) -> CustomerAccounts:
    positions = await fresh.ensure("postgres")
    rows = await platform.reads.customer_accounts(customer_id)
    fresh.label(response, "postgres", positions)
    return CustomerAccounts(customer_id=customer_id,
                            accounts=[await _account_view(platform, row, positions) for row in rows])


@router.get("/accounts/by-iban/{iban}", response_model=AccountView, responses=_NOT_FOUND | _INVALID,
            summary="The account of one of the bank's IBANs (customers: their own)")
async def account_by_iban(iban: Annotated[str, Path(max_length=50, examples=["DE40100900996230718170"])],
                          platform: PlatformDep, view: ViewDep, fresh: FreshnessDep,
                          response: Response) -> AccountView:
    """422 for text that is not a valid IBAN; 404 for an IBAN of no account of this bank (another bank's
    included: this bank keeps no other bank's accounts)."""
    account = view.account_for_iban(parse_iban(view, iban))
    if account is None:
        raise unknown_iban(iban)
    return await get_account(account.account_id, platform, fresh, response)


# ---------------------------------------------------------------- transactions


async def _filter(platform: PlatformDep, account_id: str, since: Since, until: Until, types: Types,
                  min_amount: Amount, max_amount: Amount, text: Text) -> TransactionFilter:
    """The filter, with amounts in the account's currency; 404 for an unknown account."""
    account = await platform.reads.account(account_id)
    if account is None:
        raise _unknown_account(account_id)
    currency = account["currency"]

    def minor(name: str, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            return parse_amount(value, currency, allow_zero=True)
        except MoneyError as error:
            raise Problem(422, "Invalid amount filter", f"{name}: {error.detail}", error.reason) from None

    return TransactionFilter(since=utc_moment(since), until=utc_moment(until), types=list(types or []),
                             min_amount=minor("min_amount", min_amount), max_amount=minor("max_amount", max_amount),
                             text=text or None)


def _encode_cursor(sequence: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": sequence}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        before = data["before"]
        if not isinstance(before, int) or isinstance(before, bool):
            raise ValueError
        return before
    except (ValueError, KeyError, TypeError):
        raise Problem(400, "Invalid cursor", "cursor is not one this API returned", "invalid_cursor") from None


@router.get("/accounts/{account_id}/transactions", response_model=TransactionPage, responses=_NOT_FOUND,
            summary="An account's postings, newest first")
async def transactions(account_id: str, platform: PlatformDep, fresh: FreshnessDep, response: Response,
                       since: Since = None, until: Until = None, types: Types = None, min_amount: Amount = None,
                       max_amount: Amount = None, text: Text = None, limit: Limit = 50,
                       cursor: Cursor = None) -> TransactionPage:
    positions = await fresh.ensure("postgres")
    where = await _filter(platform, account_id, since, until, types, min_amount, max_amount, text)
    before = _decode_cursor(cursor) if cursor else None
    rows = await platform.reads.transactions(account_id, where, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    fresh.label(response, "postgres", positions)
    return TransactionPage(account_id=account_id, items=[transaction_from_row(r) for r in rows],
                           next_cursor=_encode_cursor(rows[-1]["sequence"]) if more else None)


@router.get("/accounts/{account_id}/transactions.csv", response_class=StreamingResponse, responses=_NOT_FOUND | CSV,
            summary="The same postings as CSV, streamed (same filters, no paging)")
async def transactions_csv(account_id: str, platform: PlatformDep, fresh: FreshnessDep, since: Since = None,
                           until: Until = None, types: Types = None, min_amount: Amount = None,
                           max_amount: Amount = None, text: Text = None) -> StreamingResponse:
    positions = await fresh.ensure("postgres")
    where = await _filter(platform, account_id, since, until, types, min_amount, max_amount, text)

    async def lines() -> AsyncIterator[str]:
        yield csv_line(_CSV_COLUMNS)
        async for row in platform.reads.stream_transactions(account_id, where):
            view = transaction_from_row(row).model_dump(mode="json")
            yield csv_line(view[c] for c in _CSV_COLUMNS)

    return csv_response(lines(), f"{account_id}-transactions.csv", fresh.headers("postgres", positions))


# ---------------------------------------------------------------- statements

_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")   # ASCII digits ([0-9], not \d)

Month = Annotated[str, Path(examples=["2026-11"], json_schema_extra={"pattern": _MONTH.pattern})]


@router.get("/accounts/{account_id}/statements/{month}", response_model=Statement, responses=_NOT_FOUND,
            summary="A monthly statement: opening balance, postings, closing balance (UTC months)")
async def statement(account_id: str, month: Month, platform: PlatformDep,
                    fresh: FreshnessDep, response: Response) -> Statement:
    match = _MONTH.fullmatch(month)   # fullmatch: `$` alone lets "2026-11\n" through
    if match is None:
        raise Problem(422, "Invalid month", f"{month!r} is not a month in the form YYYY-MM", "invalid_month")
    year, number = int(match[1]), int(match[2])
    try:
        start = datetime(year, number, 1, tzinfo=UTC)
        end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    except ValueError:   # year 0000, or 9999-12 (its end is in year 10000): outside Python's datetimes
        raise Problem(422, "Invalid month", f"{month!r} is outside the months 0001-01 to 9999-11 this API can "
                      "represent", "invalid_month") from None
    positions = await fresh.ensure("postgres")
    account = await platform.reads.account(account_id)
    if account is None:
        raise _unknown_account(account_id)
    before, rows = await platform.reads.statement(account_id, start, end)
    currency = account["currency"]
    opening = before["balance_after"] if before else 0
    closing = rows[-1]["balance_after"] if rows else opening
    credits = sum(r["amount"] for r in rows if r["amount"] > 0)
    debits = sum(r["amount"] for r in rows if r["amount"] < 0)
    fresh.label(response, "postgres", positions)

    def money(minor: int) -> str:
        return format_amount(minor, currency)

    return Statement(account_id=account_id, currency=currency, month=month, period_start=start, period_end=end,
                     opening_balance=money(opening), total_credits=money(credits), total_debits=money(debits),
                     closing_balance=money(closing), postings=[transaction_from_row(r) for r in rows])


# ---------------------------------------------------------------- audit


def _encode_time_cursor(doc: dict[str, Any]) -> str:
    raw = json.dumps({"at": doc["occurred_at"].isoformat(), "id": doc["_id"]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return utc_moment(datetime.fromisoformat(data["at"])), str(data["id"])  # type: ignore[return-value]
    except (ValueError, KeyError, TypeError):
        raise Problem(400, "Invalid cursor", "cursor is not one this API returned", "invalid_cursor") from None


@router.get("/audit", response_model=AuditPage, summary="Every event as recorded, newest first (MongoDB)")
async def audit(platform: PlatformDep, fresh: FreshnessDep, response: Response, account_id: str | None = None,
                customer_id: str | None = None,
                types: Annotated[list[str] | None, Query(alias="type", description="event type, e.g. "
                                                         "FundsDeposited; repeat to match several")] = None,
                since: Since = None, until: Until = None, limit: Limit = 100, cursor: Cursor = None) -> AuditPage:
    positions = await fresh.ensure("mongo")
    where = AuditFilter(account_id=account_id, customer_id=customer_id, types=list(types or []),
                        since=utc_moment(since), until=utc_moment(until))
    after = _decode_time_cursor(cursor) if cursor else None
    docs = await platform.reads.audit(where, after, limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    fresh.label(response, "mongo", positions)
    return AuditPage(items=[audit_entry(d) for d in docs],
                     next_cursor=_encode_time_cursor(docs[-1]) if more else None)


@router.get("/customers/{customer_id}/timeline", response_model=ActivityPage,
            summary="A customer's activity across all their accounts, newest first (MongoDB)")
async def timeline(customer_id: str, platform: PlatformDep, view: ViewDep, fresh: FreshnessDep, response: Response,
                   since: Since = None, until: Until = None, limit: Limit = 50, cursor: Cursor = None) -> ActivityPage:
    positions = await fresh.ensure("mongo")
    after = _decode_time_cursor(cursor) if cursor else None
    docs = await platform.reads.timeline(customer_id, AuditFilter(since=utc_moment(since), until=utc_moment(until)), after,
                                         limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    fresh.label(response, "mongo", positions)
    return ActivityPage(customer_id=customer_id, items=[activity_entry(d, view.account_numbers) for d in docs],
                        next_cursor=_encode_time_cursor(docs[-1]) if more else None)
