"""Payees: the people and companies the customer pays, by IBAN, with the API's confirmation of payee shown when
one is added or renamed (a match, a close match with the name on file, no match, or another bank's account)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.client import Api, ApiError
from web.deps import CustomerApi
from web.forms import field_errors
from web.templating import render

router = APIRouter(prefix="/payees")

FIELDS = ("iban", "name", "nickname")
CONFIRMATIONS = {
    "match": ("ok", "The name matches the account holder's."),
    "close_match": ("warning", "The name is close to the account holder's: check it."),
    "no_match": ("bad", "The name does not match the account holder's. Check it before you pay: the money may go "
                        "to someone else."),
    "not_applicable": ("", "An account at another bank: its holder's name cannot be checked."),
}


async def _list(request: Request, api: Api, status: int = 200, form: dict[str, str] | None = None,
                errors: dict[str, list[str]] | None = None) -> HTMLResponse:
    payees = (await api.get("/v1/payees")).get("payees", [])
    return render(request, "customer/payees.html", status, payees=payees, confirmations=CONFIRMATIONS,
                  form=form or {}, errors=errors or {})


@router.get("", response_class=HTMLResponse)
async def payees(request: Request, api: CustomerApi) -> HTMLResponse:
    return await _list(request, api)


@router.post("", response_class=HTMLResponse)
async def add_payee(request: Request, api: CustomerApi, iban: Annotated[str, Form()] = "",
                    name: Annotated[str, Form()] = "", nickname: Annotated[str, Form()] = "") -> Response:
    form = {"iban": iban, "name": name, "nickname": nickname}
    errors: dict[str, list[str]] = {}
    if not iban.strip():
        errors["iban"] = ["Enter the IBAN."]
    if not name.strip():
        errors["name"] = ["Enter the name of the account holder."]
    if errors:
        return await _list(request, api, 422, form, errors)
    body = {"iban": iban.strip(), "name": name.strip()} | ({"nickname": nickname.strip()} if nickname.strip() else {})
    try:
        payee = await api.post("/v1/payees", body)
    except ApiError as error:
        if error.status >= 500:
            raise
        return await _list(request, api, 422, form, field_errors(error, FIELDS, default="iban"))
    kind, message = CONFIRMATIONS.get(payee["confirmation"], ("", ""))
    if payee["confirmation"] == "close_match" and payee.get("name_on_file"):
        message += f" The name on the account is {payee['name_on_file']}."
    api.session.flash(f"{payee['name']} is added. {message}", "warning" if kind in ("warning", "bad") else "success")
    return RedirectResponse("/app/payees", status_code=303)


@router.get("/{payee_id}", response_class=HTMLResponse)
async def payee_page(request: Request, payee_id: str, api: CustomerApi) -> HTMLResponse:
    payee = await api.get(f"/v1/payees/{payee_id}")
    return render(request, "customer/payee.html", payee=payee, confirmations=CONFIRMATIONS,
                  form={"name": payee["name"], "nickname": payee.get("nickname") or ""})


@router.post("/{payee_id}", response_class=HTMLResponse)
async def rename_payee(request: Request, payee_id: str, api: CustomerApi, name: Annotated[str, Form()] = "",
                       nickname: Annotated[str, Form()] = "") -> Response:
    payee = await api.get(f"/v1/payees/{payee_id}")
    body = {"name": name.strip()} | ({"nickname": nickname.strip()} if nickname.strip() else {})
    try:
        await api.put(f"/v1/payees/{payee_id}", body)
    except ApiError as error:
        if error.status >= 500 or error.status == 404:
            raise
        return render(request, "customer/payee.html", 422, payee=payee, confirmations=CONFIRMATIONS,
                      form={"name": name, "nickname": nickname}, errors=field_errors(error, FIELDS, "name"))
    api.session.flash("The payee is renamed.", "success")
    return RedirectResponse(f"/app/payees/{payee_id}", status_code=303)


@router.post("/{payee_id}/delete")
async def delete_payee(payee_id: str, api: CustomerApi) -> Response:
    await api.delete(f"/v1/payees/{payee_id}")
    api.session.flash("The payee is removed.", "success")
    return RedirectResponse("/app/payees", status_code=303)
