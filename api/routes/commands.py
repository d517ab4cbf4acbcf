"""Command endpoints: validate, claim the idempotency key, put the command on Kafka, optionally wait."""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from api.authz import bound_customer_id, unknown_payee
from api.customers import CustomerStore
from api.deps import POSITION_HEADER, Platform, PlatformDep, ViewDep
from api.ibans import external_iban, parse_iban, unknown_iban
from api import fx_store
from api.idempotency import Claim, caller_scope, check_key, request_hash
from api.kyc_limits import receive_limit_for
from api.metrics import API_COMMANDS
from api.ledger_view import LedgerView
from api.models import (CommandAccepted, CommandOutcome, CommandStatus, MovementRequest, OpenAccountRequest,
                        OverdraftLimitRequest, StatusChangeRequest, TransferRequest)
from api.presenters import Owns, command_status
from api.problems import PROBLEM_JSON, Problem, on_refusal
from api.routes.customers import unknown_customer
from core import commands as c
from core import drawers
from core import fx, kyc
from core.commands import derive_id
from core.identity import current_principal
from core.ledger import AccountState
from core.money import MoneyError, amounts_per_currency, format_amount, parse_amount
from core.settings import Settings
from core.readmodel import Positions, format_positions

router = APIRouter(prefix="/v1", tags=["commands"])
log = logging.getLogger(__name__)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", description="retry-safe request key")]
Wait = Annotated[bool, Query(description="wait for the outcome (up to BANK_COMMAND_TIMEOUT)")]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": CommandOutcome, "description": "with wait=true: accepted and posted"},
    # Held by the risk engine (with wait=true) answers 202 too, with the outcome so far: not done, on the record.
    202: {"model": CommandAccepted | CommandOutcome,
          "description": "accepted onto the command log, outcome pending; or (with wait=true) held for review"},
    404: {"description": "unknown account", "content": {PROBLEM_JSON: {}}},
    409: {"description": "Idempotency-Key reused with a different body", "content": {PROBLEM_JSON: {}}},
    422: {"description": "invalid request, or (with wait=true) the command was rejected",
          "content": {PROBLEM_JSON: {}}},
}
# Opening an account answers 201 Created (with wait=true) where the others answer 200.
_OPEN_RESPONSES = {(201 if code == 200 else code): response for code, response in _RESPONSES.items()}


def account_id_for_new_account(command_id: str) -> str:
    return derive_id(command_id, "account")


def _require_account(view: ViewDep, account_id: str) -> AccountState:
    state = view.accounts.get(account_id)
    if state is None:
        raise Problem(404, "Unknown account", f"account {account_id} does not exist", "unknown_account")
    return state


async def submit(request: Request, platform: PlatformDep, view: ViewDep, body: dict[str, Any],
                  key: str | None, wait: bool, build: Callable[[str], c.Command | Awaitable[c.Command]],
                  customer_id: str,
                  created: bool = False, key_scope: str | None = None) -> Any:
    """`key_scope`: whose the key is; the caller's unless the key is shared on purpose (a case's decision)."""
    key = check_key(key) if key is not None else str(uuid.uuid4())
    fingerprint, scope = request_hash(request.method, request.url.path, body), key_scope or caller_scope()
    taken = _taken(request)
    if taken is not None and (taken.key, taken.scope, taken.claim.fingerprint) == (key, scope, fingerprint):
        command_id = taken.claim.command_id   # `answered_before` claimed it
    else:
        taken = None
        command_id = await platform.idempotency.claim(key, fingerprint, scope)
    built = build(command_id)
    command = await built if inspect.isawaitable(built) else built
    if taken is not None:
        taken.sent = True   # the command may be on the log from here on: its key stays claimed
    await platform.bus.send(command, customer_id)
    log.info("command accepted onto the log", extra={"command_id": command_id, "command_type":
                                                     type(command).__name__, "account_id": command.account_id})
    kind = type(command).__name__
    if wait:
        outcome = await view.wait_for_outcome(command_id, platform.settings.command_timeout.total_seconds())
        if outcome is not None:
            API_COMMANDS.labels(kind, outcome.status).inc()
            return final(outcome, command.account_id, created, view.outcome_positions.get(command_id, {}),
                         _caller_owns(view))
    API_COMMANDS.labels(kind, "pending").inc()
    return _accepted(request, command_id, command.account_id)


def _accepted(request: Request, command_id: str, account_id: str) -> JSONResponse:
    status_url = _status_url_template(request.app, str(request.base_url)).replace(_ANY_COMMAND_ID, command_id)
    accepted = CommandAccepted(command_id=command_id, account_id=account_id, status="pending", status_url=status_url)
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": status_url})


_ANY_COMMAND_ID = "00000000-0000-0000-0000-000000000000"


@lru_cache(maxsize=64)
def _status_url_template(app: Any, base_url: str) -> str:
    """GET /v1/commands/{id} as the caller reached the server, for `_ANY_COMMAND_ID`. Built once per base URL:
    `url_for` walks the app's routes, about 3 % of the API's time at saturation with wait=false."""
    return str(app.url_path_for("get_command", command_id=_ANY_COMMAND_ID).make_absolute_url(base_url))


async def answered_before(request: Request, platform: Platform, view: LedgerView, body: dict[str, Any],
                          key: str | None, wait: bool, account_id: str) -> JSONResponse | None:
    """A retry of a request this caller already made with this Idempotency-Key, and the ledger decided: its
    answer, before the route checks anything again (None otherwise: the route goes on). It takes a new key at
    once, one round trip for the lookup and the claim: `submit` sends under it, and a refusal before that gives it
    back (`on_refusal`), so a key counts as used only once a command went out under it. A key used for another
    request is a 409 here.
    The route's checks ran when the request was first made; what they read may have changed since, often
    because of the command itself (a deposit that used up a KYC limit, a loan it paid off, a drawer closed after
    it), and a client whose answer was lost must get that answer, not a refusal of a command that posted.
    `body`: what the route passes `submit`. A command not decided yet goes through the route again: it may never
    have reached the log, and the route sends it (the ledger takes a command id once)."""
    if key is None:
        return None
    key, scope = check_key(key), caller_scope()
    claim = await platform.idempotency.take(key, request_hash(request.method, request.url.path, body), scope)
    if claim.taken:   # a new key: the route goes on, and `submit` sends under it, or a refusal gives it back
        taken = _Taken(key, scope, claim)
        request.state.idempotency_taken = taken
        on_refusal(request, partial(_give_back, platform, taken))
        return None
    command_id = claim.command_id
    outcome = view.outcomes.get(command_id)
    if outcome is None or outcome.status == "pending":
        return None
    if not wait:
        return _accepted(request, command_id, account_id)
    return final(outcome, account_id, False, view.outcome_positions.get(command_id, {}), _caller_owns(view))


@dataclass(slots=True)
class _Taken:
    """A key `answered_before` took for this request (one round trip: the claim and the retry lookup at once)."""
    key: str
    scope: str
    claim: Claim
    sent: bool = False


def _taken(request: Request) -> _Taken | None:
    return getattr(request.state, "idempotency_taken", None)


async def _give_back(platform: Platform, taken: _Taken) -> None:
    """The route refused the request before sending anything: the key was never used, so a corrected request
    may take it (as when the lookup and the claim were two steps)."""
    if not taken.sent:
        await platform.idempotency.release(taken.claim)


def final(outcome: Any, account_id: str, created: bool, positions: Positions, owns: Owns | None) -> JSONResponse:
    """The outcome, with the position of its events: pass it as `?min_position=` to read your own write.
    `owns`: the customer's view of it (see api.presenters.command_status); None for staff."""
    status = command_status(outcome, owns)
    position = format_positions(positions)
    if status.status == "rejected":
        problem = Problem(422, "Command rejected", status.detail or status.reason or "rejected", status.reason,
                          command_id=status.command_id, account_id=account_id, position=position,
                          events=[e.model_dump(mode="json") for e in status.events])
        problem.headers = {POSITION_HEADER: position}  # a rejection is on the record too (audit, reversals)
        raise problem
    body = status.model_dump(mode="json") | {"account_id": account_id, "position": position}
    # Held for a risk reviewer: on the record, not done; the status URL tells how it ends.
    code = 202 if status.status == "held" else 201 if created else 200
    return JSONResponse(body, status_code=code, headers={POSITION_HEADER: position})


def _caller_owns(view: LedgerView) -> Owns | None:
    """For a customer, whether they own an account, as the server's view of the accounts says; None for staff
    (they see every side of a command). No caller counts as a customer who owns nothing: fail closed."""
    principal = current_principal()
    if principal is not None and principal.staff:
        return None
    customer_id = principal.customer_id if principal is not None else None

    def owns(account_id: str) -> bool:
        account = view.accounts.get(account_id)
        return customer_id is not None and account is not None and account.customer_id == customer_id

    return owns


def _customer_calling() -> bool:
    principal = current_principal()
    return principal is not None and principal.role == "customer"


def _hashed(body: Any) -> dict[str, Any]:
    """The body as the idempotency hash sees it: fields left at their defaults are left out, so a retry
    from a client that predates a new optional field still matches its first attempt."""
    return body.model_dump(exclude_defaults=True)


def _envelope(platform: Platform, command_id: str, account_id: str) -> dict[str, Any]:
    # issued_at is business time (infra/clock.py): risk windows and, later, standing orders read it, so
    # commands of a demo whose clock was moved forward stay in one time frame.
    return dict(command_id=command_id, account_id=account_id, issued_at=platform.time.now(),
                correlation_id=command_id)


def _submitter() -> str | None:
    """The user id of the caller, carried by money movements so nobody decides the case of their own."""
    principal = current_principal()
    return principal.user_id if principal is not None else None


def _needs_second_approval(settings: Settings, amount: int, currency: str) -> bool:
    """Maker-checker: cash above BANK_CASH_DUAL_CONTROL_THRESHOLD(S) waits for a second staff member."""
    thresholds = amounts_per_currency(settings.cash_dual_control_threshold, settings.cash_dual_control_thresholds,
                                      "BANK_CASH_DUAL_CONTROL_THRESHOLD(S)")
    return amount > thresholds[currency]


@router.post("/accounts", status_code=202, responses=_OPEN_RESPONSES, summary="Open an account")
async def open_account(body: OpenAccountRequest, request: Request, platform: PlatformDep, view: ViewDep,
                       key: IdempotencyKey = None, wait: Wait = False) -> Any:
    customer_id = bound_customer_id(body.customer_id)   # a customer's own; staff name the customer
    customers = CustomerStore(platform.pg)
    if not await customers.exists(customer_id):   # staff named nobody, or an erased customer
        raise unknown_customer(customer_id)
    if platform.settings.kyc_tiers:
        open_accounts = sum(1 for a in view.accounts.values() if a.customer_id == customer_id and a.status != "closed")
        _within_tier(kyc.may_open_account(await customers.status(customer_id), open_accounts))
    if body.overdraft_minor and _customer_calling():
        raise Problem(422, "Overdraft requires staff", "overdraft_limit: an overdraft is credit the bank grants; "
                      "open the account without one and ask the bank", "overdraft_requires_staff",
                      errors=[{"loc": ["body", "overdraft_limit"], "type": "overdraft_requires_staff",
                               "msg": "only staff set an overdraft limit"}])

    receive_limit = receive_limit_for(platform.settings, await customers.status(customer_id), body.currency)

    async def build(command_id: str) -> c.Command:
        account_id = account_id_for_new_account(command_id)
        # Allocated by the server, keyed by the account id: a retry of this request gets the same number.
        account_number = await platform.numbers.allocate(account_id, view.number_taken)
        return c.OpenAccount(**_envelope(platform, command_id, account_id), customer_id=customer_id, currency=body.currency,
                             overdraft_limit=body.overdraft_minor, account_number=account_number,
                             receive_limit=receive_limit)

    return await submit(request, platform, view, body.model_dump() | {"customer_id": customer_id}, key, wait, build,
                        customer_id, created=True)


def _check_drawer(platform: Platform, view: LedgerView, currency: str) -> None:
    """A teller takes or pays cash only with their drawer open in its currency (BANK_DRAWER_REQUIRED)."""
    principal = current_principal()
    if not platform.settings.drawer_required or principal is None or principal.role != "teller":
        return
    try:
        drawers.check_cash(view.drawers.get(principal.user_id), principal.user_id, currency)
    except drawers.DrawerError as error:
        raise Problem(409, "Drawer not open", f"{error.detail}: open it with POST /v1/teller/drawers/me/open",
                      error.reason) from None


def _movement_route(path: str, command_type: type[c.Deposit] | type[c.Withdraw], summary: str) -> None:
    @router.post(path, status_code=202, responses=_RESPONSES, summary=summary, name=command_type.__name__)
    async def movement(account_id: str, body: MovementRequest, request: Request, platform: PlatformDep,
                       view: ViewDep, key: IdempotencyKey = None, wait: Wait = False) -> Any:
        account = _require_account(view, account_id)
        if (answer := await answered_before(request, platform, view, _hashed(body), key, wait, account_id)):
            return answer
        _check_drawer(platform, view, body.currency)
        if command_type is c.Deposit:
            await _may_receive(platform, view, account, body.minor)
        # Only staff reach this route (api/authz.py): money paid in or out at the counter is cash.
        second_approval = _needs_second_approval(platform.settings, body.minor, body.currency)

        def build(command_id: str) -> c.Command:
            return command_type(**_envelope(platform, command_id, account_id), amount=body.minor, currency=body.currency,
                                reference=body.reference, channel="cash",
                                counterparty_name=body.counterparty_name,
                                counterparty_country=body.counterparty_country, submitted_by=_submitter(),
                                second_approval=second_approval)

        return await submit(request, platform, view, _hashed(body), key, wait, build, account.customer_id)


_movement_route("/accounts/{account_id}/deposits", c.Deposit, "Deposit money")
_movement_route("/accounts/{account_id}/withdrawals", c.Withdraw, "Withdraw money")


@router.post("/transfers", status_code=202, responses=_RESPONSES,
             summary="Transfer between two accounts of the bank (the destination by account id or IBAN)")
async def transfer(body: TransferRequest, request: Request, platform: PlatformDep, view: ViewDep,
                   key: IdempotencyKey = None, wait: Wait = False) -> Any:
    source = _require_account(view, body.from_account_id)
    if not body.quote_id and (answer := await answered_before(request, platform, view, _hashed(body), key, wait,
                                                              source.account_id)):
        return answer   # (an exchange's key is its quote: `_exchange` answers its retries)
    destination, payee_added_at = await _destination(platform, view, body, source)
    exchange = await _exchange(platform, body, source, destination) if body.quote_id else None
    for account in ((source, destination) if exchange is None else ()):   # a quote's currencies are checked
        if account.currency != body.currency:
            raise Problem(422, "Currency mismatch", f"account {account.account_id} holds {account.currency}; "
                          f"a transfer between two currencies needs an FX quote (quote_id)", "currency_mismatch")
    await _may_receive(platform, view, destination, exchange["buy_amount"] if exchange else body.minor)
    if exchange is not None:   # the quote is the key: executed once, whatever Idempotency-Key a retry carries
        key = _quote_key(exchange["quote_id"])

    def build(command_id: str) -> c.Command:
        return c.Transfer(**_envelope(platform, command_id, body.from_account_id), to_account_id=destination.account_id,
                          amount=body.minor, currency=body.currency, reference=body.reference,
                          counterparty_name=body.counterparty_name, counterparty_country=body.counterparty_country,
                          submitted_by=_submitter(), payee_added_at=payee_added_at, exchange=exchange)

    return await submit(request, platform, view, _hashed(body), key, wait, build, source.customer_id)


def _quote_key(quote_id: str) -> str:
    return f"fx-quote:{quote_id}"


async def _exchange(platform: Platform, body: TransferRequest, source: AccountState,
                    destination: AccountState) -> dict[str, Any]:
    """The caller's unexpired quote, agreeing with the transfer and both accounts: what the ledger will post."""
    kept = await fx_store.quote_by_id(platform.pg, str(body.quote_id))
    principal = current_principal()
    if kept is None or principal is None or kept[1] != principal.user_id:
        raise Problem(404, "Unknown quote", f"no FX quote {body.quote_id} of yours", "unknown_quote")
    priced = kept[0]
    try:
        fx.check_not_expired(priced, platform.time.now())
    except fx.FxError as error:
        # Executed while it was valid: a retry (its answer lost on the way) gets that outcome, not a refusal
        # that would send the customer for a new quote and a second exchange.
        if await platform.idempotency.claimed(_quote_key(priced.id), caller_scope()) is None:
            raise Problem(422, "Quote expired", f"{error.detail}: ask for a new one", error.reason) from None
    if (body.minor, body.currency) != (priced.sell_amount, priced.sell_currency):
        sells = format_amount(priced.sell_amount, priced.sell_currency)
        raise Problem(422, "Not the quote's amount", f"the quote sells {sells} {priced.sell_currency}: the "
                      "transfer's amount and currency", "quote_mismatch")
    if (source.currency, destination.currency) != (priced.sell_currency, priced.buy_currency):
        raise Problem(422, "Not the quote's currencies", f"the quote exchanges {priced.sell_currency} for "
                      f"{priced.buy_currency}: from an account in the one to an account in the other",
                      "quote_mismatch")
    return fx.exchange_of(priced)


async def _destination(platform: Platform, view: LedgerView, body: TransferRequest,
                       source: AccountState) -> tuple[AccountState, datetime | None]:
    """The destination, by id, by IBAN or by payee. The client names it; the server decides which account that
    is: an IBAN (a payee's too) resolves through the ledger view's index of our account numbers, never through
    anything the client says. A payee must be one of the source account's customer's (404 otherwise, as for an
    unknown one: the caller owns the source, api/authz.py). With a payee, also when it was added: the fraud rules'
    cooling-off period counts from it."""
    if body.payee_id is not None:
        payee = await platform.payees.get(body.payee_id, source.customer_id)
        if payee is None:
            raise unknown_payee(body.payee_id)
        return _account_of_iban(view, payee.iban), payee.added_at
    if body.to_iban is None:
        return _require_account(view, str(body.to_account_id)), None
    return _account_of_iban(view, body.to_iban), None


def _account_of_iban(view: LedgerView, text: str) -> AccountState:
    iban = parse_iban(view, text)
    if not view.numbering.is_ours(iban):
        raise external_iban(iban)
    account = view.account_for_iban(iban)
    if account is None:
        raise unknown_iban(text)
    return account


def _within_tier(check: kyc.TierCheck) -> None:
    if not check.allowed:
        raise Problem(422, "KYC limit", check.detail or "not allowed before KYC", "kyc_limit")


async def _may_receive(platform: Platform, view: LedgerView, account: AccountState, amount: int) -> None:
    """An unverified customer's account takes at most BANK_KYC_UNVERIFIED_RECEIVE_LIMIT(S) in all (core/kyc.py).

    Checked here first for a quick answer; the ledger enforces it too, on the account's receive limit
    (api/kyc_limits.py), so a producer other than the API, or a transfer's credit, cannot pass it either."""
    settings = platform.settings
    if not settings.kyc_tiers:
        return
    limits = amounts_per_currency(settings.kyc_unverified_receive_limit, settings.kyc_unverified_receive_limits,
                                  "BANK_KYC_UNVERIFIED_RECEIVE_LIMIT(S)")
    status = await CustomerStore(platform.pg).status(account.customer_id)
    _within_tier(kyc.may_receive(status, view.received.get(account.account_id, 0), amount, limits[account.currency]))


def _status_route(action: str, command_type: type[c.Command], summary: str) -> None:
    @router.post(f"/accounts/{{account_id}}/{action}", status_code=202, responses=_RESPONSES, summary=summary,
                 name=command_type.__name__)
    async def change_status(account_id: str, request: Request, platform: PlatformDep, view: ViewDep,
                            body: StatusChangeRequest | None = None, key: IdempotencyKey = None,
                            wait: Wait = False) -> Any:
        account = _require_account(view, account_id)
        body = body or StatusChangeRequest()

        def build(command_id: str) -> c.Command:
            return command_type(**_envelope(platform, command_id, account_id), reason=body.reason)

        return await submit(request, platform, view, body.model_dump(), key, wait, build, account.customer_id)


_status_route("freeze", c.FreezeAccount, "Freeze an account (no money moves in or out)")
_status_route("unfreeze", c.UnfreezeAccount, "Unfreeze an account")
_status_route("close", c.CloseAccount, "Close an account (only at zero balance)")


@router.put("/accounts/{account_id}/overdraft-limit", status_code=202, responses=_RESPONSES,
            summary="Set an account's overdraft limit (staff; at most BANK_MAX_OVERDRAFT_LIMIT)",
            name="set_overdraft_limit")
async def set_overdraft_limit(account_id: str, body: OverdraftLimitRequest, request: Request, platform: PlatformDep,
                              view: ViewDep, key: IdempotencyKey = None, wait: Wait = False) -> Any:
    account = _require_account(view, account_id)
    try:
        limit = parse_amount(body.overdraft_limit, account.currency, allow_zero=True)
    except MoneyError as error:
        raise Problem(422, "Invalid request", f"overdraft_limit: {error.detail}", error.reason) from None

    def build(command_id: str) -> c.Command:
        return c.SetOverdraftLimit(**_envelope(platform, command_id, account_id), overdraft_limit=limit,
                                   currency=account.currency, reason=body.reason)

    return await submit(request, platform, view, body.model_dump(), key, wait, build, account.customer_id)


@router.get("/commands/{command_id}", response_model=CommandStatus, name="get_command", tags=["queries"],
            responses={404: {"content": {PROBLEM_JSON: {}}}})
async def get_command(command_id: str, platform: PlatformDep, view: ViewDep) -> CommandStatus:
    outcome = view.outcomes.get(command_id)
    if outcome is not None:
        return command_status(outcome, _caller_owns(view))
    if await platform.idempotency.known(command_id):
        return CommandStatus(command_id=command_id, status="pending")
    raise Problem(404, "Unknown command", f"no command {command_id}", "unknown_command")
