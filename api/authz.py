"""Authentication and authorization, in one place: an app-level dependency that runs before every route.

Each route's access is one entry of POLICIES, keyed by the route's name (FastAPI's `route.name`): who may call
it, whether a customer must own the resource it names, whether it is a command (paused in maintenance mode),
whether staff without MFA may use it, and which rate limits count it. A route missing from the table is refused
to everyone (fail closed), and tests/e2e/test_authz_matrix.py fails for it.

Per request: the bearer token is verified (signature, kid, expiry), then one Redis round trip checks that its
session still exists, counts the request against the rate limits and reads the maintenance flag. Then, in
order: rate limit (429), forced password change and staff MFA enrolment (403), role (403), ownership for
customers (404: another customer's account, command or customer id looks exactly like one that does not exist,
so ids cannot be probed), maintenance for commands (503).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from redis.exceptions import RedisError

from api.audit import Client, set_current_client
from api.deps import Platform, ready_view
from api.ibans import unknown_iban
from api.problems import Problem
from api.security import TokenError
from api.sessions import Exceeded, Limit
from core.account_numbers import InvalidIban
from core.events import CaseReviewed
from core.identity import ROLES, STAFF_ROLES, Principal, Role, current_principal, set_current_principal

log = logging.getLogger(__name__)

TOKEN_URL = "/v1/auth/token"
# Two ways to authorize in Swagger, one header: the OAuth2 password dialog (users without MFA), or pasting an
# access token got from POST /v1/auth/token with the `otp` field (users with MFA, so all staff).
# auto_error=False: public routes take no token, and a missing one is our own 401 problem, not FastAPI's.
bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False,
                              description="Your email and password (accounts without MFA).")
pasted_bearer = HTTPBearer(auto_error=False, scheme_name="AccessToken",
                           description=f"An access token from POST {TOKEN_URL} (with `otp` for MFA accounts).")

Ownership = Literal["account", "customer", "command", "transfer", "new_account", "iban"]
LimitKind = Literal["none", "default", "credentials", "mfa"]


@dataclass(frozen=True, slots=True)
class Policy:
    roles: frozenset[Role] = frozenset()
    public: bool = False              # no token needed (anyone may call it)
    own: Ownership | None = None      # customers only reach their own resource, named by this
    command: bool = False             # puts a command on the log: answers 503 in maintenance mode
    self_service: bool = False        # a caller's own auth endpoints: open to staff still enrolling MFA and
                                      # to sessions that must change their password first
    limit: LimitKind = "default"


def _public(limit: LimitKind = "default") -> Policy:
    return Policy(public=True, limit=limit)


def _allow(*roles: Role, **kw: Any) -> Policy:
    return Policy(roles=frozenset(roles), **kw)


EVERYONE = ROLES
STAFF = tuple(sorted(STAFF_ROLES))
WRITERS: tuple[Role, ...] = ("customer", "teller", "admin")   # who submits banking commands
REVIEWERS: tuple[Role, ...] = ("analyst", "admin")

POLICIES: dict[str, Policy] = {
    # operations and documentation (/docs and /openapi.json are not API routes: always public)
    "healthz": _public("none"),
    "readyz": _public("none"),
    "metrics": _public("none"),
    # the payment rail's calls (api/routes/payments.py): no user, authenticated by the shared secret BANK_RAIL_SECRET
    # in header Rail-Secret, checked by the routes
    "rail_notification": _public("none"),
    "rail_inbound": _public("none"),
    # identity: anyone may register and log in; the rest is each user's own
    "auth_register": _public("credentials"),
    "auth_token": _public("credentials"),
    "auth_refresh": _public("credentials"),
    "auth_logout": _allow(*EVERYONE, self_service=True),
    "auth_me": _allow(*EVERYONE, self_service=True),
    "change_password": _allow(*EVERYONE, self_service=True),
    "mfa_setup": _allow(*EVERYONE, self_service=True, limit="mfa"),
    "mfa_verify": _allow(*EVERYONE, self_service=True, limit="mfa"),
    "list_sessions": _allow(*EVERYONE, self_service=True),
    "revoke_session": _allow(*EVERYONE, self_service=True),
    # banking commands: customers on their own accounts, tellers and admins on any; analysts read only.
    # Unfreezing is the bank's decision (a freeze may be the fraud team's), never the customer's.
    # Money enters or leaves the bank only at the counter: deposits and withdrawals are cash handled by staff
    # (the API records them as channel "cash"); a customer gets 403 like any role a route does not admit, and
    # moves money only by transfers out of their own accounts. Overdrafts are credit: staff grant them.
    "open_account": _allow(*WRITERS, own="new_account", command=True),
    "Deposit": _allow("teller", "admin", command=True),
    "Withdraw": _allow("teller", "admin", command=True),
    "set_overdraft_limit": _allow("teller", "admin", command=True),
    "transfer": _allow(*WRITERS, own="transfer", command=True),
    # a payment to another bank: like a transfer, from an own account (own="transfer" reads from_account_id)
    "create_payment": _allow(*WRITERS, own="transfer", command=True),
    "FreezeAccount": _allow(*WRITERS, own="account", command=True),
    "UnfreezeAccount": _allow("teller", "admin", command=True),
    "CloseAccount": _allow(*WRITERS, own="account", command=True),
    # queries: customers their own, staff all
    "get_command": _allow(*EVERYONE, own="command"),
    "get_account": _allow(*EVERYONE, own="account"),
    # a payment: staff any, customers their own (the route answers 404 for another's, as for an unknown id)
    "get_payment": _allow(*EVERYONE),
    # the payment history: customers their own (another customer's id is 404), staff any customer's or all
    "list_payments": _allow(*EVERYONE),
    "list_payments_csv": _allow(*EVERYONE),
    # a payment's receipt: staff any, customers their own (another's is 404 like an unknown one)
    "payment_receipt": _allow(*EVERYONE),
    # bill payments: the directory for everyone signed in, kept by admins; paying a bill is a payment
    "list_billers": _allow(*EVERYONE),
    "create_biller": _allow("admin"),
    "update_biller": _allow("admin"),
    "create_bill_payment": _allow(*WRITERS, own="transfer", command=True),
    # an account by its IBAN: a customer's own only; another's looks like an IBAN no account has (404)
    "account_by_iban": _allow(*EVERYONE, own="iban"),
    "customer_accounts": _allow(*EVERYONE, own="customer"),
    "transactions": _allow(*EVERYONE, own="account"),
    "transactions_csv": _allow(*EVERYONE, own="account"),
    "statement": _allow(*EVERYONE, own="account"),
    "timeline": _allow(*EVERYONE, own="customer"),
    # point in time: a balance as it was, folded from the ledger log (api/routes/balances.py)
    "account_balance": _allow(*EVERYONE, own="account"),
    # The raw ledger audit trail shows fraud flags and reviewers' decisions (no tipping-off): staff only.
    # Customers have their timeline and transactions.
    "audit": _allow(*STAFF),
    # the bank's books (trial balance, a ledger account's entries): the bank's own accounts, for its staff
    "trial_balance": _allow(*STAFF),
    "ledger_account_entries": _allow(*STAFF),
    # the topic catalogue (topics, record types, fields, examples): for the bank's staff, not its customers
    "catalog": _allow(*STAFF),
    "catalog_markdown": _allow(*STAFF),
    # fraud and AML review (api/routes/admin.py): analysts and admins
    "list_cases": _allow(*REVIEWERS),
    "get_case": _allow(*REVIEWERS),
    "approve_case": _allow(*REVIEWERS, command=True),
    "reject_case": _allow(*REVIEWERS, command=True),
    "ctr_report": _allow(*REVIEWERS),
    "ctr_report_csv": _allow(*REVIEWERS),
    "sar_candidates": _allow(*REVIEWERS),
    "sar_candidates_csv": _allow(*REVIEWERS),
    # user administration: analysts read, admins change
    "list_users": _allow(*REVIEWERS),
    "get_user": _allow(*REVIEWERS),
    "create_user": _allow("admin"),
    "set_role": _allow("admin"),
    "activate_user": _allow("admin"),
    "deactivate_user": _allow("admin"),
    "reset_password": _allow("admin"),
    "revoke_user_sessions": _allow("admin"),
    # the audit trail of people's actions, maintenance mode
    "search_audit_trail": _allow(*REVIEWERS),
    "get_maintenance": _allow(*REVIEWERS),
    "start_maintenance": _allow("admin"),
    "end_maintenance": _allow("admin"),
    # business time (api/routes/clock.py): admins only, and only with BANK_CLOCK_CONTROL on (404 otherwise)
    "get_clock": _allow("admin"),
    "move_clock": _allow("admin"),
    # currency exchange (api/routes/fx.py): staff read the rate table, admins set it; anyone signed in gets a
    # quote (pricing changes nothing: not a command; executing it is a transfer's)
    "get_fx_rates": _allow(*STAFF),
    "set_fx_rates": _allow("admin"),
    "create_fx_quote": _allow(*EVERYONE),
    # payees (api/routes/payees.py): customers keep their own; staff read a customer's (?customer_id=) and one
    # payee, never change them. The store reads a customer's payees by customer id, so another customer's payee
    # is not found (404 unknown_payee, like an unknown id) without an ownership check here.
    "list_payees": _allow(*EVERYONE),
    "get_payee": _allow(*EVERYONE),
    "create_payee": _allow("customer"),
    "update_payee": _allow("customer"),
    "delete_payee": _allow("customer"),
    # standing orders (api/routes/standing_orders.py): customers set up their own (from their own accounts, checked
    # by the route); staff read them (?customer_id=). Another customer's order is a 404 like an unknown one.
    "create_standing_order": _allow("customer", command=True),
    "list_standing_orders": _allow(*EVERYONE),
    "get_standing_order": _allow(*EVERYONE),
    "update_standing_order": _allow("customer", command=True),
    "cancel_standing_order": _allow("customer", command=True),
    # loans (api/routes/loans.py): customers apply for, follow, answer and repay their own (another customer's loan
    # is a 404 like an unknown one, checked by the routes); analysts and admins decide applications (two of them
    # above BANK_LOAN_SECOND_APPROVAL_THRESHOLD); admins keep the products and their rates, and write loans off
    "list_loan_products": _allow(*EVERYONE),
    "get_loan_product": _allow(*EVERYONE),
    "create_loan_product": _allow("admin"),
    "update_loan_product": _allow("admin"),
    "change_loan_rate": _allow("admin"),
    "apply_for_loan": _allow("customer"),
    "list_loans": _allow(*EVERYONE),
    "get_loan": _allow(*EVERYONE),
    "withdraw_loan_application": _allow("customer"),
    "answer_loan_offer": _allow("customer"),
    "decide_loan": _allow(*REVIEWERS),
    "write_off_loan": _allow("admin", command=True),
    "repay_loan": _allow("customer", command=True),
    "prepay_loan": _allow("customer", command=True),
    "get_payoff_quote": _allow(*EVERYONE),
    "pay_off_loan": _allow("customer", command=True),
    "loan_portfolio": _allow(*STAFF),
    "loan_portfolio_csv": _allow(*STAFF),
    # savings interest (api/routes/savings.py): admins keep the products; an account's customer (checked by the
    # route: another's account is a 404) or staff at the counter enrol it; its interest is read like its balance
    "list_savings_products": _allow(*EVERYONE),
    "get_savings_product": _allow(*EVERYONE),
    "create_savings_product": _allow("admin"),
    "change_savings_rate": _allow("admin"),
    "enrol_savings": _allow("customer", "teller", "admin"),
    "account_interest": _allow(*EVERYONE),
    "close_of_business_status": _allow(*STAFF),
    # tellers' cash drawers (api/routes/drawers.py): a teller their own (checked by the route), admins any
    "get_drawer": _allow("teller", "admin"),
    "open_drawer": _allow("teller", "admin", command=True),
    "count_drawer": _allow("teller", "admin", command=True),
    "close_drawer": _allow("teller", "admin", command=True),
    # each user's own profile and contact details (api/routes/profile.py); staff have one too
    "get_profile": _allow(*EVERYONE),
    "update_profile": _allow(*EVERYONE),
    "verify_contact": _allow(*EVERYONE, limit="mfa"),   # codes are guessable: counted like second factors
    # notifications (api/routes/notifications.py): everyone their own inbox, stream and preferences (the store
    # reads by the caller's user id: nobody names another's); staff see failed deliveries, admins re-queue them
    "list_notifications": _allow(*EVERYONE),
    "mark_notification_read": _allow(*EVERYONE),
    "mark_all_notifications_read": _allow(*EVERYONE),
    "notification_stream": _allow(*EVERYONE),
    "get_notification_preferences": _allow(*EVERYONE),
    "put_notification_preferences": _allow(*EVERYONE),
    "failed_notifications": _allow(*STAFF),
    "retry_notification": _allow("admin"),
    # customers as people (issue 18): staff at the counter onboard a customer; only admins erase one
    "create_customer": _allow("teller", "admin"),
    "erase_customer": _allow("admin"),
    # identity verification (api/routes/kyc.py): customers upload their own documents; compliance (analysts,
    # admins) reviews them and reads the report
    "get_my_kyc": _allow("customer"),
    "upload_kyc_document": _allow("customer"),
    "kyc_queue": _allow(*REVIEWERS),
    "get_kyc_case": _allow(*REVIEWERS),
    "get_kyc_document": _allow(*REVIEWERS),
    "verify_kyc": _allow(*REVIEWERS),
    "reject_kyc": _allow(*REVIEWERS),
    "request_kyc_documents": _allow(*REVIEWERS),
    "kyc_report": _allow(*REVIEWERS),
    "kyc_report_csv": _allow(*REVIEWERS),
    # self-service credentials (api/routes/credentials.py): a forgotten password is asked for signed out (counted
    # like log-ins per address); MFA changes re-authenticate and count like second factors; sign-ins are one's own
    "forgot_password": _public("credentials"),
    "reset_forgotten_password": _public("credentials"),
    "mfa_disable": _allow(*EVERYONE, self_service=True, limit="mfa"),
    "mfa_reenrol": _allow(*EVERYONE, self_service=True, limit="mfa"),
    "list_sign_ins": _allow(*EVERYONE, self_service=True),
}


# ---------------------------------------------------------------- the dependency


def platform_of(request: Request) -> Platform:
    return request.app.state.platform


def route_name(request: Request) -> str:
    return str(getattr(request.scope.get("route"), "name", ""))


def client_of(request: Request) -> Client:
    """The caller's address as uvicorn resolved it (X-Forwarded-For only from its trusted proxies)."""
    ip = request.client.host if request.client else "unknown"
    return Client(ip=ip, user_agent=request.headers.get("user-agent"))


async def authorize(request: Request, token: Annotated[str | None, Depends(bearer)],
                    _pasted: Annotated[HTTPAuthorizationCredentials | None, Depends(pasted_bearer)] = None) -> None:
    name = route_name(request)
    policy = POLICIES.get(name)
    if policy is None:
        log.error("route %r has no access policy in api/authz.py: refused", name)
        raise Problem(403, "Forbidden", "this endpoint has no access policy; nobody may call it", "no_policy")
    client = client_of(request)
    set_current_client(client)
    set_current_principal(None)
    platform = platform_of(request)
    try:
        if policy.public:
            await _limit_anonymous(platform, policy, client)
            return
        principal, maintenance = await _authenticate(platform, policy, client, token)
        set_current_principal(principal)
        _authorize_role(principal, policy)
        if principal.role == "customer" and policy.own is not None:
            await _require_ownership(request, platform, principal, policy.own)
        if policy.command and maintenance is not None:
            raise in_maintenance(maintenance)
    except RedisError as error:
        log.error("session store unreachable: %s", error)
        raise _unavailable() from None


def _unavailable() -> Problem:
    problem = Problem(503, "Service unavailable", "the session store is unreachable; retry shortly", "auth_unavailable")
    problem.headers = {"Retry-After": "5"}
    return problem


def _limits(platform: Platform, kind: LimitKind, client: Client, user_id: str | None) -> list[Limit]:
    s, store = platform.settings, platform.access.store
    if kind == "none":
        return []
    limits = [Limit(store.counter("ip", client.ip), s.rate_limit_per_ip, "requests from this address")]
    if user_id is not None:
        limits.append(Limit(store.counter("user", user_id), s.rate_limit_per_user, "requests of this user"))
    if kind == "credentials":
        limits.append(Limit(store.counter("credentials", client.ip), s.auth_rate_limit_per_ip,
                            "sign-in and registration attempts from this address"))
    if kind == "mfa" and user_id is not None:
        limits.append(Limit(store.counter("mfa", user_id), s.mfa_rate_limit_per_user,
                            "two-factor attempts of this user"))
    return limits


def too_many(exceeded: Exceeded, window_s: float) -> Problem:
    limit = exceeded.limit
    problem = Problem(429, "Too many requests", f"too many {limit.scope}: at most {limit.limit} per {window_s:g}s; "
                      f"retry in {exceeded.retry_after}s", "rate_limited", retry_after=exceeded.retry_after)
    problem.headers = {"Retry-After": str(exceeded.retry_after)}
    return problem


async def _limit_anonymous(platform: Platform, policy: Policy, client: Client) -> None:
    limits = _limits(platform, policy.limit, client, None)
    if limits and (exceeded := await platform.access.store.hit(client.ip, limits)) is not None:
        raise too_many(exceeded, platform.settings.rate_limit_window.total_seconds())


def unauthenticated(detail: str, reason: str) -> Problem:
    problem = Problem(401, "Not authenticated", detail, reason)
    problem.headers = {"WWW-Authenticate": "Bearer"}
    return problem


async def _authenticate(platform: Platform, policy: Policy, client: Client,
                        token: str | None) -> tuple[Principal, dict[str, Any] | None]:
    """The caller, from a valid token of a live session within its rate limits; and the maintenance state."""
    access = platform.access
    try:
        if not token:
            raise TokenError("not_authenticated", f"log in first: send `Authorization: Bearer <access token>` "
                             f"(POST {TOKEN_URL})")
        claims = access.keyring.verify(token)
    except TokenError as error:
        await _limit_anonymous(platform, Policy(limit="default"), client)   # token guessing counts per address
        raise unauthenticated(error.detail, error.reason) from None
    check = await access.store.check(claims.session_id, client.ip,
                                     _limits(platform, policy.limit, client, claims.user_id))
    principal = check.principal
    if principal is None or principal.user_id != claims.user_id:
        raise unauthenticated("this session has ended (logged out, revoked or expired); log in again",
                              "session_revoked")
    if check.exceeded is not None:
        raise too_many(check.exceeded, platform.settings.rate_limit_window.total_seconds())
    return principal, check.maintenance


def _authorize_role(principal: Principal, policy: Policy) -> None:
    if not policy.self_service:
        if principal.must_change_password:
            raise Problem(403, "Password change required", "you logged in with a temporary password: set your own "
                          "with POST /v1/auth/password first", "password_change_required")
        if principal.needs_mfa_enrolment():
            raise Problem(403, "MFA enrolment required", "staff accounts must use two-factor authentication: "
                          "enrol with POST /v1/auth/mfa/setup and /v1/auth/mfa/verify (this session can then "
                          "act; later logins need a code)", "mfa_enrollment_required")
    if principal.role not in policy.roles:
        raise Problem(403, "Forbidden", f"the {principal.role} role may not use this endpoint", "forbidden")


def in_maintenance(state: dict[str, Any]) -> Problem:
    retry = int(state.get("retry_after", 300))
    message = state.get("message") or "the bank is under maintenance"
    problem = Problem(503, "Maintenance", f"{message}: commands are paused, queries keep working; retry in about "
                      f"{retry}s", "maintenance", since=state.get("since"))
    problem.headers = {"Retry-After": str(retry)}
    return problem


# ---------------------------------------------------------------- ownership (customers)


def unknown_account(account_id: str) -> Problem:
    """Exactly what the routes answer for an account that does not exist."""
    return Problem(404, "Unknown account", f"account {account_id} does not exist", "unknown_account")


def unknown_customer(customer_id: str) -> Problem:
    return Problem(404, "Unknown customer", f"no customer {customer_id}", "unknown_customer")


def unknown_payee(payee_id: str) -> Problem:
    """Another customer's payee and one that does not exist: the same answer."""
    return Problem(404, "Unknown payee", f"no payee {payee_id}", "unknown_payee")


def unknown_command(command_id: str) -> Problem:
    return Problem(404, "Unknown command", f"no command {command_id}", "unknown_command")


async def _require_ownership(request: Request, platform: Platform, principal: Principal, own: Ownership) -> None:
    """404 unless the resource the request names is the customer's own."""
    params = request.path_params
    if own == "customer":
        if params.get("customer_id") != principal.customer_id:
            raise unknown_customer(str(params.get("customer_id")))
    elif own == "account":
        _require_account(platform, principal, str(params.get("account_id")))
    elif own == "transfer":
        body = await _json_body(request)
        if isinstance(body.get("from_account_id"), str):   # otherwise validation answers 422
            _require_account(platform, principal, body["from_account_id"])
    elif own == "new_account":
        requested = (await _json_body(request)).get("customer_id")
        if requested is not None and requested != principal.customer_id:
            raise unknown_customer(str(requested))
    elif own == "command":
        await _require_command(platform, principal, str(params.get("command_id")))
    elif own == "iban":
        _require_iban(platform, principal, str(params.get("iban")))


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()   # cached on the request: the route reads the same body
    except ValueError:
        return {}   # malformed JSON: the route's validation answers 400
    return body if isinstance(body, dict) else {}


def _ready_view(platform: Platform) -> Any:
    return ready_view(platform)   # a dead follower or one still catching up: 503, as for /readyz


def _require_account(platform: Platform, principal: Principal, account_id: str) -> None:
    state = _ready_view(platform).accounts.get(account_id)
    if state is None or state.customer_id != principal.customer_id:
        raise unknown_account(account_id)


def _require_iban(platform: Platform, principal: Principal, text: str) -> None:
    """404 for the IBAN of another customer's account, exactly as for one no account has. Text that is no IBAN
    at all is the route's to refuse (422): it names nobody's account."""
    view = _ready_view(platform)
    try:
        iban = view.numbering.parse(text)
    except InvalidIban:
        return
    account = view.account_for_iban(iban)
    if account is not None and account.customer_id != principal.customer_id:
        raise unknown_iban(text)


async def _require_command(platform: Platform, principal: Principal, command_id: str) -> None:
    """A customer's command: one they submitted, or one on their account. Reviewers' decisions on their
    movements are not theirs to see (no tipping-off)."""
    outcome = _ready_view(platform).outcomes.get(command_id)
    events = (outcome.events or []) if outcome is not None else []
    if any(isinstance(e, CaseReviewed) for e in events):
        raise unknown_command(command_id)
    if await platform.idempotency.submitter(command_id) == principal.customer_id:
        return
    accounts = {e.account_id for e in events if e.command_id == command_id}
    owners = {platform.view.accounts[a].customer_id for a in accounts if a in platform.view.accounts}
    if owners != {principal.customer_id}:
        raise unknown_command(command_id)


def bound_customer_id(requested: str | None) -> str:
    """The customer a new account is opened for: a customer's own, whatever the body says (the dependency has
    refused another's); the one staff name in the body."""
    principal = current_principal()
    if principal is not None and principal.role == "customer" and principal.customer_id:
        return principal.customer_id
    if requested is None:
        raise Problem(422, "Invalid request", "customer_id: staff open accounts for a customer: name them",
                      "missing", errors=[{"loc": ["body", "customer_id"], "type": "missing",
                                          "msg": "required when staff open an account"}])
    return requested
