"""Loans: the customer's loans and applications, applying for one, and a loan's page (status, terms, the decision's
reason, the schedule with what is paid, repayments, arrears) with what the customer may do now: withdraw before a
decision, accept or decline a counter-offer, repay an amount, repay part of the principal early (a lower instalment
or a shorter loan, as the customer chooses), see a payoff quote and pay the loan off.

Repayments, prepayments and payoffs are commands, sent with the form's idempotency key: the same form sent twice (a double
click, a retry after a timeout) repays once. A refusal before the ledger keeps the key (nothing was recorded under
it); one the ledger decided gets a fresh key, so the corrected form is a new request.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web import lending
from web.client import Api, ApiError
from web.customer.accounts import account_label, customer_accounts
from web.deps import CustomerApi
from web.formatting import money
from web.templating import render

router = APIRouter(prefix="/loans")

REPAYMENT_FIELDS = ("amount",)
# a command the API did not see through in time, or holds for a check: it shows on the loan once it is through
ON_ITS_WAY = "Your payment is on its way: it shows here once it is through."


async def _open_accounts(api: Api) -> list[dict[str, Any]]:
    return [a for a in await customer_accounts(api) if a.get("status", "open") == "open"]


async def _list(request: Request, api: Api, status: int = 200, form: dict[str, str] | None = None,
                errors: dict[str, list[str]] | None = None) -> HTMLResponse:
    loans = (await api.get("/v1/loans"))["loans"]
    products = (await api.get("/v1/loan-products"))["products"]
    lent = {product["currency"] for product in products}
    accounts = [a for a in await _open_accounts(api) if a["currency"] in lent]
    product_options = [("", "Choose a loan")] + [(p["product_id"], lending.product_summary(p)) for p in products]
    account_options = [("", "Choose an account")] + [
        (a["account_id"], f"{account_label(a)} · {money(a['available_balance'], a['currency'])} available")
        for a in accounts]
    chosen = {"key": str(uuid.uuid4())} | (form or {})
    if not chosen.get("account_id") and len(accounts) == 1:
        chosen["account_id"] = accounts[0]["account_id"]
    return render(request, "customer/loans.html", status, loans=loans, products=products, accounts=accounts,
                  product_options=product_options, account_options=account_options, badge=lending.status_badge,
                  product_summary=lending.product_summary, form=chosen, errors=errors or {})


@router.get("", response_class=HTMLResponse)
async def loans(request: Request, api: CustomerApi) -> HTMLResponse:
    return await _list(request, api)


@router.post("", response_class=HTMLResponse)
async def apply(request: Request, api: CustomerApi) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items() if key in
            (*lending.APPLICATION_FIELDS, "key")}
    products = {p["product_id"]: p for p in (await api.get("/v1/loan-products"))["products"]}
    currencies = {a["account_id"]: a["currency"] for a in await _open_accounts(api)}
    body, errors = lending.application_body(form, products, currencies)
    if errors:
        return await _list(request, api, 422, form, errors)
    try:
        # the form's key: a double-submitted form finds the application the first submission made
        loan = await api.post("/v1/loans", body, idempotency_key=form.get("key") or None)
    except ApiError as error:
        if error.status >= 500:
            raise
        return await _list(request, api, 422, form, lending.refusal(
            error, lending.APPLICATION_FIELDS, "amount", products.get(body["product_id"])))
    api.session.flash("Your application is in. We assess it now and tell you here what we decide.", "success")
    return RedirectResponse(f"/app/loans/{loan['loan_id']}", status_code=303)


async def _loan_page(request: Request, api: Api, loan_id: str, status: int = 200,
                     errors: dict[str, list[str]] | None = None, form: dict[str, str] | None = None) -> HTMLResponse:
    loan = await api.get(f"/v1/loans/{loan_id}")
    labels = {a["account_id"]: account_label(a) for a in await customer_accounts(api)}
    return render(request, "customer/loan.html", status, loan=loan, account=labels.get(loan["account_id"], ""),
                  badge=lending.status_badge(loan["status"]), instalment_badges=lending.INSTALMENT_STATUSES,
                  repayment_kinds=lending.REPAYMENT_KINDS, withdrawable=loan["status"] in lending.WITHDRAWABLE,
                  fee_charged=lending.charged(loan.get("origination_fee")), effects=lending.PREPAYMENT_EFFECTS,
                  form={"key": str(uuid.uuid4()), "prepay_key": str(uuid.uuid4())} | (form or {}),
                  errors=errors or {})


@router.get("/{loan_id}", response_class=HTMLResponse)
async def loan_page(request: Request, loan_id: str, api: CustomerApi) -> HTMLResponse:
    return await _loan_page(request, api, loan_id)


def _key_after(error: ApiError, key: str) -> str:
    """The form's key again when the API refused before recording anything under it; a new one otherwise."""
    return str(uuid.uuid4()) if error.problem.get("command_id") else key


@router.post("/{loan_id}/repayments", response_class=HTMLResponse)
async def repay(request: Request, loan_id: str, api: CustomerApi, amount: Annotated[str, Form()] = "",
                key: Annotated[str, Form()] = "") -> Response:
    form = {"amount": amount, "key": key}
    if not amount.strip():
        return await _loan_page(request, api, loan_id, 422, {"amount": ["Enter the amount to repay."]}, form)
    try:
        outcome = await api.post(f"/v1/loans/{loan_id}/repayments", {"amount": amount.strip()}, command=True,
                                 idempotency_key=key or None)
    except ApiError as error:
        if error.status in (403, 404) or error.status >= 500:
            raise
        return await _loan_page(request, api, loan_id, 422, lending.refusal(error, REPAYMENT_FIELDS, "amount"),
                                form | {"key": _key_after(error, key)})
    api.session.flash("Thank you: your repayment is paid into the loan." if outcome.get("status") == "accepted"
                      else ON_ITS_WAY, "success")
    return RedirectResponse(f"/app/loans/{loan_id}#repayments-heading", status_code=303)


@router.post("/{loan_id}/prepayments", response_class=HTMLResponse)
async def prepay(request: Request, loan_id: str, api: CustomerApi, prepay_amount: Annotated[str, Form()] = "",
                 effect: Annotated[str, Form()] = "", prepay_key: Annotated[str, Form()] = "") -> Response:
    form = {"prepay_amount": prepay_amount, "effect": effect, "prepay_key": prepay_key}
    body, errors = lending.prepayment_body(form)
    if errors:
        return await _loan_page(request, api, loan_id, 422, errors, form)
    try:
        outcome = await api.post(f"/v1/loans/{loan_id}/prepayments", body, command=True,
                                 idempotency_key=prepay_key or None)
    except ApiError as error:
        if error.status in (403, 404) or error.status >= 500:
            raise
        return await _loan_page(request, api, loan_id, 422, lending.prepayment_refusal(error),
                                form | {"prepay_key": _key_after(error, prepay_key)})
    api.session.flash("Thank you: the principal is repaid early. Your new schedule is below."
                      if outcome.get("status") == "accepted" else ON_ITS_WAY, "success")
    return RedirectResponse(f"/app/loans/{loan_id}#schedule-heading", status_code=303)


async def _payoff_page(request: Request, api: Api, loan_id: str, status: int = 200, key: str | None = None,
                       errors: dict[str, list[str]] | None = None) -> HTMLResponse:
    loan = await api.get(f"/v1/loans/{loan_id}")
    quote = await api.get(f"/v1/loans/{loan_id}/payoff-quote")
    labels = {a["account_id"]: account_label(a) for a in await customer_accounts(api)}
    return render(request, "customer/loan_payoff.html", status, loan=loan, quote=quote,
                  account=labels.get(loan["account_id"], ""), key=key or str(uuid.uuid4()), errors=errors or {})


@router.get("/{loan_id}/payoff", response_class=HTMLResponse)
async def payoff_quote(request: Request, loan_id: str, api: CustomerApi) -> HTMLResponse:
    return await _payoff_page(request, api, loan_id)


@router.post("/{loan_id}/payoff", response_class=HTMLResponse)
async def pay_off(request: Request, loan_id: str, api: CustomerApi, key: Annotated[str, Form()] = "") -> Response:
    try:
        outcome = await api.post(f"/v1/loans/{loan_id}/payoff", command=True, idempotency_key=key or None)
    except ApiError as error:
        if error.status in (403, 404) or error.status >= 500:
            raise
        return await _payoff_page(request, api, loan_id, 422, _key_after(error, key),
                                  {"payoff": [error.detail]})
    api.session.flash("The loan is paid off. Thank you!" if outcome.get("status") == "accepted" else ON_ITS_WAY,
                      "success")
    return RedirectResponse(f"/app/loans/{loan_id}", status_code=303)


@router.post("/{loan_id}/withdraw")
async def withdraw(loan_id: str, api: CustomerApi) -> Response:
    try:
        await api.post(f"/v1/loans/{loan_id}/withdraw")
    except ApiError as error:
        if error.status != 409:
            raise
        api.session.flash("The application can no longer be withdrawn: we have decided on it.", "warning")
        return RedirectResponse(f"/app/loans/{loan_id}", status_code=303)
    api.session.flash("Your application is withdrawn.", "success")
    return RedirectResponse(f"/app/loans/{loan_id}", status_code=303)


@router.post("/{loan_id}/offer")
async def answer_offer(loan_id: str, api: CustomerApi, accept: Annotated[str, Form()] = "") -> Response:
    accepted = accept == "true"
    try:
        await api.post(f"/v1/loans/{loan_id}/offer", {"accept": accepted})
    except ApiError as error:
        if error.status != 409:
            raise
        api.session.flash("The offer can no longer be answered.", "warning")
        return RedirectResponse(f"/app/loans/{loan_id}", status_code=303)
    api.session.flash("You accepted the offer: we pay the loan into your account." if accepted
                      else "You declined the offer.", "success")
    return RedirectResponse(f"/app/loans/{loan_id}", status_code=303)
