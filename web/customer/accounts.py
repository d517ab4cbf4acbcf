"""The customer's accounts: the dashboard (balances, recent activity, opening an account), an account's page (with
its balance over time and its savings interest, or a product to start earning one), its transaction history (filters, search, pages, CSV export) and its monthly statements
(printable). Every number on these pages is the API's: nothing is added up here.

Another customer's account id gets the API's 404, and so the same "Page not found" as an id that does not exist.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web import savings
from web.charts import balance_chart, balance_points
from web.client import Api, ApiError
from web.deps import CustomerApi
from web.forms import field_errors
from web.templating import render

router = APIRouter()

RECENT_ACTIVITY = 8
HISTORY_PAGE = 25
CHART_POSTINGS = 200
STATEMENT_MONTHS = 12
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY")
POSTING_TYPES = [("", "All types"), ("deposit", "Deposits"), ("withdrawal", "Withdrawals"),
                 ("transfer_in", "Transfers in"), ("transfer_out", "Transfers out"),
                 ("transfer_reversal", "Transfers returned")]
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


async def customer_accounts(api: Api) -> list[dict[str, Any]]:
    """The signed-in customer's accounts (the API's answer for their own customer id)."""
    auth = api.session.auth
    assert auth is not None and auth.customer_id is not None
    body = await api.get(f"/v1/customers/{auth.customer_id}/accounts")
    return list(body.get("accounts", []))


def account_label(account: dict[str, Any]) -> str:
    """How an account is named on the pages: its currency and the last four characters of its IBAN."""
    iban = account.get("iban") or account.get("account_id", "")
    return f"{account.get('currency', '')} account ···{iban[-4:]}"


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, api: CustomerApi) -> HTMLResponse:
    return await _dashboard(request, api)


async def _dashboard(request: Request, api: Api, status: int = 200, **context: Any) -> HTMLResponse:
    auth = api.session.auth
    assert auth is not None
    accounts = await customer_accounts(api)
    activity = (await api.get(f"/v1/customers/{auth.customer_id}/timeline", limit=RECENT_ACTIVITY)).get("items", [])
    return render(request, "customer/dashboard.html", status, accounts=accounts, activity=activity,
                  names={account["account_id"]: account_label(account) for account in accounts},
                  currencies=[(code, code) for code in CURRENCIES], idempotency_key=str(uuid.uuid4()), **context)


@router.post("/accounts", response_class=HTMLResponse)
async def open_account(request: Request, api: CustomerApi, currency: Annotated[str, Form()] = "EUR",
                       idempotency_key: Annotated[str, Form()] = "") -> Response:
    """A customer opens an account for themselves (the API's open_account; an overdraft is the bank's to grant)."""
    try:
        opened = await api.post("/v1/accounts", {"currency": currency}, command=True,
                                idempotency_key=idempotency_key or None)
    except ApiError as error:
        return await _dashboard(request, api, 422, errors=field_errors(error, ("currency",), "currency"))
    api.session.flash(f"Your new {currency} account is open.", "success")
    return RedirectResponse(f"/app/accounts/{opened['account_id']}", status_code=303)


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
async def account_page(request: Request, account_id: str, api: CustomerApi) -> HTMLResponse:
    return await _account_page(request, api, account_id)


async def _account_page(request: Request, api: Api, account_id: str, status: int = 200,
                        errors: dict[str, list[str]] | None = None,
                        form: dict[str, str] | None = None) -> HTMLResponse:
    account = await api.get(f"/v1/accounts/{account_id}")   # another customer's: the API's 404, our 404 page
    postings = (await api.get(f"/v1/accounts/{account_id}/transactions", limit=CHART_POSTINGS)).get("items", [])
    chart = balance_chart(balance_points(postings, account["balance"], datetime.now(UTC)), account["currency"])
    interest, products = await _savings(api, account)
    return render(request, "customer/account.html", status, account=account, title=account_label(account),
                  transactions=postings[:10], chart=chart, interest=interest, month_name=month_name,
                  savings_options=[("", "Choose a savings product")] + [
                      (p["product_id"], savings.product_summary(p)) for p in products],
                  savings_form=form or {}, errors=errors or {})


async def _savings(api: Api, account: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The interest the account earns, or (not enrolled, open) the products it may start earning. Savings not
    ready in the API (503 while it starts): neither, and the rest of the page as usual."""
    try:
        return await api.get(f"/v1/accounts/{account['account_id']}/interest"), []
    except ApiError as error:
        if error.reason not in ("not_a_savings_account", "not_ready"):
            raise
        if error.reason == "not_ready" or account.get("status", "open") != "open":
            return None, []
    try:
        offered = (await api.get("/v1/savings-products"))["products"]
    except ApiError as error:
        if error.reason != "not_ready":
            raise
        return None, []
    return None, savings.products_in(offered, account["currency"])


@router.post("/accounts/{account_id}/savings", response_class=HTMLResponse)
async def earn_interest(request: Request, account_id: str, api: CustomerApi,
                        product_id: Annotated[str, Form()] = "") -> Response:
    """The account starts earning a savings product's interest from today (the API's enrol_savings)."""
    form = {"product_id": product_id}
    if not product_id:
        return await _account_page(request, api, account_id, 422, {"product_id": ["Choose a savings product."]}, form)
    try:
        interest = await api.post(f"/v1/accounts/{account_id}/savings", {"product_id": product_id})
    except ApiError as error:
        if (error.status in (403, 404) and error.reason != "unknown_savings_product") or error.status >= 500:
            raise
        return await _account_page(request, api, account_id, 422, savings.enrolment_refusal(error), form)
    api.session.flash(f"Your account earns {interest['annual_rate_percent']}% a year from today, credited after "
                      "each month's end.", "success")
    return RedirectResponse(f"/app/accounts/{account_id}#interest-heading", status_code=303)


def _history_filters(since: str | None, until: str | None, kind: str | None, min_amount: str | None,
                     max_amount: str | None, q: str | None) -> dict[str, str]:
    raw = {"from": since, "to": until, "type": kind, "min_amount": min_amount, "max_amount": max_amount, "q": q}
    return {key: value.strip() for key, value in raw.items() if value and value.strip()}


@router.get("/accounts/{account_id}/transactions", response_class=HTMLResponse)
async def history(request: Request, account_id: str, api: CustomerApi,
                  since: Annotated[str | None, Query(alias="from")] = None,
                  until: Annotated[str | None, Query(alias="to")] = None,
                  kind: Annotated[str | None, Query(alias="type")] = None,
                  min_amount: str | None = None, max_amount: str | None = None, q: str | None = None,
                  cursor: str | None = None) -> HTMLResponse:
    account = await api.get(f"/v1/accounts/{account_id}")
    filters = _history_filters(since, until, kind, min_amount, max_amount, q)
    errors: dict[str, list[str]] = {}
    items: list[dict[str, Any]] = []
    next_cursor = None
    try:
        page = await api.get(f"/v1/accounts/{account_id}/transactions", limit=HISTORY_PAGE, cursor=cursor, **filters)
        items, next_cursor = page.get("items", []), page.get("next_cursor")
    except ApiError as error:
        if error.status != 422:
            raise
        errors = field_errors(error, ("from", "to", "type", "min_amount", "max_amount", "q"), "q")
    query = urlencode(filters)
    return render(request, "customer/history.html", 422 if errors else 200, account=account,
                  title=account_label(account), transactions=items, filters=filters, errors=errors,
                  types=POSTING_TYPES, next_url=(f"?{query}&" if query else "?") + urlencode({"cursor": next_cursor})
                  if next_cursor else None, first_url=f"?{query}" if cursor else None,
                  csv_url=f"/app/accounts/{account_id}/transactions.csv" + (f"?{query}" if query else ""))


@router.get("/accounts/{account_id}/transactions.csv")
async def history_csv(account_id: str, api: CustomerApi,
                      since: Annotated[str | None, Query(alias="from")] = None,
                      until: Annotated[str | None, Query(alias="to")] = None,
                      kind: Annotated[str | None, Query(alias="type")] = None,
                      min_amount: str | None = None, max_amount: str | None = None,
                      q: str | None = None) -> Response:
    """The API's CSV export (its formula-safe cells), passed on with the same filters."""
    filters = _history_filters(since, until, kind, min_amount, max_amount, q)
    response = await api.get_raw(f"/v1/accounts/{account_id}/transactions.csv", **filters)
    return Response(response.content, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="transactions-{account_id[:8]}.csv"'})


def recent_months(today: date, count: int = STATEMENT_MONTHS) -> list[str]:
    """This month and the ones before it, newest first, as YYYY-MM (UTC months, as the API's statements)."""
    months, year, month = [], today.year, today.month
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def month_name(month: str) -> str:
    return datetime.strptime(month, "%Y-%m").strftime("%B %Y")


@router.get("/accounts/{account_id}/statements", response_class=HTMLResponse)
async def statements(request: Request, account_id: str, api: CustomerApi) -> HTMLResponse:
    account = await api.get(f"/v1/accounts/{account_id}")
    months = [(month, month_name(month)) for month in recent_months(datetime.now(UTC).date())]
    return render(request, "customer/statements.html", account=account, title=account_label(account), months=months)


@router.get("/accounts/{account_id}/statements/{month}", response_class=HTMLResponse)
async def statement(request: Request, account_id: str, month: str, api: CustomerApi) -> HTMLResponse:
    if not MONTH.match(month):
        raise ApiError(404, {"title": "No such statement"})
    account = await api.get(f"/v1/accounts/{account_id}")
    body = await api.get(f"/v1/accounts/{account_id}/statements/{month}")
    return render(request, "customer/statement.html", account=account, title=account_label(account),
                  statement=body, month_name=month_name(month))
