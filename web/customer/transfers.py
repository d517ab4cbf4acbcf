"""Transfers: between the customer's own accounts, to a payee, to an IBAN of this bank, or to an account at another
bank (a payment through the payment rail: POST /v1/payments; a payee at another bank is paid the same way).

Three steps, and money moves only at the last: the form, a review of exactly what will be sent (kept in the
server-side session under a fresh idempotency key, so the confirmed transfer is the reviewed one and a double
click or a retried post sends it once), then the outcome: done, held for review (told in customer-safe words:
never which rule, score or reviewer), or not made (with a reason a customer can act on, or none when the bank's
controls declined it: no tipping off).
"""

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

FIELDS = ("from_account_id", "destination", "to_account_id", "payee_id", "to_iban", "creditor_name", "creditor_iban",
          "amount", "reference")
PAYMENT_STATES = {"pending": "We are sending it to the other bank.",
                  "sent": "It is on its way: the other bank has it and is crediting it.",
                  "settled": "It has arrived at the other bank.",
                  "returned": "The other bank sent it back; the money is in your account again."}
PENDING_PREFIX = "transfer:"
MAX_PENDING = 5

# Why a transfer was not made, as a customer may be told. Decisions of the bank's controls (fraud, review)
# get the general sentence: a customer is never told which rule fired or what a reviewer wrote.
REJECTIONS = {
    "insufficient_funds": "There is not enough money in the account for this transfer (an agreed overdraft "
                          "included).",
    "account_frozen": "One of the accounts is frozen, so no money can move. Please contact us.",
    "account_closed": "One of the accounts is closed.",
    "currency_mismatch": "The two accounts hold different currencies.",
    "same_account": "The money would go to the account it comes from. Choose another account.",
    "balance_limit": "This transfer would take an account beyond the largest balance we can hold.",
    "invalid_amount": "The amount is not valid for this currency.",
    "credit_failed": "The receiving account could not take the money, so it was returned to your account.",
    "internal_iban": "This IBAN is an account at bankstream: choose \"An IBAN at bankstream\" instead.",
}
DECLINED = "We could not make this transfer. If you have questions, please contact us."
HELD = ("For your security we are checking this transfer before it goes out. The amount is reserved in your "
        "account meanwhile. You will see the outcome here and in your account's history, usually within one "
        "business day.")


def rejection_message(reason: str | None) -> str:
    return REJECTIONS.get(reason or "", DECLINED)


async def _payees(api: Api) -> list[dict[str, Any]]:
    return list((await api.get("/v1/payees")).get("payees", []))


async def _form(request: Request, api: Api, status: int = 200, form: dict[str, str] | None = None,
                errors: dict[str, list[str]] | None = None) -> HTMLResponse:
    accounts = [account for account in await customer_accounts(api) if account["status"] == "open"]
    payees = await _payees(api)
    form = dict(form or {})
    if not form.get("from_account_id") and len(accounts) == 1:   # one account: that is where the money comes from
        form["from_account_id"] = accounts[0]["account_id"]
    from_options = [("", "Choose an account")] + [
        (a["account_id"], f"{account_label(a)} · {money(a['available_balance'], a['currency'])} available")
        for a in accounts]
    own_options = [("", "Choose one of your accounts")] + [(a["account_id"], account_label(a)) for a in accounts]
    payee_options = [("", "Choose a payee")] + [
        (p["payee_id"], f"{p['name']}{' (' + p['nickname'] + ')' if p.get('nickname') else ''} · {p['iban_formatted']}"
                        f"{'' if p.get('internal') else ' · another bank'}")
        for p in payees]
    return render(request, "customer/transfer_form.html", status, accounts=accounts, payees=payees,
                  from_options=from_options, own_options=own_options, payee_options=payee_options,
                  form=form, errors=errors or {})


@router.get("/transfers/new", response_class=HTMLResponse)
async def new_transfer(request: Request, api: CustomerApi) -> HTMLResponse:
    chosen = request.query_params.get("from", "")
    destination = "payee" if request.query_params.get("payee") else "own"
    return await _form(request, api, form={"from_account_id": chosen, "destination": destination,
                                           "payee_id": request.query_params.get("payee", "")})


def _request(form: dict[str, str], currency: str, payee: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The API call that makes it: a transfer inside the bank, or a payment to another bank (a payee there too)."""
    body: dict[str, Any] = {"from_account_id": form["from_account_id"], "amount": form["amount"].strip(),
                            "currency": currency}
    reference = form.get("reference", "").strip()
    destination = form.get("destination")
    if destination == "external" or (payee is not None and not payee.get("internal")):
        name, iban = (payee["name"], payee["iban"]) if payee is not None else (
            form["creditor_name"].strip(), form["creditor_iban"].strip())
        body |= {"creditor_name": name, "creditor_iban": iban}
        return "/v1/payments", body | ({"remittance_information": reference} if reference else {})
    if reference:
        body["reference"] = reference
    if destination == "payee":
        body["payee_id"] = form["payee_id"]
    elif destination == "iban":
        body["to_iban"] = form["to_iban"].strip()
    else:
        body["to_account_id"] = form["to_account_id"]
    return "/v1/transfers", body


def _check(form: dict[str, str]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not form.get("from_account_id"):
        errors["from_account_id"] = ["Choose the account the money comes from."]
    destination = form.get("destination", "own")
    needed = {"own": ("to_account_id", "Choose the account the money goes to."),
              "payee": ("payee_id", "Choose a payee."),
              "iban": ("to_iban", "Enter the IBAN of the account the money goes to."),
              "external": ("creditor_iban", "Enter the IBAN of the account at the other bank.")}
    if destination not in needed:
        errors["destination"] = ["Choose where the money goes."]
    else:
        field, message = needed[destination]
        if not form.get(field, "").strip():
            errors[field] = [message]
    if destination == "external" and not form.get("creditor_name", "").strip():
        errors["creditor_name"] = ["Enter the name of the account holder at the other bank."]
    if destination == "own" and form.get("to_account_id") and form.get("to_account_id") == form.get("from_account_id"):
        errors["to_account_id"] = ["Choose an account other than the one the money comes from."]
    if not form.get("amount", "").strip():
        errors["amount"] = ["Enter the amount."]
    return errors


@router.post("/transfers/review", response_class=HTMLResponse)
async def review(request: Request, api: CustomerApi, from_account_id: Annotated[str, Form()] = "",
                 destination: Annotated[str, Form()] = "own", to_account_id: Annotated[str, Form()] = "",
                 payee_id: Annotated[str, Form()] = "", to_iban: Annotated[str, Form()] = "",
                 creditor_name: Annotated[str, Form()] = "", creditor_iban: Annotated[str, Form()] = "",
                 amount: Annotated[str, Form()] = "", reference: Annotated[str, Form()] = "") -> HTMLResponse:
    form = {"from_account_id": from_account_id, "destination": destination, "to_account_id": to_account_id,
            "payee_id": payee_id, "to_iban": to_iban, "creditor_name": creditor_name, "creditor_iban": creditor_iban,
            "amount": amount, "reference": reference}
    errors = _check(form)
    if errors:
        return await _form(request, api, 422, form, errors)
    source = await api.get(f"/v1/accounts/{from_account_id}")
    payee = await api.get(f"/v1/payees/{payee_id}") if destination == "payee" else None
    to_label = await _destination_label(api, form, payee)
    path, body = _request(form, source["currency"], payee)
    key = str(uuid.uuid4())
    api.session.keep_reviewed(PENDING_PREFIX, key, {"path": path, "body": body, "form": form,
                                                    "from_label": account_label(source), "to_label": to_label},
                              MAX_PENDING)
    return render(request, "customer/transfer_review.html", key=key, body=body, from_label=account_label(source),
                  to_label=to_label, source=source, external=path == "/v1/payments")


async def _destination_label(api: Api, form: dict[str, str], payee: dict[str, Any] | None) -> str:
    if payee is not None:
        return f"{payee['name']} ({payee['iban_formatted']}{'' if payee.get('internal') else ', another bank'})"
    if form["destination"] == "external":
        return f"{form['creditor_name'].strip()} ({form['creditor_iban'].strip().upper()}, another bank)"
    if form["destination"] == "iban":
        return form["to_iban"].strip().upper()
    return account_label(await api.get(f"/v1/accounts/{form['to_account_id']}"))


@router.post("/transfers/change", response_class=HTMLResponse)
async def change(request: Request, api: CustomerApi, key: Annotated[str, Form()] = "") -> HTMLResponse:
    pending = api.session.data.pop(PENDING_PREFIX + key, None)
    return await _form(request, api, form=pending["form"] if pending else {})


@router.post("/transfers/confirm", response_class=HTMLResponse)
async def confirm(request: Request, api: CustomerApi, key: Annotated[str, Form()] = "") -> Response:
    pending = api.session.data.get(PENDING_PREFIX + key)
    if pending is None:
        api.session.flash("That transfer was already sent or has expired. Check your account before trying again.",
                          "warning")
        return RedirectResponse("/app/", status_code=303)
    try:
        outcome = await api.post(pending.get("path", "/v1/transfers"), pending["body"], command=True,
                                 idempotency_key=key)
    except ApiError as error:
        if error.problem.get("command_id"):    # the ledger decided: not made
            api.session.data.pop(PENDING_PREFIX + key, None)
            return render(request, "customer/transfer_outcome.html", 422, state="rejected",
                          message=rejection_message(error.reason), pending=pending,
                          command_id=error.problem["command_id"])
        if error.status in (409, 503) or error.status >= 500:
            raise
        api.session.data.pop(PENDING_PREFIX + key, None)   # refused before the ledger: correct the form
        return await _form(request, api, 422, pending["form"],
                           field_errors(error, FIELDS, default="amount"))
    api.session.data.pop(PENDING_PREFIX + key, None)
    return RedirectResponse(f"/app/transfers/{outcome['command_id']}", status_code=303)


@router.get("/transfers/{command_id}", response_class=HTMLResponse)
async def outcome(request: Request, command_id: str, api: CustomerApi) -> HTMLResponse:
    """A transfer's outcome as the API tells it now (a held one can be looked at again later)."""
    status = await api.get(f"/v1/commands/{command_id}")
    state = status.get("status")
    if state == "held":
        message = HELD
    elif state == "rejected":
        message = rejection_message(status.get("reason"))
    elif state == "accepted":
        message = "The money has been sent."
    else:
        message = "We have your transfer and are processing it. Refresh this page in a moment."
    payment = None
    if state == "accepted" and any(e.get("type") == "PaymentDebited" for e in status.get("events", [])):
        payment = await api.get(f"/v1/payments/{command_id}")   # a payment's id is its command's
        message = PAYMENT_STATES.get(payment["status"], message)
    source = status.get("account_id") or _source_of(status)
    account = await api.get(f"/v1/accounts/{source}") if source else None
    return render(request, "customer/transfer_outcome.html", state=state, message=message, status=status,
                  account=account, command_id=command_id, amount=_amount_of(status), payment=payment)


def _source_of(status: dict[str, Any]) -> str | None:
    for event in status.get("events", []):
        if event.get("type") in ("TransferDebited", "PaymentDebited", "FundsHeld", "CommandRejected"):
            return str(event.get("account_id"))
    return None


def _amount_of(status: dict[str, Any]) -> dict[str, str] | None:
    """The amount as the ledger recorded it (its decimal string), for the outcome page."""
    for event in status.get("events", []):
        data = event.get("data") or {}
        if "amount" in data and "currency" in data:
            return {"amount": str(data["amount"]), "currency": str(data["currency"]),
                    "reference": str(data.get("reference") or "")}
    return None
