"""The dashboard: the customer's accounts with their balances, and their recent activity across accounts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from web.client import Api
from web.deps import CustomerApi
from web.templating import render

router = APIRouter()

RECENT_ACTIVITY = 8


async def customer_accounts(api: Api) -> list[dict[str, Any]]:
    """The signed-in customer's accounts (the API's answer for their own customer id)."""
    auth = api.session.auth
    assert auth is not None and auth.customer_id is not None
    body = await api.get(f"/v1/customers/{auth.customer_id}/accounts")
    return list(body.get("accounts", []))


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, api: CustomerApi) -> HTMLResponse:
    auth = api.session.auth
    assert auth is not None
    accounts = await customer_accounts(api)
    activity = (await api.get(f"/v1/customers/{auth.customer_id}/timeline", limit=RECENT_ACTIVITY)).get("items", [])
    return render(request, "customer/dashboard.html", accounts=accounts, activity=activity,
                  names={account["account_id"]: account_label(account) for account in accounts})


def account_label(account: dict[str, Any]) -> str:
    """How an account is named on the pages: its currency and the last four digits of its IBAN."""
    iban = account.get("iban") or account.get("account_id", "")
    return f"{account.get('currency', '')} account ···{iban[-4:]}"


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
async def account_page(request: Request, account_id: str, api: CustomerApi) -> HTMLResponse:
    account = await api.get(f"/v1/accounts/{account_id}")   # another customer's: the API's 404, our 404 page
    page = await api.get(f"/v1/accounts/{account_id}/transactions", limit=10)
    return render(request, "customer/account.html", account=account, name=account_label(account),
                  transactions=page.get("items", []))
