"""Payees (issue 16, point 1): the people and companies a customer pays, each an IBAN of this bank or another.

Adding or renaming one runs confirmation of payee (core/payees.py) when the IBAN is ours: the name given is
compared with the account holder's. Customers manage their own payees; staff may read them (`?customer_id=`).
Another customer's payee answers exactly like an unknown one (404 unknown_payee). Every change is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.authz import unknown_customer, unknown_payee
from api.deps import Platform, PlatformDep, ViewDep
from api.ibans import parse_iban
from api.ledger_view import LedgerView
from api.payee_models import NewPayee, PayeeChange, PayeeList, PayeeView
from api.payees import Payee, PayeeExists
from api.problems import PROBLEM_JSON, Problem
from api.routes.auth import caller
from core.account_numbers import Iban
from core.payees import Confirmation, confirm_name

router = APIRouter(prefix="/v1/payees", tags=["payees"])

_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {404: _PROBLEMS, 422: _PROBLEMS}


def _view(view: LedgerView, payee: Payee, name_on_file: str | None = None) -> PayeeView:
    return PayeeView(payee_id=payee.payee_id, customer_id=payee.customer_id, iban=payee.iban,
                     iban_formatted=view.numbering.parse(payee.iban).formatted, name=payee.name,
                     nickname=payee.nickname, internal=payee.internal, confirmation=payee.confirmation,
                     name_on_file=name_on_file, added_at=payee.added_at, updated_at=payee.updated_at)


async def _confirm(platform: Platform, view: LedgerView, iban: Iban, name: str) -> tuple[Confirmation, str | None]:
    """The outcome, and the name on file to show (on a close match only: never on no match, which would tell
    anyone who holds an IBAN). An IBAN of ours that no account has is refused: it cannot be paid."""
    if not view.numbering.is_ours(iban):
        return "not_applicable", None
    account = view.account_for_iban(iban)
    holder = await platform.payees.holder_name(account.customer_id) if account is not None else None
    if account is None or holder is None:
        raise Problem(422, "Unknown account", f"iban: no account of this bank has the IBAN {iban.formatted}",
                      "unknown_account")
    outcome = confirm_name(name, holder)
    return outcome, holder if outcome == "close_match" else None


def _own_customer_id() -> str:
    customer_id = caller().customer_id
    assert customer_id is not None, "api/authz.py admits only customers to the routes that change payees"
    return customer_id


@router.get("", response_model=PayeeList, name="list_payees", summary="A customer's payees (staff: ?customer_id=)",
            responses=_RESPONSES)
async def list_payees(platform: PlatformDep, view: ViewDep,
                      customer_id: Annotated[str | None, Query(max_length=64, description="staff: whose")] = None,
                      ) -> PayeeList:
    principal = caller()
    if principal.role == "customer":
        if customer_id is not None and customer_id != principal.customer_id:
            raise unknown_customer(customer_id)   # like any other customer id they name
        customer_id = principal.customer_id
    if customer_id is None:
        raise Problem(422, "Invalid request", "customer_id: staff name the customer whose payees to list", "missing",
                      errors=[{"loc": ["query", "customer_id"], "type": "missing", "msg": "required for staff"}])
    payees = await platform.payees.of_customer(customer_id)
    return PayeeList(customer_id=customer_id, payees=[_view(view, payee) for payee in payees])


@router.post("", response_model=PayeeView, status_code=201, name="create_payee", summary="Add a payee",
             responses=_RESPONSES | {409: _PROBLEMS})
async def create_payee(body: NewPayee, platform: PlatformDep, view: ViewDep) -> PayeeView:
    customer_id = _own_customer_id()
    iban = parse_iban(view, body.iban)
    confirmation, name_on_file = await _confirm(platform, view, iban, body.name)
    try:
        payee = await platform.payees.add(customer_id=customer_id, iban=iban.machine, name=body.name,
                                          nickname=body.nickname, internal=view.numbering.is_ours(iban),
                                          confirmation=confirmation, added_at=platform.time.now())
    except PayeeExists:
        raise Problem(409, "Payee exists", f"you have a payee with the IBAN {iban.formatted} already: change its "
                      f"name with PUT", "payee_exists") from None
    await platform.access.audit.record("payee_added", details=_audited(payee))
    return _view(view, payee, name_on_file)


@router.get("/{payee_id}", response_model=PayeeView, name="get_payee", summary="One payee", responses=_RESPONSES)
async def get_payee(payee_id: str, platform: PlatformDep, view: ViewDep) -> PayeeView:
    principal = caller()
    owner = principal.customer_id if principal.role == "customer" else None
    payee = await platform.payees.get(payee_id, owner)
    if payee is None:
        raise unknown_payee(payee_id)
    return _view(view, payee)


@router.put("/{payee_id}", response_model=PayeeView, name="update_payee", responses=_RESPONSES,
            summary="Rename a payee (the name is confirmed again; the IBAN and the time it was added stay)")
async def update_payee(payee_id: str, body: PayeeChange, platform: PlatformDep, view: ViewDep) -> PayeeView:
    customer_id = _own_customer_id()
    payee = await platform.payees.get(payee_id, customer_id)
    if payee is None:
        raise unknown_payee(payee_id)
    confirmation, name_on_file = await _confirm(platform, view, view.numbering.parse(payee.iban), body.name)
    changed = await platform.payees.rename(payee_id, customer_id, body.name, body.nickname, confirmation)
    if changed is None:   # removed meanwhile
        raise unknown_payee(payee_id)
    await platform.access.audit.record("payee_changed", details=_audited(changed))
    return _view(view, changed, name_on_file)


@router.delete("/{payee_id}", status_code=204, name="delete_payee", summary="Remove a payee",
               responses=_RESPONSES)
async def delete_payee(payee_id: str, platform: PlatformDep) -> Response:
    customer_id = _own_customer_id()
    if not await platform.payees.remove(payee_id, customer_id):
        raise unknown_payee(payee_id)
    await platform.access.audit.record("payee_removed", details={"payee_id": payee_id, "customer_id": customer_id})
    return Response(status_code=204)


def _audited(payee: Payee) -> dict[str, str]:
    """What the audit trail keeps of a change: which payee and the outcome; not the payee's name, which is
    personal data the customer may remove (the trail is kept for years)."""
    return {"payee_id": payee.payee_id, "customer_id": payee.customer_id, "internal": str(payee.internal).lower(),
            "confirmation": payee.confirmation}
