"""The billers directory (staff read; admins add and retire billers): GET/POST /v1/admin/billers, PUT to retire or
bring back one. Customers pay them on the web app's Bills page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.admin.common import page
from web.client import ApiError
from web.deps import StaffApi
from web.forms import field_errors

router = APIRouter()

CATEGORIES = [("utilities", "Utilities"), ("telecom", "Telecom"), ("insurance", "Insurance"), ("tax", "Tax"),
              ("credit_card", "Credit card"), ("rent", "Rent"), ("education", "Education"), ("other", "Other")]
CHECK_DIGITS = [("", "None"), ("luhn", "Mod-10 (Luhn)")]
FIELDS = ("name", "category", "iban", "bic", "reference_pattern", "check_digit")


async def _page(request: Request, api: StaffApi, status: int = 200, form: dict[str, str] | None = None,
                errors: dict[str, list[str]] | None = None) -> Response:
    billers = (await api.get("/v1/billers"))["billers"]
    return page(request, api, "billers.html", status, billers=billers, categories=CATEGORIES,
                check_digits=CHECK_DIGITS, category_names=dict(CATEGORIES), form=form or {"category": "utilities"},
                errors=errors or {})


@router.get("/billers", response_class=HTMLResponse)
async def billers(request: Request, api: StaffApi) -> Response:
    return await _page(request, api)


@router.post("/billers", response_class=HTMLResponse)
async def add_biller(request: Request, api: StaffApi, name: Annotated[str, Form()] = "",
                     category: Annotated[str, Form()] = "utilities", iban: Annotated[str, Form()] = "",
                     bic: Annotated[str, Form()] = "", reference_pattern: Annotated[str, Form()] = "",
                     check_digit: Annotated[str, Form()] = "") -> Response:
    form = {"name": name, "category": category, "iban": iban, "bic": bic, "reference_pattern": reference_pattern,
            "check_digit": check_digit}
    body = {"name": name.strip(), "category": category, "iban": iban.strip(),
            "reference_pattern": reference_pattern.strip()}
    body |= ({"bic": bic.strip().upper()} if bic.strip() else {}) | ({"check_digit": check_digit} if check_digit else {})
    try:
        created = await api.post("/v1/admin/billers", body)
    except ApiError as error:
        if error.status == 403 or error.status >= 500:
            raise
        return await _page(request, api, 422, form, field_errors(error, FIELDS, default="name"))
    api.session.flash(f"{created['name']} is in the directory: customers can pay it.", "success")
    return RedirectResponse("/admin/billers", status_code=303)


@router.post("/billers/{biller_id}/active", response_class=HTMLResponse)
async def set_active(biller_id: str, api: StaffApi, active: Annotated[str, Form()] = "false") -> Response:
    changed = await api.put(f"/v1/admin/billers/{biller_id}", {"active": active == "true"})
    api.session.flash(f"{changed['name']} is {'offered to customers again' if changed['active'] else 'retired'}.",
                      "success")
    return RedirectResponse("/admin/billers", status_code=303)
