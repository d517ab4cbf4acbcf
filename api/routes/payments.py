"""External payments (issue 14 point 6): customers pay other banks' accounts; the payment rail reports back.

`POST /v1/payments` puts a Payment command on the log like a transfer (scored by the risk agent, decided by the
ledger: customer -> clearing); the transfer saga writes its instruction onto bank.payments.outbound and the gateway
connector (gateway/connector.py) hands it to the rail. `GET /v1/payments/{id}` shows its status as the API's
ledger view folds it (core/payments.py): pending -> sent -> settled | returned (with the ISO 20022 reason code).

The rail calls the bank on `/v1/rail/*`, authenticated by the shared secret BANK_RAIL_SECRET in header
`Rail-Secret` (the routes are public to the bearer-token dependency: a rail is no user):
- `POST /v1/rail/notifications`: an instruction settled or returned -> RecordPaymentOutcome onto the ledger's
  command topic (the ledger ends the payment once; a repeated report is a duplicate or rejected, never posted).
- `POST /v1/rail/inbound`: an inbound credit transfer to one of our IBANs -> ReceivePayment, answered with the
  ledger's decision: `credited`, or `returned` with the reason code (AC01 unknown account, AC04 closed, AC06
  frozen, AM03 currency). Answered 503 while the decision is not known yet: the rail retries with the same
  instruction id, which names the command, so an inbound credit posts once.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from api.deps import Platform, PlatformDep, ViewDep
from api.ibans import parse_iban
from api.ledger_view import LedgerView
from api.models import PaymentRequest, PaymentView, RailInbound, RailNotification
from api.problems import PROBLEM_JSON, Problem
from api.routes.commands import (_RESPONSES, IdempotencyKey, Wait, _hashed, _require_account, _submitter,
                                 answered_before, submit)
from core import commands as c
from core.account_numbers import InvalidIban
from core.identity import current_principal
from core.money import format_amount
from core.payment_history import confirmation_number
from core.payments import REASON_CODES, PaymentRecord, inbound_return_code

router = APIRouter(prefix="/v1", tags=["payments"])
RAIL_SECRET_HEADER = "Rail-Secret"


def _problems(**codes: str) -> dict[int | str, dict[str, Any]]:
    return {int(code[1:]): {"description": text, "content": {PROBLEM_JSON: {}}} for code, text in codes.items()}


_UNKNOWN = _problems(_404="unknown payment (or another customer's)")
_RAIL = _problems(_401="no or a wrong Rail-Secret", _503="BANK_RAIL_SECRET unset, or (inbound) not decided yet")


def unknown_payment(payment_id: str) -> Problem:
    return Problem(404, "Unknown payment", f"payment {payment_id} does not exist", "unknown_payment")


@router.post("/payments", status_code=202, responses=_RESPONSES, name="create_payment",
             summary="Pay another bank's account (an IBAN) from one of your accounts, through the payment rail")
async def create_payment(body: PaymentRequest, request: Request, platform: PlatformDep, view: ViewDep,
                         key: IdempotencyKey = None, wait: Wait = False) -> Any:
    source = _require_account(view, body.from_account_id)
    if (answer := await answered_before(request, platform, view, _hashed(body), key, wait, source.account_id)):
        return answer
    creditor = parse_iban(view, body.creditor_iban)
    if view.numbering.is_ours(creditor):
        raise Problem(422, "Internal IBAN", f"{creditor.formatted} is an account of this bank: use POST "
                      "/v1/transfers", "internal_iban")
    if source.currency != body.currency:
        raise Problem(422, "Currency mismatch", f"account {source.account_id} holds {source.currency}; a payment "
                      "leaves in the account's currency", "currency_mismatch")

    def build(command_id: str) -> c.Command:
        return c.Payment(command_id=command_id, account_id=source.account_id, issued_at=platform.time.now(),
                         correlation_id=command_id, amount=body.minor, currency=body.currency,
                         creditor_iban=creditor.machine, creditor_name=body.creditor_name,
                         creditor_bic=body.creditor_bic, remittance_information=body.remittance_information,
                         counterparty_country=creditor.country, submitted_by=_submitter())

    return await submit(request, platform, view, _hashed(body), key, wait, build, source.customer_id)


@router.get("/payments/{payment_id}", response_model=PaymentView, name="get_payment", responses=_UNKNOWN,
            summary="An outbound payment's status: pending, sent, settled or returned (with the reason code)")
async def get_payment(payment_id: str, view: ViewDep) -> PaymentView:
    return _present(own_payment(view, payment_id))


def own_payment(view: LedgerView, payment_id: str) -> PaymentRecord:
    """The payment, for staff any; for a customer their own only: another's looks exactly like one that does not
    exist (404 unknown_payment)."""
    record = view.payments.get(payment_id)
    principal = current_principal()
    if record is None or principal is None:
        raise unknown_payment(payment_id)
    if not principal.staff:
        account = view.accounts.get(record.account_id)
        if account is None or account.customer_id != principal.customer_id:
            raise unknown_payment(payment_id)
    return record


def _present(record: PaymentRecord) -> PaymentView:
    return PaymentView(payment_id=record.payment_id, confirmation=confirmation_number(record.payment_id),
                       from_account_id=record.account_id,
                       amount=format_amount(record.amount, record.currency), currency=record.currency,
                       creditor_iban=record.creditor_iban, creditor_name=record.creditor_name,
                       creditor_bic=record.creditor_bic, remittance_information=record.remittance_information,
                       status=record.status, reason_code=record.reason_code,
                       reason=REASON_CODES.get(record.reason_code or ""), created_at=record.created_at,
                       updated_at=record.updated_at)


# ---------------------------------------------------------------- the rail's side

RailSecret = Annotated[str | None, Header(alias=RAIL_SECRET_HEADER, description="the shared secret BANK_RAIL_SECRET")]


def _require_rail(platform: Platform, secret: str | None) -> None:
    expected = platform.settings.rail_secret
    if expected is None:
        raise Problem(503, "Rail not configured", "BANK_RAIL_SECRET is not set: no rail may call the bank",
                      "rail_disabled")
    if secret is None or not hmac.compare_digest(secret.encode(), expected.get_secret_value().encode()):
        problem = Problem(401, "Unauthenticated", f"a rail authenticates with header {RAIL_SECRET_HEADER}",
                          "invalid_rail_secret")
        problem.headers = {"WWW-Authenticate": RAIL_SECRET_HEADER}
        raise problem


@router.post("/rail/notifications", status_code=202, name="rail_notification",
             responses=_RAIL | _problems(_404="unknown instruction", _422="a return without its reason code"),
             summary="For the payment rail: an instruction settled or returned")
async def rail_notification(body: RailNotification, platform: PlatformDep, view: ViewDep,
                            secret: RailSecret = None) -> JSONResponse:
    _require_rail(platform, secret)
    record = view.payments.get(body.instruction_id)
    if record is None:
        raise unknown_payment(body.instruction_id)
    if body.status == "returned" and body.reason_code is None:
        raise Problem(422, "Invalid request", "reason_code: a return needs its ISO 20022 reason code", "missing")
    command_id = c.payment_outcome_id(record.payment_id, body.status)
    # Its own correlation id: a repeated report the ledger rejects must not read as the payment's own outcome.
    await platform.bus.send_to_ledger(c.RecordPaymentOutcome(
        command_id=command_id, account_id=record.account_id, issued_at=platform.time.now(), correlation_id=command_id,
        payment_id=record.payment_id, outcome=body.status, reason_code=body.reason_code,
        rail_reference=body.rail_reference))
    return JSONResponse({"instruction_id": body.instruction_id, "accepted": True}, status_code=202)


@router.post("/rail/inbound", name="rail_inbound", responses=_RAIL,
             summary="For the payment rail: an inbound credit transfer to one of the bank's IBANs")
async def rail_inbound(body: RailInbound, platform: PlatformDep, view: ViewDep,
                       secret: RailSecret = None) -> JSONResponse:
    _require_rail(platform, secret)
    try:
        iban = view.numbering.parse(body.creditor_iban)
    except InvalidIban:
        return _returned(body.instruction_id, "AC01")
    account = view.account_for_iban(iban)
    if account is None:
        return _returned(body.instruction_id, "AC01")
    command_id = c.inbound_payment_id(body.instruction_id)
    outcome = view.outcomes.get(command_id)
    if outcome is None or outcome.status == "pending":
        await platform.bus.send_to_ledger(c.ReceivePayment(
            command_id=command_id, account_id=account.account_id, issued_at=platform.time.now(),
            correlation_id=command_id, payment_id=body.instruction_id, amount=body.minor, currency=body.currency,
            debtor_iban=body.debtor_iban, remittance_information=body.remittance_information))
        outcome = await view.wait_for_outcome(command_id, platform.settings.command_timeout.total_seconds())
    if outcome is None:
        problem = Problem(503, "Not decided yet", "the ledger has not decided the credit yet: deliver it again",
                          "pending")
        problem.headers = {"Retry-After": "1"}
        raise problem
    if outcome.status == "rejected":
        return _returned(body.instruction_id, inbound_return_code(outcome.reason))
    return JSONResponse({"instruction_id": body.instruction_id, "status": "credited"})


def _returned(instruction_id: str, code: str) -> JSONResponse:
    return JSONResponse({"instruction_id": instruction_id, "status": "returned", "reason_code": code,
                         "reason": REASON_CODES.get(code)})
