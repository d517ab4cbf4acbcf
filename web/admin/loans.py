"""Loans for staff: the application queue (GET /v1/loans?status=, in review by default), an application with the
servicer's assessment (score, recommendation, reasons, inputs, the credit bureau's score and report), the reviews
so far and the decision (analysts and admins: approve, counter-offer with other terms, reject with a reason the
customer reads; above the second-approval threshold two of them approve), the products (admins create them, change
a rate from a date on, retire them) and the portfolio (outstanding principal, arrears, PAR30 and PAR90 by product,
the loans in arrears, the API's CSV).

Routes under /admin/loans/: the fixed paths (products, portfolio) are registered before /{loan_id}.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web import lending
from web.admin.common import REVIEWERS, page, role_of
from web.charts import Bar, bar_chart
from web.client import Api, ApiError
from web.deps import StaffApi
from web.forms import field_errors

router = APIRouter(prefix="/loans")

QUEUE_STATUSES = [(status, lending.STAFF_STATUSES[status][1]) for status in (
    "in_review", "awaiting_second_approval", "assessing", "offered", "approved", "active", "disbursement_failed",
    "rejected", "withdrawn", "offer_declined", "closed", "written_off")] + [("", "Every status")]
DECISIONS = ("approve", "counter_offer", "reject")
DECISION_NAMES = {"approve": "Approved", "counter_offer": "Counter-offer", "reject": "Rejected"}
DECISION_FIELDS = ("amount", "term", "annual_rate_percent", "reason", "decision")
PRODUCT_FIELDS = ("name", "currency", "principal_min", "principal_max", "term_min", "term_max",
                  "annual_rate_percent", "rate_effective_on", "amortisation", "frequency", "day_count",
                  "origination_fee_percent", "late_fee")
PRODUCT_REASONS = {"invalid_principal": "principal_min", "invalid_period": "term_min", "invalid_name": "name",
                   "invalid_rate": "annual_rate_percent", "backdated_rate": "rate_effective_on",
                   "invalid_fee": "origination_fee_percent", "invalid_day_count": "day_count",
                   "unknown_currency": "currency"}
CURRENCIES = [(code, code) for code in ("EUR", "USD", "GBP", "CHF", "JPY")]
AMORTISATIONS = [("equal_instalments", "Equal instalments (annuity)"), ("equal_principal", "Equal principal")]
FREQUENCIES = [("monthly", "Monthly"), ("fortnightly", "Fortnightly"), ("weekly", "Weekly")]
DAY_COUNTS = [("ACT/365F", "ACT/365F"), ("ACT/360", "ACT/360"), ("30/360", "30/360")]


# ---------------------------------------------------------------- the queue


@router.get("", response_class=HTMLResponse)
async def queue(request: Request, api: StaffApi, status: str = "in_review") -> Response:
    found = await api.get("/v1/loans", status=status or None)
    return page(request, api, "loans.html", loans=found["loans"], statuses=QUEUE_STATUSES, status=status,
                badge=lambda value: lending.status_badge(value, staff=True))


# ---------------------------------------------------------------- products


async def _products(api: Api) -> list[dict[str, Any]]:
    return list((await api.get("/v1/loan-products", all="true"))["products"])


async def _product(api: Api, product_id: str) -> dict[str, Any] | None:
    """One product as the list shows it (the API has no GET of one product)."""
    return next((p for p in await _products(api) if p["product_id"] == product_id), None)


async def _products_page(request: Request, api: Api, status: int = 200, form: dict[str, str] | None = None,
                         errors: dict[str, list[str]] | None = None) -> Response:
    defaults = {"currency": "EUR", "amortisation": "equal_instalments", "frequency": "monthly",
                "day_count": "ACT/365F", "key": str(uuid.uuid4())}
    return page(request, api, "loan_products.html", status, products=await _products(api), currencies=CURRENCIES,
                amortisations=AMORTISATIONS, frequencies=FREQUENCIES, day_counts=DAY_COUNTS,
                instalments=lending.instalments, form=defaults | (form or {}), errors=errors or {})


@router.get("/products", response_class=HTMLResponse)
async def products(request: Request, api: StaffApi) -> Response:
    return await _products_page(request, api)


def product_body(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The API's LoanProductBody from the admin's form, or the form's own errors (blanks, terms not numbers)."""
    errors: dict[str, list[str]] = {}
    needed = {"name": "Enter the product's name.", "principal_min": "Enter the smallest amount it lends.",
              "principal_max": "Enter the largest amount it lends.", "annual_rate_percent": "Enter the yearly rate."}
    for name, message in needed.items():
        if not form.get(name, "").strip():
            errors[name] = [message]
    for name in ("term_min", "term_max"):
        if not form.get(name, "").strip().isdigit():
            errors[name] = ["Enter a whole number of instalments."]
    body: dict[str, Any] = {name: form.get(name, "").strip() for name in (
        "name", "currency", "principal_min", "principal_max", "annual_rate_percent", "amortisation", "frequency",
        "day_count")}
    for name in ("term_min", "term_max"):
        value = form.get(name, "").strip()
        body[name] = int(value) if value.isdigit() else value
    for name in ("rate_effective_on", "origination_fee_percent", "late_fee"):
        if value := form.get(name, "").strip():
            body[name] = value
    return body, errors


@router.post("/products", response_class=HTMLResponse)
async def create_product(request: Request, api: StaffApi) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items() if key in (*PRODUCT_FIELDS, "key")}
    body, errors = product_body(form)
    if errors:
        return await _products_page(request, api, 422, form, errors)
    try:
        created = await api.post("/v1/admin/loan-products", body, idempotency_key=form.get("key") or None)
    except ApiError as error:
        if error.status == 403 or error.status >= 500:
            raise
        field = PRODUCT_REASONS.get(error.reason)
        found = {field: error.messages()} if field else field_errors(error, PRODUCT_FIELDS, "name")
        return await _products_page(request, api, 422, form, found)
    api.session.flash(f"{created['name']} is offered to customers.", "success")
    return RedirectResponse(f"/admin/loans/products/{created['product_id']}", status_code=303)


async def _product_page(request: Request, api: Api, product_id: str, status: int = 200,
                        form: dict[str, str] | None = None, errors: dict[str, list[str]] | None = None) -> Response:
    product = await _product(api, product_id)
    if product is None:
        raise ApiError(404, {"title": "Unknown loan product"})
    return page(request, api, "loan_product.html", status, product=product, instalments=lending.instalments,
                amortisations=dict(AMORTISATIONS), form=form or {}, errors=errors or {})


@router.get("/products/{product_id}", response_class=HTMLResponse)
async def product(request: Request, api: StaffApi, product_id: str) -> Response:
    return await _product_page(request, api, product_id)


@router.post("/products/{product_id}/rates", response_class=HTMLResponse)
async def change_rate(request: Request, api: StaffApi, product_id: str,
                      annual_rate_percent: Annotated[str, Form()] = "",
                      effective_on: Annotated[str, Form()] = "") -> Response:
    form = {"annual_rate_percent": annual_rate_percent, "effective_on": effective_on}
    errors = {name: [message] for name, message in (("annual_rate_percent", "Enter the new yearly rate."),
                                                    ("effective_on", "Enter the day it takes effect."))
              if not form[name].strip()}
    if errors:
        return await _product_page(request, api, product_id, 422, form, errors)
    try:
        await api.post(f"/v1/admin/loan-products/{product_id}/rates",
                       {"annual_rate_percent": annual_rate_percent.strip(), "effective_on": effective_on.strip()})
    except ApiError as error:
        if error.status in (403, 404) or error.status >= 500:
            raise
        return await _product_page(request, api, product_id, 422, form, lending.refusal(
            error, ("annual_rate_percent", "effective_on"), "annual_rate_percent"))
    api.session.flash(f"The new rate applies from {effective_on.strip()}: applications from then on get it.",
                      "success")
    return RedirectResponse(f"/admin/loans/products/{product_id}", status_code=303)


@router.post("/products/{product_id}/status")
async def set_status(api: StaffApi, product_id: str, status: Annotated[str, Form()] = "retired") -> Response:
    changed = await api.put(f"/v1/admin/loan-products/{product_id}",
                            {"status": "active" if status == "active" else "retired"})
    api.session.flash(f"{changed['name']} is {'offered again' if changed['status'] == 'active' else 'retired'}.",
                      "success")
    return RedirectResponse(f"/admin/loans/products/{product_id}", status_code=303)


# ---------------------------------------------------------------- the portfolio


def outstanding_charts(rows: list[dict[str, Any]]) -> list[Any]:
    """One bar chart per currency of the outstanding principal by product (amounts of different currencies are
    never drawn on one scale)."""
    currencies = sorted({row["currency"] for row in rows})
    return [bar_chart([Bar(row["name"], row["outstanding_principal"]) for row in rows if row["currency"] == code],
                      code, f"Outstanding principal by product, {code}", f"outstanding-{code.lower()}")
            for code in currencies]


@router.get("/portfolio", response_class=HTMLResponse)
async def portfolio(request: Request, api: StaffApi) -> Response:
    report = await api.get("/v1/admin/loans/portfolio")
    names = {row["product_id"]: row["name"] for row in report["products"]}
    return page(request, api, "loan_portfolio.html", report=report, names=names,
                charts=outstanding_charts(report["products"]))


@router.get("/portfolio.csv")
async def portfolio_csv(api: StaffApi) -> Response:
    response = await api.get_raw("/v1/admin/loans/portfolio.csv")
    return Response(response.content, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": response.headers.get("content-disposition", 'attachment; filename="loan-arrears.csv"')})


# ---------------------------------------------------------------- an application


async def _loan_page(request: Request, api: Api, loan_id: str, status: int = 200,
                     form: dict[str, str] | None = None, errors: dict[str, list[str]] | None = None) -> Response:
    loan = await api.get(f"/v1/loans/{loan_id}")
    current = loan["terms"] or {}
    product = await _product(api, loan["product_id"])
    defaults = {"amount": current.get("amount") or loan["amount"], "term": str(current.get("term") or loan["term"]),
                "annual_rate_percent": current.get("annual_rate_percent") or (product or {}).get(
                    "annual_rate_percent", "")}
    assessment = loan.get("assessment")   # None until the servicer has assessed it
    recommendation = lending.RECOMMENDATIONS.get(assessment["recommendation"], ("", "")) if assessment else None
    inputs = lending.assessment_inputs(assessment["inputs"], loan["currency"]) if assessment else []
    return page(request, api, "loan.html", status, loan=loan, product=product,
                badge=lending.status_badge(loan["status"], staff=True), recommendation=recommendation, inputs=inputs,
                instalment_badges=lending.INSTALMENT_STATUSES, repayment_kinds=lending.REPAYMENT_KINDS,
                decisions=DECISION_NAMES, reviewable=loan["status"] in lending.REVIEWABLE and role_of(api) in REVIEWERS,
                write_off=loan["status"] == "active" and role_of(api) == "admin",
                form=defaults | (form or {}), errors=errors or {})


@router.get("/{loan_id}", response_class=HTMLResponse)
async def application(request: Request, api: StaffApi, loan_id: str) -> Response:
    return await _loan_page(request, api, loan_id)


def decision_body(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The API's Decision from the reviewer's form: terms for an approval or a counter-offer, a reason to reject."""
    decision = form.get("decision", "")
    if decision not in DECISIONS:
        return {}, {"decision": ["Choose approve, counter-offer or reject."]}
    body: dict[str, Any] = {"decision": decision}
    errors: dict[str, list[str]] = {}
    if decision != "reject":
        term = form.get("term", "").strip()
        if term and not term.isdigit():
            errors["term"] = ["Enter a whole number of instalments."]
        for name in ("amount", "annual_rate_percent"):
            if value := form.get(name, "").strip():
                body[name] = value
        if term:
            body["term"] = int(term) if term.isdigit() else term
    if reason := form.get("reason", "").strip():
        body["reason"] = reason
    return body, errors


@router.post("/{loan_id}/decision", response_class=HTMLResponse)
async def decide(request: Request, api: StaffApi, loan_id: str) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items() if key in DECISION_FIELDS}
    body, errors = decision_body(form)
    if errors:
        return await _loan_page(request, api, loan_id, 422, form, errors)
    try:
        decided = await api.post(f"/v1/admin/loans/{loan_id}/decision", body)
    except ApiError as error:
        if error.status in (403, 404) or error.status >= 500:
            raise
        loan = await api.get(f"/v1/loans/{loan_id}")
        found = lending.refusal(error, DECISION_FIELDS, "decision", await _product(api, loan["product_id"]))
        return await _loan_page(request, api, loan_id, 422, form, found)
    api.session.flash(decided_message(decided), "success")
    return RedirectResponse(f"/admin/loans/{loan_id}", status_code=303)


@router.post("/{loan_id}/write-off", response_class=HTMLResponse)
async def write_off(request: Request, api: StaffApi, loan_id: str) -> Response:
    reason = str((await request.form()).get("write_off_reason", "")).strip()
    form = {"write_off_reason": reason}
    if not reason:
        return await _loan_page(request, api, loan_id, 422, form,
                                {"write_off_reason": ["Say why the loan is written off."]})
    try:   # a refusal, the API's or the ledger's (a 422 once the command is decided), is shown by the reason
        await api.post(f"/v1/admin/loans/{loan_id}/write-off", {"reason": reason}, command=True)
    except ApiError as error:
        if error.status in (403, 404) or error.status >= 500:
            raise
        return await _loan_page(request, api, loan_id, 422, form, {"write_off_reason": [error.detail]})
    api.session.flash("Written off: the loan's principal and accrued interest are on the books as a loss.", "success")
    return RedirectResponse(f"/admin/loans/{loan_id}", status_code=303)


def decided_message(loan: dict[str, Any]) -> str:
    return {"awaiting_second_approval": "Approved: another reviewer approves the same terms before it is paid out.",
            "approved": "Approved: the loan is paid out.", "active": "Approved: the loan is paid out.",
            "offered": "The counter-offer is sent: the customer accepts or declines it.",
            "rejected": "Rejected: the customer reads your reason."}.get(loan["status"], "Decision recorded.")
