"""The bank's books and its FX rates (staff read; admins set rates): the trial balance per currency, now or as it
was (GET /v1/admin/books/trial-balance?as_of=), one ledger account's entries, and the rate table
(GET/PUT /v1/admin/fx/rates). Every figure is the API's: nothing is added up here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.admin.common import page
from web.client import ApiError
from web.deps import StaffApi

router = APIRouter()


@router.get("/books", response_class=HTMLResponse)
async def books(request: Request, api: StaffApi, currency: str = "", as_of: str = "") -> Response:
    errors: dict[str, list[str]] = {}
    report = None
    try:
        report = await api.get("/v1/admin/books/trial-balance", currency=currency.strip().upper(),
                               as_of=as_of.strip())
    except ApiError as error:
        if error.status != 422:
            raise
        errors = {"as_of" if "as_of" in error.detail or error.field() == "as_of" else "currency": [error.detail]}
    return page(request, api, "books.html", report=report, query={"currency": currency, "as_of": as_of},
                errors=errors, status_code=422 if errors else 200)


@router.get("/books/accounts/{ledger_account_id:path}", response_class=HTMLResponse)
async def ledger_account(request: Request, api: StaffApi, ledger_account_id: str, currency: str = "",
                         cursor: str = "") -> Response:
    entries = await api.get(f"/v1/admin/books/accounts/{ledger_account_id}", currency=currency, limit=100,
                            cursor=cursor)
    return page(request, api, "ledger_account.html", entries=entries, currency=currency)


@router.get("/fx", response_class=HTMLResponse)
async def fx(request: Request, api: StaffApi) -> Response:
    table = await api.get("/v1/admin/fx/rates")
    return page(request, api, "fx.html", table=table, form={}, errors={})


@router.post("/fx", response_class=HTMLResponse)
async def set_rate(request: Request, api: StaffApi, base: Annotated[str, Form()] = "",
                   quote: Annotated[str, Form()] = "", mid: Annotated[str, Form()] = "",
                   spread: Annotated[str, Form()] = "") -> Response:
    entry: dict[str, object] = {"base": base.strip().upper(), "quote": quote.strip().upper(), "mid": mid.strip()}
    if spread.strip():
        entry["spread_basis_points"] = spread.strip()
    try:
        await api.put("/v1/admin/fx/rates", {"rates": [entry]})
    except ApiError as error:
        if error.status == 403:
            raise
        table = await api.get("/v1/admin/fx/rates")
        field = {"mid": "mid", "spread_basis_points": "spread", "base": "base", "quote": "quote"}.get(
            error.field() or "", "mid")
        return page(request, api, "fx.html", 422, table=table, form={"base": base, "quote": quote, "mid": mid,
                                                                      "spread": spread},
                    errors={field: error.messages()})
    api.session.flash(f"The {entry['base']}/{entry['quote']} rate is set.", "success")
    return RedirectResponse("/admin/fx", status_code=303)
