"""Savings products for staff, beside the loan products (the Loans section's "Savings products"): every product
with its rates (GET /v1/savings-products, retired ones included for staff); admins create one (name, currency, a
yearly rate from a day on, the day count) and change a product's rate from a day on (never backwards: accounts
already earn by the old rate up to that day).

The router is included before web/admin/loans.py's, whose /loans/{loan_id} would otherwise take these paths.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web import savings
from web.admin.common import page
from web.admin.loans import CURRENCIES
from web.client import Api, ApiError
from web.deps import StaffApi

router = APIRouter(prefix="/loans/savings-products")

RATE_FIELDS = ("annual_rate_percent", "effective_on")


async def _products(api: Api) -> list[dict[str, Any]]:
    return list((await api.get("/v1/savings-products"))["products"])


async def _products_page(request: Request, api: Api, status: int = 200, form: dict[str, str] | None = None,
                         errors: dict[str, list[str]] | None = None) -> Response:
    defaults = {"currency": "EUR", "day_count": "ACT/365F", "key": str(uuid.uuid4())}
    return page(request, api, "savings_products.html", status, products=await _products(api), currencies=CURRENCIES,
                day_counts=savings.DAY_COUNTS, form=defaults | (form or {}), errors=errors or {})


@router.get("", response_class=HTMLResponse)
async def products(request: Request, api: StaffApi) -> Response:
    return await _products_page(request, api)


@router.post("", response_class=HTMLResponse)
async def create_product(request: Request, api: StaffApi) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items()
            if key in (*savings.PRODUCT_FIELDS, "key")}
    body, errors = savings.product_body(form)
    if errors:
        return await _products_page(request, api, 422, form, errors)
    try:
        # the form's key: a double-submitted form finds the product the first submission made
        created = await api.post("/v1/admin/savings-products", body, idempotency_key=form.get("key") or None)
    except ApiError as error:
        if error.status == 403 or error.status >= 500:
            raise
        return await _products_page(request, api, 422, form,
                                    savings.product_refusal(error, savings.PRODUCT_FIELDS, "name"))
    api.session.flash(f"{created['name']} is offered: {created['currency']} accounts can earn it.", "success")
    return RedirectResponse(f"/admin/loans/savings-products/{created['product_id']}", status_code=303)


async def _product_page(request: Request, api: Api, product_id: str, status: int = 200,
                        form: dict[str, str] | None = None, errors: dict[str, list[str]] | None = None) -> Response:
    # the API has no GET of one product: the list's
    product = next((p for p in await _products(api) if p["product_id"] == product_id), None)
    if product is None:
        raise ApiError(404, {"title": "Unknown savings product"})
    return page(request, api, "savings_product.html", status, product=product, day_counts=dict(savings.DAY_COUNTS),
                form=form or {}, errors=errors or {})


@router.get("/{product_id}", response_class=HTMLResponse)
async def product(request: Request, api: StaffApi, product_id: str) -> Response:
    return await _product_page(request, api, product_id)


@router.post("/{product_id}/rates", response_class=HTMLResponse)
async def change_rate(request: Request, api: StaffApi, product_id: str,
                      annual_rate_percent: Annotated[str, Form()] = "",
                      effective_on: Annotated[str, Form()] = "") -> Response:
    form = {"annual_rate_percent": annual_rate_percent.strip(), "effective_on": effective_on.strip()}
    errors = {name: [message] for name, message in (("annual_rate_percent", "Enter the new yearly rate."),
                                                    ("effective_on", "Enter the day it takes effect."))
              if not form[name]}
    if errors:
        return await _product_page(request, api, product_id, 422, form, errors)
    try:
        await api.post(f"/v1/admin/savings-products/{product_id}/rates", form)
    except ApiError as error:
        if error.status in (403, 404) or error.status >= 500:
            raise
        return await _product_page(request, api, product_id, 422, form,
                                   savings.product_refusal(error, RATE_FIELDS, "annual_rate_percent"))
    api.session.flash(f"The new rate applies from {form['effective_on']}: every account earning the product gets "
                      "it from that day.", "success")
    return RedirectResponse(f"/admin/loans/savings-products/{product_id}", status_code=303)
