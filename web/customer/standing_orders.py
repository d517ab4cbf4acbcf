"""Standing orders: payments that happen by themselves, once on a date or every day, week, month or year, to one of
the customer's own accounts or to a payee at this bank. The list shows each order's next payment; an order's page
its next runs and every payment so far, with pause, resume, a new amount (from the next run) and cancel.

Dates are the bank's: the earliest start date is the API's business date (GET /v1/standing-orders `today`), which
tests and the demo may move forward; a monthly order on the 29th–31st pays on a shorter month's last day.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.client import Api, ApiError
from web.customer.accounts import account_label, customer_accounts
from web.deps import CustomerApi
from web.templating import render

router = APIRouter(prefix="/standing-orders")

FREQUENCIES = [("monthly", "Every month"), ("weekly", "Every week"), ("daily", "Every day"),
               ("yearly", "Every year"), ("once", "Once, on the start date")]
FREQUENCY_NAMES = dict(FREQUENCIES)
STATUS_BADGES = {"active": ("ok", "Active"), "paused": ("warning", "Paused"), "cancelled": ("", "Cancelled")}
OCCURRENCE_TEXT = {"submitted": "Sent", "paid": "Paid", "retry_pending": "Not enough money: we try again later "
                   "today", "failed": "Not paid: not enough money", "skipped": "Skipped", "reversed": "Returned"}
FIELDS = ("from_account_id", "destination", "amount", "reference", "frequency", "start_date", "end_date", "count")
REASON_FIELDS = {"start_in_the_past": "start_date", "date_too_far": "start_date", "invalid_schedule": "frequency",
                 "same_account": "destination", "currency_mismatch": "destination", "unknown_payee": "destination",
                 "external_iban": "destination", "unknown_account": "destination"}


async def _choices(api: Api) -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[tuple[str, str]]]:
    """The customer's open accounts (to pay from), and where an order may pay: their accounts, their payees here."""
    accounts = [a for a in await customer_accounts(api) if a.get("status", "open") == "open"]
    payees = [p for p in (await api.get("/v1/payees")).get("payees", []) if p.get("internal")]
    sources = [(a["account_id"], account_label(a)) for a in accounts]
    destinations = [(f"account:{a['account_id']}", f"My {account_label(a)}") for a in accounts]
    destinations += [(f"payee:{p['payee_id']}", f"{p['name']} ({p['iban_formatted']})") for p in payees]
    return accounts, sources, destinations


async def _list(request: Request, api: Api, status: int = 200, form: dict[str, str] | None = None,
                errors: dict[str, list[str]] | None = None) -> HTMLResponse:
    found = await api.get("/v1/standing-orders")
    accounts, sources, destinations = await _choices(api)
    labels = {a["account_id"]: account_label(a) for a in accounts}
    defaults = {"frequency": "monthly", "start_date": str(found["today"]), "key": str(uuid.uuid4())}
    return render(request, "customer/standing_orders.html", status, orders=found["standing_orders"],
                  today=found["today"], time_zone=found["time_zone"], sources=sources, destinations=destinations,
                  frequencies=FREQUENCIES, frequency_names=FREQUENCY_NAMES, badges=STATUS_BADGES, labels=labels,
                  form=defaults | (form or {}), errors=errors or {})


@router.get("", response_class=HTMLResponse)
async def standing_orders(request: Request, api: CustomerApi) -> HTMLResponse:
    return await _list(request, api)


def order_body(form: dict[str, str], currencies: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The API's NewStandingOrder from the form, or the form's own errors (blank fields, an unknown account)."""
    errors: dict[str, list[str]] = {}
    currency = currencies.get(form.get("from_account_id", ""))
    if currency is None:
        errors["from_account_id"] = ["Choose the account to pay from."]
    kind, _, target = form.get("destination", "").partition(":")
    if kind not in ("account", "payee") or not target:
        errors["destination"] = ["Choose who to pay."]
    if not form.get("amount", "").strip():
        errors["amount"] = ["Enter the amount of each payment."]
    if not form.get("start_date", "").strip():
        errors["start_date"] = ["Enter the date of the first payment."]
    count = form.get("count", "").strip()
    if count and not count.isdigit():
        errors["count"] = ["Enter a whole number of payments, or leave it empty."]
    body: dict[str, Any] = {
        "from_account_id": form.get("from_account_id", ""), "amount": form.get("amount", "").strip(),
        "currency": currency, "frequency": form.get("frequency", "monthly"),
        "start_date": form.get("start_date", "").strip(),
        ("to_account_id" if kind == "account" else "payee_id"): target}
    if reference := form.get("reference", "").strip():
        body["reference"] = reference
    if end_date := form.get("end_date", "").strip():
        body["end_date"] = end_date
    if count:
        body["count"] = int(count) if count.isdigit() else count
    return body, errors


@router.post("", response_class=HTMLResponse)
async def create(request: Request, api: CustomerApi) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items()}
    accounts, _, _ = await _choices(api)
    body, errors = order_body(form, {a["account_id"]: a["currency"] for a in accounts})
    if errors:
        return await _list(request, api, 422, form, errors)
    try:
        # the form's key: a double-submitted form finds the order the first submission made
        order = await api.post("/v1/standing-orders", body, idempotency_key=form.get("key") or None)
    except ApiError as error:
        if error.status >= 500:
            raise
        field = error.field()
        if field not in FIELDS:
            field = REASON_FIELDS.get(error.reason, "amount")
        field = "destination" if field in ("to_account_id", "payee_id") else field
        return await _list(request, api, 422, form, {field: error.messages()})
    api.session.flash("The standing order is set up.", "success")
    return RedirectResponse(f"/app/standing-orders/{order['order_id']}", status_code=303)


async def _order_page(request: Request, api: Api, order_id: str, status: int = 200,
                      errors: dict[str, list[str]] | None = None, amount: str | None = None) -> HTMLResponse:
    order = await api.get(f"/v1/standing-orders/{order_id}")
    accounts = await customer_accounts(api)
    labels = {a["account_id"]: account_label(a) for a in accounts}
    return render(request, "customer/standing_order.html", status, order=order, labels=labels,
                  frequency_names=FREQUENCY_NAMES, badges=STATUS_BADGES, occurrence_text=OCCURRENCE_TEXT,
                  form={"amount": order["amount"] if amount is None else amount}, errors=errors or {})


@router.get("/{order_id}", response_class=HTMLResponse)
async def standing_order(request: Request, order_id: str, api: CustomerApi) -> HTMLResponse:
    return await _order_page(request, api, order_id)


@router.post("/{order_id}", response_class=HTMLResponse)
async def change_amount(request: Request, order_id: str, api: CustomerApi,
                        amount: Annotated[str, Form()] = "") -> Response:
    if not amount.strip():
        return await _order_page(request, api, order_id, 422, {"amount": ["Enter the new amount."]}, amount)
    try:
        await api.patch(f"/v1/standing-orders/{order_id}", {"amount": amount.strip()})
    except ApiError as error:
        if error.status >= 500 or error.status == 404:
            raise
        return await _order_page(request, api, order_id, 422, {"amount": error.messages()}, amount)
    api.session.flash("The new amount applies from the next payment.", "success")
    return RedirectResponse(f"/app/standing-orders/{order_id}", status_code=303)


@router.post("/{order_id}/status")
async def pause_or_resume(order_id: str, api: CustomerApi, status: Annotated[str, Form()] = "") -> Response:
    if status not in ("active", "paused"):
        status = "paused"
    await api.patch(f"/v1/standing-orders/{order_id}", {"status": status})
    api.session.flash("The standing order is paused: nothing is paid until you resume it." if status == "paused"
                      else "The standing order is running again.", "success")
    return RedirectResponse(f"/app/standing-orders/{order_id}", status_code=303)


@router.post("/{order_id}/cancel")
async def cancel(order_id: str, api: CustomerApi) -> Response:
    await api.delete(f"/v1/standing-orders/{order_id}")
    api.session.flash("The standing order is cancelled. What was paid stays paid.", "success")
    return RedirectResponse(f"/app/standing-orders/{order_id}", status_code=303)
