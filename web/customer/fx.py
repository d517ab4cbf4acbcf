"""Currency exchange: a quote from the API (rate, spread, both amounts, rounding, expiry), shown as it is, and
then, for a customer with an account in each currency, the exchange itself: a transfer between their own accounts
that executes the quote (POST /v1/transfers with its quote_id). The quote is the review, kept in the server-side
session; the API executes a quote once whatever Idempotency-Key a retry carries, so a double click or a retried
post exchanges once; an expired quote is told as such, with a way to get a new one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.client import Api, ApiError
from web.customer.accounts import account_label, customer_accounts
from web.customer.transfers import rejection_message
from web.deps import CustomerApi
from web.forms import field_errors
from web.templating import render

router = APIRouter(prefix="/fx")

CURRENCIES = [(code, code) for code in ("EUR", "USD", "GBP", "CHF", "JPY", "SEK", "NOK", "DKK", "PLN")]
SIDES = [("sell", "I sell this amount"), ("buy", "I buy this amount")]
FIELDS = ("sell_currency", "buy_currency", "amount", "side")
EXCHANGE_FIELDS = ("from_account_id", "to_account_id")
PENDING_PREFIX = "fx:"
MAX_PENDING = 5
EXPIRED = "This quote has expired, so nothing was exchanged. Get a new quote below."


@router.get("", response_class=HTMLResponse)
async def fx_page(request: Request, api: CustomerApi) -> HTMLResponse:
    return render(request, "customer/fx.html", currencies=CURRENCIES, sides=SIDES,
                  form={"sell_currency": "EUR", "buy_currency": "USD", "side": "sell"})


@router.post("", response_class=HTMLResponse)
async def quote(request: Request, api: CustomerApi, sell_currency: Annotated[str, Form()] = "EUR",
                buy_currency: Annotated[str, Form()] = "USD", amount: Annotated[str, Form()] = "",
                side: Annotated[str, Form()] = "sell") -> HTMLResponse:
    form = {"sell_currency": sell_currency, "buy_currency": buy_currency, "amount": amount, "side": side}
    if not amount.strip():
        return render(request, "customer/fx.html", 422, currencies=CURRENCIES, sides=SIDES, form=form,
                      errors={"amount": ["Enter an amount."]})
    try:
        body = await api.post("/v1/fx/quotes", {"sell_currency": sell_currency, "buy_currency": buy_currency,
                                                "amount": amount.strip(), "side": side})
    except ApiError as error:
        if error.status >= 500:
            raise
        return render(request, "customer/fx.html", 422, currencies=CURRENCIES, sides=SIDES, form=form,
                      errors=field_errors(error, FIELDS, default="amount"))
    api.session.keep_reviewed(PENDING_PREFIX, body["quote_id"], {"quote": body}, MAX_PENDING)
    return await _quoted(request, api, body, form)


async def _quoted(request: Request, api: Api, quote: dict[str, Any], form: dict[str, str], status: int = 200,
                  errors: dict[str, list[str]] | None = None) -> HTMLResponse:
    """The quote, and the exchange form when the customer has an open account in each of its currencies."""
    accounts = [a for a in await customer_accounts(api) if a.get("status") == "open"]
    sources = [(a["account_id"], account_label(a)) for a in accounts if a["currency"] == quote["sell_currency"]]
    targets = [(a["account_id"], account_label(a)) for a in accounts if a["currency"] == quote["buy_currency"]]
    return render(request, "customer/fx.html", status, currencies=CURRENCIES, sides=SIDES, form=form, quote=quote,
                  sources=sources, targets=targets, errors=errors or {})


@router.post("/exchange", response_class=HTMLResponse)
async def exchange(request: Request, api: CustomerApi, quote_id: Annotated[str, Form()] = "",
                   from_account_id: Annotated[str, Form()] = "",
                   to_account_id: Annotated[str, Form()] = "") -> Response:
    pending = api.session.data.get(PENDING_PREFIX + quote_id)
    if pending is None:
        api.session.flash("That exchange was already made or its quote is no longer here. Check your accounts "
                          "before trying again.", "warning")
        return RedirectResponse("/app/fx", status_code=303)
    quote = pending["quote"]
    form = {"sell_currency": quote["sell_currency"], "buy_currency": quote["buy_currency"],
            "amount": quote["sell_amount"], "side": "sell"}
    body = {"from_account_id": from_account_id, "to_account_id": to_account_id, "amount": quote["sell_amount"],
            "currency": quote["sell_currency"], "quote_id": quote_id}
    try:
        outcome = await api.post("/v1/transfers", body, command=True)
    except ApiError as error:
        if error.problem.get("command_id"):    # the ledger decided: not made
            api.session.data.pop(PENDING_PREFIX + quote_id, None)
            return render(request, "customer/transfer_outcome.html", 422, state="rejected",
                          message=rejection_message(error.reason), command_id=error.problem["command_id"])
        if error.status in (409, 503) or error.status >= 500:
            raise
        if error.reason == "quote_expired":
            api.session.data.pop(PENDING_PREFIX + quote_id, None)
            return render(request, "customer/fx.html", 422, currencies=CURRENCIES, sides=SIDES, form=form,
                          errors={"amount": [EXPIRED]})
        return await _quoted(request, api, quote, form, 422,
                             field_errors(error, EXCHANGE_FIELDS, default="from_account_id"))
    api.session.data.pop(PENDING_PREFIX + quote_id, None)
    return RedirectResponse(f"/app/transfers/{outcome['command_id']}", status_code=303)
