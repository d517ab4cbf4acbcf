"""Bills: pay a biller of the bank's directory with the reference on the bill. Like a transfer, through a review
page before any money moves (the reviewed payment kept in the session under its idempotency key, sent once); the
API checks the reference against the biller's format and check digit, and its refusal is shown next to the field.
The outcome is the transfer outcome page (a payment to another bank), with a printable receipt."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.client import Api, ApiError
from web.customer.accounts import account_label, customer_accounts
from web.deps import CustomerApi
from web.formatting import money
from web.forms import field_errors
from web.templating import render

router = APIRouter()

FIELDS = ("from_account_id", "biller_id", "reference", "amount")
PENDING_PREFIX = "bill:"
MAX_PENDING = 5


async def _form(request: Request, api: Api, status: int = 200, form: dict[str, str] | None = None,
                errors: dict[str, list[str]] | None = None) -> HTMLResponse:
    accounts = [a for a in await customer_accounts(api) if a["status"] == "open"]
    billers = (await api.get("/v1/billers"))["billers"]
    from_options = [("", "Choose an account")] + [
        (a["account_id"], f"{account_label(a)} · {money(a['available_balance'], a['currency'])} available")
        for a in accounts]
    biller_options = [("", "Choose who to pay")] + [(b["biller_id"], b["name"]) for b in billers]
    form = dict(form or {})
    if not form.get("from_account_id") and len(accounts) == 1:
        form["from_account_id"] = accounts[0]["account_id"]
    return render(request, "customer/bills.html", status, accounts=accounts, billers=billers,
                  from_options=from_options, biller_options=biller_options, form=form, errors=errors or {})


@router.get("/bills", response_class=HTMLResponse)
async def bills(request: Request, api: CustomerApi) -> HTMLResponse:
    return await _form(request, api)


@router.post("/bills/review", response_class=HTMLResponse)
async def review(request: Request, api: CustomerApi, from_account_id: Annotated[str, Form()] = "",
                 biller_id: Annotated[str, Form()] = "", reference: Annotated[str, Form()] = "",
                 amount: Annotated[str, Form()] = "") -> HTMLResponse:
    form = {"from_account_id": from_account_id, "biller_id": biller_id, "reference": reference, "amount": amount}
    needed = {"from_account_id": "Choose the account the money comes from.", "biller_id": "Choose who to pay.",
              "reference": "Enter the reference on your bill.", "amount": "Enter the amount."}
    errors = {name: [message] for name, message in needed.items() if not form[name].strip()}
    if errors:
        return await _form(request, api, 422, form, errors)
    source = await api.get(f"/v1/accounts/{from_account_id}")
    billers = {b["biller_id"]: b for b in (await api.get("/v1/billers"))["billers"]}
    if biller_id not in billers:
        return await _form(request, api, 422, form, {"biller_id": ["Choose who to pay."]})
    body = {"from_account_id": from_account_id, "biller_id": biller_id, "reference": reference.strip(),
            "amount": amount.strip(), "currency": source["currency"]}
    key = str(uuid.uuid4())
    api.session.keep_reviewed(PENDING_PREFIX, key, {"body": body, "form": form}, MAX_PENDING)
    return render(request, "customer/bill_review.html", key=key, body=body, biller=billers[biller_id],
                  from_label=account_label(source), source=source)


@router.post("/bills/change", response_class=HTMLResponse)
async def change(request: Request, api: CustomerApi, key: Annotated[str, Form()] = "") -> HTMLResponse:
    pending = api.session.data.pop(PENDING_PREFIX + key, None)
    return await _form(request, api, form=pending["form"] if pending else {})


@router.post("/bills/confirm", response_class=HTMLResponse)
async def confirm(request: Request, api: CustomerApi, key: Annotated[str, Form()] = "") -> Response:
    pending: dict[str, Any] | None = api.session.data.get(PENDING_PREFIX + key)
    if pending is None:
        api.session.flash("That bill was already paid or the review has expired. Check your payments before trying "
                          "again.", "warning")
        return RedirectResponse("/app/payments", status_code=303)
    try:
        outcome = await api.post("/v1/bill-payments", pending["body"], command=True, idempotency_key=key)
    except ApiError as error:
        if error.problem.get("command_id"):   # the ledger decided: the outcome page says what happened
            api.session.data.pop(PENDING_PREFIX + key, None)
            return RedirectResponse(f"/app/transfers/{error.problem['command_id']}", status_code=303)
        if error.status in (409, 503) or error.status >= 500:
            raise
        api.session.data.pop(PENDING_PREFIX + key, None)   # refused before the ledger: correct the form
        return await _form(request, api, 422, pending["form"], field_errors(error, FIELDS, default="reference"))
    api.session.data.pop(PENDING_PREFIX + key, None)
    return RedirectResponse(f"/app/transfers/{outcome['command_id']}", status_code=303)


@router.get("/payments/{payment_id}/receipt", response_class=HTMLResponse)
async def receipt(request: Request, payment_id: str, api: CustomerApi) -> HTMLResponse:
    """A printable receipt of a payment to another bank (a bill payment included), from the API's answer."""
    payment = await api.get(f"/v1/payments/{payment_id}")
    account = await api.get(f"/v1/accounts/{payment['from_account_id']}")
    return render(request, "customer/receipt.html", payment=payment, from_label=account_label(account))
