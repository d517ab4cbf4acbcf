"""Bill payments (issue 16 point 2): the billers directory staff keep (`/v1/admin/billers`), the directory
customers choose from (`GET /v1/billers`), paying a bill (`POST /v1/bill-payments`: a payment to the biller's
settlement IBAN through the payment rail, its reference checked against the biller's format and check digit first)
and a receipt for any payment (`GET /v1/payments/{id}/receipt`, printable HTML)."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from api.billers import Biller, BillerExists, BillerStore
from api.deps import Platform, PlatformDep, ViewDep
from api.ibans import parse_iban
from api.models import Bic, Currency, DecimalString, Identifier, IbanText, _minor
from api.problems import PROBLEM_JSON, Problem
from api.routes.auth import caller
from api.routes.commands import _RESPONSES as COMMAND_RESPONSES
from api.routes.commands import (IdempotencyKey, Wait, _hashed, _require_account, _submitter, answered_before,
                                 submit)
from api.routes.payments import own_payment
from core import commands as c
from core.billers import CATEGORIES, BillerError, check_reference, checked_pattern
from core.money import format_amount, parse_amount
from core.payment_history import confirmation_number
from core.payments import REASON_CODES

router = APIRouter(tags=["bill payments"])
_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {404: _PROBLEMS, 409: _PROBLEMS, 422: _PROBLEMS}
BillerId = Annotated[str, Path(max_length=64)]
Category = Literal["utilities", "telecom", "insurance", "tax", "credit_card", "rent", "education", "other"]
assert set(CATEGORIES) == set(Category.__args__)  # type: ignore[attr-defined]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewBiller(_Body):
    name: Annotated[StrictStr, Field(min_length=1, max_length=140)]
    category: Category
    iban: IbanText = Field(description="where the payments settle: an account at another bank")
    bic: Bic | None = None
    reference_pattern: Annotated[StrictStr, Field(min_length=1, max_length=200, examples=[r"^\d{8,12}$"],
                                                  description="a regular expression the whole reference matches")]
    check_digit: Literal["luhn"] | None = Field(None, description="luhn: the reference's last digit is mod-10")


class BillerChange(_Body):
    name: Annotated[StrictStr, Field(min_length=1, max_length=140)] | None = None
    category: Category | None = None
    reference_pattern: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None
    active: bool | None = Field(None, description="false: no longer offered to customers")


class BillerView(BaseModel):
    biller_id: str
    name: str
    category: str
    iban: str
    bic: str | None
    reference_pattern: str
    check_digit: str | None
    active: bool


class BillerList(BaseModel):
    billers: list[BillerView]


class BillPayment(_Body):
    from_account_id: Identifier
    biller_id: Identifier
    reference: Annotated[StrictStr, Field(min_length=1, max_length=60, description="the customer reference on "
                                          "the bill (spaces are ignored)")]
    amount: DecimalString
    currency: Currency

    @model_validator(mode="after")
    def _check(self) -> BillPayment:
        _minor(self.amount, self.currency, "amount")
        return self


def _view(biller: Biller) -> BillerView:
    return BillerView(biller_id=biller.biller_id, name=biller.name, category=biller.category, iban=biller.iban,
                      bic=biller.bic, reference_pattern=biller.reference_pattern, check_digit=biller.check_digit,
                      active=biller.active)


def _store(platform: Platform) -> BillerStore:
    return BillerStore(platform.pg)


def unknown_biller(biller_id: str) -> Problem:
    return Problem(404, "Unknown biller", f"no biller {biller_id}", "unknown_biller")


def _refused(error: BillerError) -> Problem:
    field = error.detail.split(":", 1)[0]
    return Problem(422, "Invalid request", error.detail, error.reason,
                   errors=[{"loc": ["body", field], "type": error.reason, "msg": error.detail}])


@router.get("/v1/billers", response_model=BillerList, name="list_billers",
            summary="The billers customers can pay (staff see inactive ones too)")
async def list_billers(platform: PlatformDep) -> BillerList:
    billers = await _store(platform).all(active_only=caller().role == "customer")
    return BillerList(billers=[_view(b) for b in billers])


@router.post("/v1/admin/billers", response_model=BillerView, status_code=201, name="create_biller",
             responses=_RESPONSES, summary="Add a biller to the directory")
async def create_biller(body: NewBiller, platform: PlatformDep, view: ViewDep) -> BillerView:
    iban = parse_iban(view, body.iban)
    if view.numbering.is_ours(iban):
        raise Problem(422, "Internal IBAN", "iban: a biller's account at this bank is paid by transfer, not here",
                      "internal_iban")
    try:
        pattern = checked_pattern(body.reference_pattern)
        biller = await _store(platform).add(name=body.name.strip(), category=body.category, iban=iban.machine,
                                            bic=body.bic, reference_pattern=pattern, check_digit=body.check_digit)
    except BillerError as error:
        raise _refused(error) from None
    except BillerExists:
        raise Problem(409, "Biller exists", f"a biller named {body.name!r} exists", "biller_exists") from None
    await platform.access.audit.record("biller_added", details={"biller_id": biller.biller_id, "name": biller.name})
    return _view(biller)


@router.put("/v1/admin/billers/{biller_id}", response_model=BillerView, name="update_biller", responses=_RESPONSES,
            summary="Rename, recategorise, change the reference format of, or retire a biller")
async def update_biller(biller_id: BillerId, body: BillerChange, platform: PlatformDep) -> BillerView:
    try:
        pattern = checked_pattern(body.reference_pattern) if body.reference_pattern is not None else None
        biller = await _store(platform).update(biller_id, name=body.name, category=body.category,
                                               reference_pattern=pattern, active=body.active)
    except BillerError as error:
        raise _refused(error) from None
    except BillerExists:
        raise Problem(409, "Biller exists", f"a biller named {body.name!r} exists", "biller_exists") from None
    if biller is None:
        raise unknown_biller(biller_id)
    await platform.access.audit.record("biller_changed", details={"biller_id": biller.biller_id,
                                                                  "active": str(biller.active).lower()})
    return _view(biller)


@router.post("/v1/bill-payments", status_code=202, responses=COMMAND_RESPONSES, name="create_bill_payment",
             summary="Pay a bill: to a biller of the directory, with the reference on the bill (checked first)")
async def create_bill_payment(body: BillPayment, request: Request, platform: PlatformDep, view: ViewDep,
                              key: IdempotencyKey = None, wait: Wait = False) -> Any:
    source = _require_account(view, body.from_account_id)
    if (answer := await answered_before(request, platform, view, _hashed(body), key, wait, source.account_id)):
        return answer   # even if the biller has left the directory since
    biller = await _store(platform).get(body.biller_id)
    if biller is None or not biller.active:
        raise unknown_biller(body.biller_id)
    try:
        reference = check_reference(body.reference, biller.rule)
    except BillerError as error:
        raise _refused(error) from None
    if source.currency != body.currency:
        raise Problem(422, "Currency mismatch", f"account {source.account_id} holds {source.currency}; a bill is "
                      "paid in the account's currency", "currency_mismatch")
    creditor = parse_iban(view, biller.iban)

    def build(command_id: str) -> c.Command:
        return c.Payment(command_id=command_id, account_id=source.account_id, issued_at=platform.time.now(),
                         correlation_id=command_id, amount=parse_amount(body.amount, body.currency),
                         currency=body.currency, creditor_iban=creditor.machine, creditor_name=biller.name,
                         creditor_bic=biller.bic, remittance_information=reference,
                         counterparty_country=creditor.country, submitted_by=_submitter())

    return await submit(request, platform, view, _hashed(body), key, wait, build, source.customer_id)


@router.get("/v1/payments/{payment_id}/receipt", response_class=HTMLResponse, name="payment_receipt",
            responses={200: {"content": {"text/html": {}}}, 404: _PROBLEMS},
            summary="A payment's receipt: a printable HTML document with its confirmation number")
async def payment_receipt(payment_id: Annotated[str, Path(max_length=100)], view: ViewDep) -> HTMLResponse:
    record = own_payment(view, payment_id)
    rows = [("Confirmation number", confirmation_number(record.payment_id)),
            ("Amount", f"{format_amount(record.amount, record.currency)} {record.currency}"),
            ("From account", record.account_id),
            ("To", record.creditor_name), ("Their IBAN", record.creditor_iban),
            ("Their BIC", record.creditor_bic or "—"),
            ("Reference", record.remittance_information or "—"),
            ("Status", record.status + (f" ({REASON_CODES.get(record.reason_code or '', record.reason_code)})"
                                        if record.reason_code else "")),
            ("Submitted", _moment(record.created_at)),
            ("Last change", _moment(record.updated_at) if record.updated_at else "—"),
            ("Payment id", record.payment_id)]
    cells = "\n".join(f"<tr><th scope=\"row\">{escape(name)}</th><td>{escape(str(value))}</td></tr>"
                      for name, value in rows)
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Payment receipt {escape(confirmation_number(record.payment_id))}</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;color:#111}}
th{{text-align:left;padding:.3rem 1rem .3rem 0;color:#444;font-weight:600}}td{{padding:.3rem 0}}</style></head>
<body><h1>Payment receipt</h1><p>bankstream · a payment to another bank</p>
<table>{cells}</table></body></html>"""
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _moment(moment: datetime) -> str:
    return moment.strftime("%d %b %Y, %H:%M:%S UTC")
