"""Currency exchange: a quote from the API (rate, spread, both amounts, rounding, expiry), shown as it is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from web.client import ApiError
from web.deps import CustomerApi
from web.forms import field_errors
from web.templating import render

router = APIRouter(prefix="/fx")

CURRENCIES = [(code, code) for code in ("EUR", "USD", "GBP", "CHF", "JPY", "SEK", "NOK", "DKK", "PLN")]
SIDES = [("sell", "I sell this amount"), ("buy", "I buy this amount")]
FIELDS = ("sell_currency", "buy_currency", "amount", "side")


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
    return render(request, "customer/fx.html", currencies=CURRENCIES, sides=SIDES, form=form, quote=body)
