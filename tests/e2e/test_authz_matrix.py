"""The authorization matrix: every API route × every role (and anonymous) × own/other's resource, exact status.

The routes are enumerated from the application itself, so a route added without an expectation here fails
(and one added without a policy in api/authz.py is refused to everyone, which this test also shows). "own" is
customer A's resource, "other" customer B's; the customer cells act as A. Staff see both alike.

Each cell makes a real request against the running stack. State-changing cells get fresh resources (a fresh
account to freeze, a fresh user to deactivate, a session of their own to log out) so cells do not depend on
each other's order.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pyotp
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from api.authz import POLICIES
from api.main import app
from core.readmodel import format_positions, parse_positions
from tests.support import (STAFF_ROLES, BankAuth, Identity, bearer, create_staff, login, new_password,
                           register_customer, staff)

ANON, CUSTOMER = "anonymous", "customer"
ROLES = (ANON, CUSTOMER, *STAFF_ROLES)
OWN, OTHER, ANY = "own", "other", "any"

# ---------------------------------------------------------------- the expected matrix
# A cell is a status, or (own, other) for routes whose resource belongs to someone.

Cell = int | tuple[int, int]


def row(anonymous: Cell, customer: Cell, teller: Cell, analyst: Cell, admin: Cell) -> dict[str, Cell]:
    return dict(zip(ROLES, (anonymous, customer, teller, analyst, admin), strict=True))


def everyone(status: int) -> dict[str, Cell]:
    return row(status, status, status, status, status)


def reviewers(ok: int) -> dict[str, Cell]:
    return row(401, 403, 403, ok, ok)


def admins(ok: int) -> dict[str, Cell]:
    return row(401, 403, 403, 403, ok)


def signed_in(ok: int) -> dict[str, Cell]:
    return row(401, ok, ok, ok, ok)


MINE = (200, 404)           # a customer's own resource, another customer's
EXPECTED: dict[str, dict[str, Cell]] = {
    "healthz": everyone(200), "readyz": everyone(200), "metrics": everyone(200),
    "auth_register": everyone(201), "auth_token": everyone(200), "auth_refresh": everyone(200),
    "auth_logout": signed_in(204), "auth_me": signed_in(200), "change_password": signed_in(200),
    "mfa_setup": row(401, 200, 409, 409, 409),          # staff have MFA already
    "mfa_verify": row(401, 200, 409, 409, 409),
    "list_sessions": signed_in(200),
    "revoke_session": row(401, (204, 404), (204, 404), (204, 404), (204, 404)),   # only one's own sessions
    "open_account": row(401, (201, 404), 201, 403, 201),
    # Cash in and out at the counter, and credit, are the bank's: a customer gets 403 like any role a route does
    # not admit, on any account (a customer moves money by transfers from their own accounts).
    "Deposit": row(401, 403, 200, 403, 200),
    "Withdraw": row(401, 403, 200, 403, 200),
    "set_overdraft_limit": row(401, 403, 200, 403, 200),
    "transfer": row(401, MINE, 200, 403, 200),
    "create_payment": row(401, MINE, 200, 403, 200),
    "get_payment": row(401, 404, 404, 404, 404),             # an unknown payment: authorized, then 404
    "list_payments": row(401, MINE, 200, 200, 200),          # the history of a customer (?customer_id=)
    "list_payments_csv": row(401, MINE, 200, 200, 200),
    "payment_receipt": row(401, 404, 404, 404, 404),         # an unknown payment: authorized, then 404
    "list_billers": row(401, 200, 200, 200, 200),
    "create_biller": admins(201),
    "update_biller": admins(404),                            # an unknown biller: authorized, then 404
    "create_bill_payment": row(401, 404, 404, 403, 404),     # an unknown biller (another's account: 404 first)
    # the payment rail's endpoints: no user may call them, only the rail with the shared secret (header Rail-Secret)
    "rail_notification": everyone(401), "rail_inbound": everyone(401),
    "FreezeAccount": row(401, MINE, 200, 403, 200),
    "UnfreezeAccount": row(401, (403, 403), 200, 403, 200),   # the bank's decision, never the customer's
    "CloseAccount": row(401, MINE, 200, 403, 200),
    "get_command": row(401, MINE, 200, 200, 200),
    "get_account": row(401, MINE, 200, 200, 200),
    "account_by_iban": row(401, MINE, 200, 200, 200),
    "customer_accounts": row(401, MINE, 200, 200, 200),
    "transactions": row(401, MINE, 200, 200, 200),
    "transactions_csv": row(401, MINE, 200, 200, 200),
    "statement": row(401, MINE, 200, 200, 200),
    "timeline": row(401, MINE, 200, 200, 200),
    "account_balance": row(401, MINE, 200, 200, 200),
    "audit": row(401, (403, 403), 200, 200, 200),            # the raw ledger trail: staff only
    "catalog": row(401, 403, 200, 200, 200), "catalog_markdown": row(401, 403, 200, 200, 200),
    "trial_balance": row(401, 403, 200, 200, 200), "ledger_account_entries": row(401, 403, 200, 200, 200),
    "list_cases": reviewers(200), "get_case": reviewers(200),
    "approve_case": reviewers(404), "reject_case": reviewers(404),   # an unknown case: authorized, then 404
    "ctr_report": reviewers(200), "ctr_report_csv": reviewers(200),
    "sar_candidates": reviewers(200), "sar_candidates_csv": reviewers(200),
    "list_users": reviewers(200), "get_user": reviewers(200),
    "create_user": admins(201), "set_role": admins(200), "activate_user": admins(200),
    "deactivate_user": admins(200), "reset_password": admins(200), "revoke_user_sessions": admins(200),
    "search_audit_trail": reviewers(200), "get_maintenance": reviewers(200),
    "start_maintenance": admins(200), "end_maintenance": admins(200),
    # business time: the session stack has BANK_CLOCK_CONTROL on (tests/e2e/test_clock.py shows 404 when off)
    "get_clock": admins(200), "move_clock": admins(200),
    # currency exchange: a quote on a pair no test gives a rate: authorized, then refused as no_rate (422)
    "get_fx_rates": row(401, 403, 200, 200, 200), "set_fx_rates": admins(200),
    "create_fx_quote": row(401, 422, 422, 422, 422),
    # payees: a customer's own (another's is a 404 like an unknown one); staff read them, never change them
    "list_payees": row(401, MINE, 200, 200, 200),            # staff name the customer (?customer_id=)
    "get_payee": row(401, MINE, 200, 200, 200),
    "create_payee": row(401, 201, 403, 403, 403),
    "update_payee": row(401, MINE, 403, 403, 403),
    "delete_payee": row(401, (204, 404), 403, 403, 403),
    # standing orders: a customer's own, from their own accounts; staff read them, never change them
    "create_standing_order": row(401, (201, 404), 403, 403, 403),   # from another's account: unknown account
    "list_standing_orders": row(401, MINE, 200, 200, 200),          # staff name the customer (?customer_id=)
    "get_standing_order": row(401, MINE, 200, 200, 200),
    "update_standing_order": row(401, MINE, 403, 403, 403),
    "cancel_standing_order": row(401, (204, 404), 403, 403, 403),
    # tellers' drawers: tellers and admins; an amount finer than a cent: authorized, then 422 (no drawer changes)
    "get_drawer": row(401, 403, 200, 403, 200),
    "open_drawer": row(401, 403, 422, 403, 422),
    "count_drawer": row(401, 403, 422, 403, 422),
    "close_drawer": row(401, 403, 422, 403, 422),
    # each user's own profile (staff too); verifying with nothing pending: authorized, then 409
    "get_profile": signed_in(200), "update_profile": signed_in(200), "verify_contact": signed_in(409),
    # notifications: each user's own (the store reads by the caller: nobody names another's); marking an id
    # nobody has is authorized, then 404; failed deliveries are for staff, re-queuing one for admins
    "list_notifications": signed_in(200), "mark_notification_read": signed_in(404),
    "mark_all_notifications_read": signed_in(200), "notification_stream": signed_in(200),
    "get_notification_preferences": signed_in(200), "put_notification_preferences": signed_in(200),
    "failed_notifications": row(401, 403, 200, 200, 200), "retry_notification": admins(404),
    # customers as people (issue 18): staff at the counter onboard; compliance reviews identity documents
    "create_customer": row(401, 403, 201, 403, 201),
    "erase_customer": admins(404),                              # a customer id nobody has: authorized, then 404
    "get_my_kyc": row(401, 200, 403, 403, 403), "upload_kyc_document": row(401, 201, 403, 403, 403),
    "kyc_queue": reviewers(200), "get_kyc_case": reviewers(200),
    "get_kyc_document": reviewers(404),                        # an unknown document: authorized, then 404
    # customer A's case has nothing to review: authorized, then 409 invalid_transition
    "verify_kyc": reviewers(409), "reject_kyc": reviewers(409), "request_kyc_documents": reviewers(409),
    "kyc_report": reviewers(200), "kyc_report_csv": reviewers(200),
    # self-service credentials: a forgotten password is asked for signed out (a bogus token: 422 invalid_token);
    # MFA changes on an account without MFA, or a staff member disabling theirs: 409; staff re-enrol (200)
    "forgot_password": everyone(202), "reset_forgotten_password": everyone(422),
    "mfa_disable": row(401, 409, 409, 409, 409), "mfa_reenrol": row(401, 409, 200, 200, 200),
    "list_sign_ins": signed_in(200),
    # loans (issue 17): customers apply for, follow, answer and repay their own; another customer's loan or account
    # is a 404 like an unknown one; analysts and admins decide; admins keep the products. Shared loans are still
    # being decided: repaying, paying off or answering an offer on them is authorized, then 409.
    "list_loan_products": signed_in(200), "create_loan_product": admins(201), "get_loan_product": signed_in(200),
    "update_loan_product": admins(404), "change_loan_rate": admins(404),   # an unknown product: authorized, then 404
    "apply_for_loan": row(401, (201, 404), 403, 403, 403),
    "list_loans": row(401, MINE, 200, 200, 200), "get_loan": row(401, MINE, 200, 200, 200),
    "withdraw_loan_application": row(401, MINE, 403, 403, 403),
    "answer_loan_offer": row(401, (409, 404), 403, 403, 403),
    "decide_loan": reviewers(404),                                       # an unknown loan: authorized, then 404
    "write_off_loan": row(401, 403, 403, 403, 404),                      # admins only; an unknown loan: 404
    "repay_loan": row(401, (409, 404), 403, 403, 403), "prepay_loan": row(401, (409, 404), 403, 403, 403),
    "get_payoff_quote": row(401, (409, 404), 409, 409, 409),
    "pay_off_loan": row(401, (409, 404), 403, 403, 403),
    "loan_portfolio": row(401, 403, 200, 200, 200), "loan_portfolio_csv": row(401, 403, 200, 200, 200),
    # savings interest: admins keep the products; an account's customer or staff at the counter enrol it
    "list_savings_products": signed_in(200), "create_savings_product": admins(201),
    "get_savings_product": signed_in(404),   # an unknown product: authorized, then 404
    "change_savings_rate": admins(404),                                  # an unknown product: authorized, then 404
    "enrol_savings": row(401, (201, 404), 201, 403, 201), "account_interest": row(401, MINE, 200, 200, 200),
    "close_of_business_status": row(401, 403, 200, 200, 200),
}


def _api_routes() -> list[APIRoute]:
    return [c.original_route for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def _cells() -> list[Any]:
    cells = []
    for route in _api_routes():
        expected = EXPECTED.get(route.name, {})
        owned = any(isinstance(v, tuple) for v in expected.values())
        for role in ROLES:
            for whose in ((OWN, OTHER) if owned else (ANY,)):
                cells.append(pytest.param(route.name, role, whose, id=f"{route.name}-{role}-{whose}"))
    return cells


# ---------------------------------------------------------------- the world the cells act in


@dataclass
class Request:
    method: str
    path: str
    json: Any = None
    data: dict[str, str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    token: str | None = None       # a session of the cell's own instead of the role's shared one
    after: Callable[[], None] | None = None    # clean-up once the status is asserted


@dataclass
class World:
    url: str
    pg_dsn: str
    clients: dict[str, httpx.Client]
    customers: dict[str, Identity]                 # own -> A, other -> B
    accounts: dict[str, str] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)
    case_id: str = ""
    payees: dict[str, str] = field(default_factory=dict)   # own -> one of A's payees, other -> one of B's
    orders: dict[str, str] = field(default_factory=dict)   # own -> one of A's standing orders, other -> one of B's
    loans: dict[str, str] = field(default_factory=dict)    # own -> one of A's loan applications, other -> B's
    loan_product: str = ""
    savings_product: str = ""
    enrolled: set[str] = field(default_factory=set)

    def saver(self) -> str:
        """The matrix's savings product (made once, by the admin)."""
        if not self.savings_product:
            response = self.clients["admin"].post("/v1/admin/savings-products", json=_SAVINGS_PRODUCT)
            assert response.status_code == 201, response.text
            self.savings_product = str(response.json()["product_id"])
        return self.savings_product

    def savings(self, account: str) -> str:
        """The account, enrolled in the matrix's savings product."""
        if account not in self.enrolled:
            response = self.clients["admin"].post(f"/v1/accounts/{account}/savings", json={"product_id": self.saver()})
            assert response.status_code == 201, response.text
            self.enrolled.add(account)
        return account

    def product(self) -> str:
        """A loan product the matrix's customers apply for (made once, by the admin)."""
        if not self.loan_product:
            response = self.clients["admin"].post("/v1/admin/loan-products", json=_LOAN_PRODUCT)
            assert response.status_code == 201, response.text
            self.loan_product = str(response.json()["product_id"])
        return self.loan_product

    def loan(self, whose: str) -> str:
        """A new loan application of the customer (A for own, B for other), from their own account."""
        identity = self.customers[OTHER if whose == OTHER else OWN]
        body = {"product_id": self.product(), "account_id": self.accounts[OTHER if whose == OTHER else OWN],
                "amount": "1000.00", "term": 12, "purpose": "authorization matrix"}
        with httpx.Client(base_url=self.url, timeout=90, auth=BankAuth(identity)) as client:
            response = client.post("/v1/loans", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["loan_id"])

    def standing_order(self, whose: str) -> str:
        """A new standing order of the customer (A for own, B for other), years ahead: it never pays here."""
        identity = self.customers[OTHER if whose == OTHER else OWN]
        body = {"from_account_id": self.accounts[OTHER if whose == OTHER else OWN], "amount": "1.00",
                "currency": "EUR", "to_account_id": self.accounts[OWN if whose == OTHER else OTHER],
                "frequency": "monthly", "start_date": _far_ahead()}
        with httpx.Client(base_url=self.url, timeout=90, auth=BankAuth(identity)) as client:
            response = client.post("/v1/standing-orders", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["order_id"])

    def payee(self, whose: str, account: str | None = None) -> str:
        """A new payee of the customer (A for own, B for other): the IBAN of an account of the other one."""
        identity = self.customers[OTHER if whose == OTHER else OWN]
        account = account or self.account(OWN if whose == OTHER else OTHER)
        with httpx.Client(base_url=self.url, timeout=90, auth=BankAuth(identity)) as client:
            response = client.post("/v1/payees", json={"iban": self.iban(account), "name": "Matrix Payee"})
        assert response.status_code == 201, response.text
        return str(response.json()["payee_id"])

    def seen(self, response: httpx.Response) -> httpx.Response:
        for partition, offset in parse_positions(response.headers.get("Bank-Position", "")).items():
            self.positions[partition] = max(self.positions.get(partition, 0), offset)
        return response

    @property
    def fresh(self) -> dict[str, str]:
        return {"min_position": format_positions(self.positions)} if self.positions else {}

    def teller(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.seen(self.clients["teller"].post(path, json=body, params={"wait": "true"},
                                                         headers={"Idempotency-Key": str(uuid.uuid4())}))
        assert response.status_code in (200, 201), response.text
        return response.json()

    def account(self, whose: str, frozen: bool = False, funded: bool = False) -> str:
        customer = self.customers[OTHER if whose == OTHER else OWN].customer_id
        account = self.teller("/v1/accounts", {"customer_id": customer, "currency": "EUR"})["account_id"]
        if funded:
            self.teller(f"/v1/accounts/{account}/deposits", {"amount": "1000.00", "currency": "EUR"})
        if frozen:
            self.teller(f"/v1/accounts/{account}/freeze")
        return account

    def iban(self, account: str) -> str:
        response = self.clients["teller"].get(f"/v1/accounts/{account}", params=self.fresh)
        assert response.status_code == 200, response.text
        return str(response.json()["iban"])

    def user(self, role: str) -> Identity:
        """A fresh user of the role: staff straight in the database (with TOTP), customers registered."""
        if role == CUSTOMER:
            return asyncio.run(register_customer(self.url))
        return asyncio.run(create_staff(self.pg_dsn, tag="-matrix", roles=(role,)))[role]

    def session(self, role: str) -> tuple[Identity, dict[str, Any]]:
        """A fresh user of the role, logged in: a session the cell may end or change."""
        identity = self.user(role)
        return identity, login(self.url, identity)


@pytest.fixture(scope="module")
def world(api_url: str, pg_dsn: str) -> World:
    clients = {role: httpx.Client(base_url=api_url, timeout=90, auth=BankAuth(staff(role))) for role in STAFF_ROLES}
    own, other = (asyncio.run(register_customer(api_url, name)) for name in ("Ann Own", "Bob Other"))
    clients[CUSTOMER] = httpx.Client(base_url=api_url, timeout=90, auth=BankAuth(own))
    clients[ANON] = httpx.Client(base_url=api_url, timeout=90)
    w = World(api_url, pg_dsn, clients, {OWN: own, OTHER: other})
    for whose in (OWN, OTHER):
        w.accounts[whose] = w.account(whose, funded=True)
        w.commands[whose] = w.teller(f"/v1/accounts/{w.accounts[whose]}/deposits",
                                     {"amount": "5.00", "currency": "EUR"})["command_id"]
    # A risk case: cash of 10,000 in a day is a currency transaction report alert.
    flagged = w.teller(f"/v1/accounts/{w.account(OWN)}/deposits", {"amount": "10000.00", "currency": "EUR"})
    assert any(e["type"] == "RiskFlagged" for e in flagged["events"]), flagged
    w.case_id = flagged["command_id"]
    for whose in (OWN, OTHER):
        w.payees[whose] = w.payee(whose, w.accounts[OTHER if whose == OWN else OWN])
    yield w
    for client in clients.values():
        client.close()


# ---------------------------------------------------------------- one request per route


def _far_ahead() -> str:
    return (datetime.now(UTC).date() + timedelta(days=365 * 30)).isoformat()


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _period() -> dict[str, str]:
    today = date.fromisoformat(_today())
    return {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}


def _allowed(name: str, role: str, whose: str) -> bool:
    """Whether the cell is expected to get through (2xx): fresh resources are only made for those."""
    cell = EXPECTED[name][role]
    status = cell[0 if whose != OTHER else 1] if isinstance(cell, tuple) else cell
    return 200 <= status < 300


def _mfa_verify(w: World, role: str) -> Request:
    if role != CUSTOMER:
        return Request("POST", "/v1/auth/mfa/verify", json={"code": "123456"})
    identity, tokens = w.session(CUSTOMER)
    setup = httpx.post(f"{w.url}/v1/auth/mfa/setup", json={"current_password": identity.password},
                       headers=bearer(tokens["access_token"]), timeout=30)
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(setup.json()["otpauth_uri"]).query)["secret"][0]
    return Request("POST", "/v1/auth/mfa/verify", json={"code": pyotp.TOTP(secret).now()},
                   token=tokens["access_token"])


def _revoke_session(w: World, role: str, whose: str) -> Request:
    if whose == OTHER:   # someone else's live session
        _, theirs = w.session(CUSTOMER)
        return Request("DELETE", f"/v1/auth/sessions/{theirs['session_id']}")
    if role == ANON:
        return Request("DELETE", f"/v1/auth/sessions/{uuid.uuid4().hex}")
    _, mine = w.session(role)
    return Request("DELETE", f"/v1/auth/sessions/{mine['session_id']}", token=mine["access_token"])


def _own_session(w: World, role: str, method: str, path: str, **kw: Any) -> Request:
    """The request in a fresh session of a fresh user of the role (`json` may be a function of that user)."""
    if role == ANON:
        identity, token = w.customers[OTHER], None
    else:
        identity, tokens = w.session(role)
        token = tokens["access_token"]
    if callable(kw.get("json")):
        kw["json"] = kw["json"](identity)
    return Request(method, path, token=token, **kw)


def _next_code(identity: Identity) -> str:
    """A code of the user's authenticator not used yet (their login took the current one); customers have none."""
    while True:
        code, wait = identity.next_otp()
        if identity.totp_secret is None or code is not None:
            return code or "123456"
        time.sleep(wait)


def _target_user(w: World, name: str, role: str) -> str:
    """A fresh user for an admin to change (a teller, so a role change is allowed); any id otherwise."""
    if not _allowed(name, role, ANY):
        return w.customers[OWN].user_id
    return w.user("teller").user_id


def _stop_maintenance(w: World) -> Callable[[], None]:
    def stop() -> None:
        assert w.clients["admin"].delete("/v1/admin/maintenance").status_code == 200
    return stop


def _account_for(w: World, name: str, role: str, whose: str, **kw: bool) -> str:
    """A fresh account when the cell will change it; otherwise the shared one."""
    return w.account(whose, **kw) if _allowed(name, role, whose) else w.accounts[OTHER if whose == OTHER else OWN]


def _payee_for(w: World, name: str, role: str, whose: str) -> str:
    """A fresh payee when the cell will remove it; otherwise the shared one."""
    return w.payee(whose) if _allowed(name, role, whose) else w.payees[OTHER if whose == OTHER else OWN]


def _order_for(w: World, name: str, role: str, whose: str) -> str:
    """A fresh standing order when the cell will cancel it; otherwise the shared one."""
    return w.standing_order(whose) if _allowed(name, role, whose) else _shared_order(w, whose)


def _shared_order(w: World, whose: str) -> str:
    if not w.orders:
        w.orders.update({each: w.standing_order(each) for each in (OWN, OTHER)})
    return w.orders[OTHER if whose == OTHER else OWN]


_LOAN_PRODUCT = {"name": "Matrix loan", "currency": "EUR", "principal_min": "500.00", "principal_max": "5000.00",
                 "term_min": 6, "term_max": 24, "annual_rate_percent": "9"}


_SAVINGS_PRODUCT = {"name": "Matrix saver", "currency": "EUR", "annual_rate_percent": "1.5"}


def _shared_loan(w: World, whose: str) -> str:
    if not w.loans:
        w.loans.update({each: w.loan(each) for each in (OWN, OTHER)})
    return w.loans[OTHER if whose == OTHER else OWN]


def _loan_for(w: World, name: str, role: str, whose: str) -> str:
    """A fresh application when the cell will withdraw it; otherwise the shared one."""
    return w.loan(whose) if _allowed(name, role, whose) else _shared_loan(w, whose)


def build(w: World, name: str, role: str, whose: str) -> Request:
    acct = w.accounts[OTHER if whose == OTHER else OWN]
    customer = w.customers[OTHER if whose == OTHER else OWN].customer_id
    money = {"amount": "1.00", "currency": "EUR"}
    review = {"comment": "authorization matrix"}
    payee = w.payees[OTHER if whose == OTHER else OWN]
    fresh = w.fresh
    builders: dict[str, Callable[[], Request]] = {
        "healthz": lambda: Request("GET", "/healthz"),
        "readyz": lambda: Request("GET", "/readyz"),
        "metrics": lambda: Request("GET", "/metrics"),
        "auth_register": lambda: Request("POST", "/v1/auth/register", json={
            "email": f"matrix-{uuid.uuid4().hex[:10]}@example.com", "password": new_password(),
            "name": "Matrix Customer"}),
        "auth_token": lambda: Request("POST", "/v1/auth/token", data={
            "username": w.customers[OTHER].email, "password": w.customers[OTHER].password}),
        "auth_refresh": lambda: Request("POST", "/v1/auth/refresh", json={
            "refresh_token": login(w.url, w.customers[OTHER])["refresh_token"]}),
        "auth_logout": lambda: _own_session(w, role, "POST", "/v1/auth/logout"),
        "auth_me": lambda: Request("GET", "/v1/auth/me"),
        "change_password": lambda: _own_session(w, role, "POST", "/v1/auth/password", json=lambda i: {
            "current_password": i.password, "new_password": f"new-{uuid.uuid4().hex}"}),
        "mfa_setup": lambda: _own_session(w, role, "POST", "/v1/auth/mfa/setup", json=lambda i: {
            "current_password": i.password}),
        "mfa_verify": lambda: _mfa_verify(w, role),
        "list_sessions": lambda: Request("GET", "/v1/auth/sessions"),
        "get_profile": lambda: Request("GET", "/v1/me/profile"),
        "update_profile": lambda: Request("PATCH", "/v1/me/profile", json={"city": "Matrixville"}),
        "verify_contact": lambda: Request("POST", "/v1/me/profile/verify", json={"code": "000000"}),
        "list_notifications": lambda: Request("GET", "/v1/notifications"),
        "mark_notification_read": lambda: Request("POST", f"/v1/notifications/{uuid.uuid4()}/read"),
        "mark_all_notifications_read": lambda: Request("POST", "/v1/notifications/read", json={}),
        # what is there, then the end (a followed stream would never answer the matrix)
        "notification_stream": lambda: Request("GET", "/v1/notifications/stream",
                                               params={"since": 0, "follow": "false"}),
        "get_notification_preferences": lambda: Request("GET", "/v1/me/notification-preferences"),
        "put_notification_preferences": lambda: Request("PUT", "/v1/me/notification-preferences",
                                                        json={"channels": {"transaction_posted": ["in_app"]}}),
        "failed_notifications": lambda: Request("GET", "/v1/admin/notifications/failed"),
        "retry_notification": lambda: Request("POST", f"/v1/admin/notifications/{uuid.uuid4()}/retry"),
        "revoke_session": lambda: _revoke_session(w, role, whose),
        "open_account": lambda: Request("POST", "/v1/accounts", json={"customer_id": customer, "currency": "EUR"},
                                        params={"wait": "true"}),
        "Deposit": lambda: Request("POST", f"/v1/accounts/{acct}/deposits", json=money, params={"wait": "true"}),
        "Withdraw": lambda: Request("POST", f"/v1/accounts/{acct}/withdrawals", json=money, params={"wait": "true"}),
        "set_overdraft_limit": lambda: Request("PUT", f"/v1/accounts/{acct}/overdraft-limit",
                                               json={"overdraft_limit": "100.00"}, params={"wait": "true"}),
        "transfer": lambda: Request("POST", "/v1/transfers", params={"wait": "true"}, json=money | {
            "from_account_id": acct, "to_account_id": w.accounts[OWN if whose == OTHER else OTHER]}),
        "create_payment": lambda: Request("POST", "/v1/payments", params={"wait": "true"}, json=money | {
            "from_account_id": acct, "creditor_iban": "DE89 3704 0044 0532 0130 00", "creditor_name": "Matrix Payee"}),
        "get_payment": lambda: Request("GET", f"/v1/payments/no-such-payment-{uuid.uuid4().hex[:8]}"),
        "list_payments": lambda: Request("GET", "/v1/payments", params={"customer_id": customer}),
        "list_payments_csv": lambda: Request("GET", "/v1/payments.csv", params={"customer_id": customer}),
        "payment_receipt": lambda: Request("GET", f"/v1/payments/no-such-payment-{uuid.uuid4().hex[:8]}/receipt"),
        "list_billers": lambda: Request("GET", "/v1/billers"),
        "create_biller": lambda: Request("POST", "/v1/admin/billers", json={
            "name": f"Matrix Biller {uuid.uuid4().hex[:8]}", "category": "utilities",
            "iban": "DE89 3704 0044 0532 0130 00", "reference_pattern": "^[0-9]{6}$"}),
        "update_biller": lambda: Request("PUT", f"/v1/admin/billers/{uuid.uuid4()}", json={"active": False}),
        "create_bill_payment": lambda: Request("POST", "/v1/bill-payments", params={"wait": "true"}, json=money | {
            "from_account_id": acct, "biller_id": f"no-such-biller-{uuid.uuid4().hex[:8]}", "reference": "123456"}),
        "rail_notification": lambda: Request("POST", "/v1/rail/notifications", json={
            "instruction_id": "no-such-instruction", "status": "settled"}),
        "rail_inbound": lambda: Request("POST", "/v1/rail/inbound", json={
            "instruction_id": "no-such-instruction", "creditor_iban": "DE89 3704 0044 0532 0130 00",
            "amount": "1.00", "currency": "EUR"}),
        "FreezeAccount": lambda: Request("POST", f"/v1/accounts/{_account_for(w, name, role, whose)}/freeze",
                                         params={"wait": "true"}),
        "UnfreezeAccount": lambda: Request(
            "POST", f"/v1/accounts/{_account_for(w, name, role, whose, frozen=True)}/unfreeze",
            params={"wait": "true"}),
        "CloseAccount": lambda: Request("POST", f"/v1/accounts/{_account_for(w, name, role, whose)}/close",
                                        params={"wait": "true"}),
        "get_command": lambda: Request("GET", f"/v1/commands/{w.commands[OTHER if whose == OTHER else OWN]}"),
        "get_account": lambda: Request("GET", f"/v1/accounts/{acct}", params=fresh),
        "account_by_iban": lambda: Request("GET", f"/v1/accounts/by-iban/{w.iban(acct)}", params=fresh),
        "customer_accounts": lambda: Request("GET", f"/v1/customers/{customer}/accounts", params=fresh),
        "transactions": lambda: Request("GET", f"/v1/accounts/{acct}/transactions", params=fresh),
        "transactions_csv": lambda: Request("GET", f"/v1/accounts/{acct}/transactions.csv", params=fresh),
        "statement": lambda: Request("GET", f"/v1/accounts/{acct}/statements/{_today()[:7]}", params=fresh),
        "timeline": lambda: Request("GET", f"/v1/customers/{customer}/timeline", params=fresh),
        "audit": lambda: Request("GET", "/v1/audit", params=fresh | {"account_id": acct}),
        "account_balance": lambda: Request("GET", f"/v1/accounts/{acct}/balance"),
        "catalog": lambda: Request("GET", "/v1/catalog"),
        "trial_balance": lambda: Request("GET", "/v1/admin/books/trial-balance", params={"currency": "EUR"}),
        "ledger_account_entries": lambda: Request("GET", "/v1/admin/books/accounts/transit/entries"),
        "catalog_markdown": lambda: Request("GET", "/v1/catalog.md"),
        "list_cases": lambda: Request("GET", "/v1/admin/cases", params=fresh),
        "get_case": lambda: Request("GET", f"/v1/admin/cases/{w.case_id}", params=fresh),
        "approve_case": lambda: Request("POST", f"/v1/admin/cases/no-such-case-{uuid.uuid4().hex[:8]}/approve",
                                        json=review),
        "reject_case": lambda: Request("POST", f"/v1/admin/cases/no-such-case-{uuid.uuid4().hex[:8]}/reject",
                                       json=review),
        "ctr_report": lambda: Request("GET", "/v1/admin/reports/ctr", params=fresh | {"date": _today()}),
        "ctr_report_csv": lambda: Request("GET", "/v1/admin/reports/ctr.csv", params=fresh | {"date": _today()}),
        "sar_candidates": lambda: Request("GET", "/v1/admin/reports/sar-candidates", params=fresh | _period()),
        "sar_candidates_csv": lambda: Request("GET", "/v1/admin/reports/sar-candidates.csv",
                                              params=fresh | _period()),
        "list_users": lambda: Request("GET", "/v1/admin/users", params={"q": "matrix"}),
        "get_user": lambda: Request("GET", f"/v1/admin/users/{w.customers[OWN].user_id}"),
        "create_user": lambda: Request("POST", "/v1/admin/users", json={
            "email": f"staff-{uuid.uuid4().hex[:10]}@staff.test", "name": "New Teller", "role": "teller"}),
        "set_role": lambda: Request("PUT", f"/v1/admin/users/{_target_user(w, name, role)}/role",
                                    json={"role": "analyst"}),
        "activate_user": lambda: Request("POST", f"/v1/admin/users/{_target_user(w, name, role)}/activate"),
        "deactivate_user": lambda: Request("POST", f"/v1/admin/users/{_target_user(w, name, role)}/deactivate"),
        "reset_password": lambda: Request("POST", f"/v1/admin/users/{_target_user(w, name, role)}/password-reset"),
        "revoke_user_sessions": lambda: Request("DELETE", f"/v1/admin/users/{_target_user(w, name, role)}/sessions"),
        "search_audit_trail": lambda: Request("GET", "/v1/admin/audit", params={"limit": 5}),
        "get_maintenance": lambda: Request("GET", "/v1/admin/maintenance"),
        "start_maintenance": lambda: Request("PUT", "/v1/admin/maintenance", json={"message": "matrix"},
                                             after=_stop_maintenance(w) if role == "admin" else None),
        "end_maintenance": lambda: Request("DELETE", "/v1/admin/maintenance"),
        "get_clock": lambda: Request("GET", "/v1/admin/clock"),
        # advancing by nothing: authorized and accepted, and business time stays where the other tests need it
        "move_clock": lambda: Request("PUT", "/v1/admin/clock", json={"advance": "PT0S"}),
        "get_fx_rates": lambda: Request("GET", "/v1/admin/fx/rates"),
        # a pair no other test quotes, so the matrix's rate changes nothing they see
        "set_fx_rates": lambda: Request("PUT", "/v1/admin/fx/rates",
                                        json={"rates": [{"base": "ISK", "quote": "UGX", "mid": "27.5"}]}),
        "create_fx_quote": lambda: Request("POST", "/v1/fx/quotes", json={
            "sell_currency": "XOF", "buy_currency": "XAF", "amount": "100"}),
        "list_payees": lambda: Request("GET", "/v1/payees", params={"customer_id": customer}),
        "get_payee": lambda: Request("GET", f"/v1/payees/{payee}"),
        "create_payee": lambda: Request("POST", "/v1/payees", json={
            "iban": "DE89 3704 0044 0532 0130 00", "name": f"Matrix {uuid.uuid4().hex[:8]}"}
            ) if role != CUSTOMER else _own_session(w, role, "POST", "/v1/payees", json={
                "iban": "DE89 3704 0044 0532 0130 00", "name": "Matrix External"}),
        "update_payee": lambda: Request("PUT", f"/v1/payees/{payee}", json={"name": "Matrix Payee"}),
        "delete_payee": lambda: Request("DELETE", f"/v1/payees/{_payee_for(w, name, role, whose)}"),
        "create_standing_order": lambda: Request("POST", "/v1/standing-orders", json=money | {
            "from_account_id": acct, "to_account_id": w.accounts[OWN if whose == OTHER else OTHER],
            "frequency": "monthly", "start_date": _far_ahead()}),
        "list_standing_orders": lambda: Request("GET", "/v1/standing-orders", params={"customer_id": customer}),
        "get_standing_order": lambda: Request("GET", f"/v1/standing-orders/{_shared_order(w, whose)}"),
        "update_standing_order": lambda: Request("PATCH", f"/v1/standing-orders/{_shared_order(w, whose)}",
                                                 json={"reference": "matrix"}),
        "cancel_standing_order": lambda: Request("DELETE",
                                                 f"/v1/standing-orders/{_order_for(w, name, role, whose)}"),
        "get_drawer": lambda: Request("GET", "/v1/teller/drawers/me"),
        "open_drawer": lambda: Request("POST", "/v1/teller/drawers/me/open",
                                       json={"currency": "EUR", "float_amount": "0.001"}),
        "count_drawer": lambda: Request("POST", "/v1/teller/drawers/me/count", json={"counted": "0.001"}),
        "close_drawer": lambda: Request("POST", "/v1/teller/drawers/me/close", json={"counted": "0.001"}),
        "create_customer": lambda: Request("POST", "/v1/admin/customers", json={
            "email": f"walk-in-{uuid.uuid4().hex[:10]}@example.com", "legal_name": "Matrix Walk-in",
            "date_of_birth": "1990-01-01"}),
        "erase_customer": lambda: Request("POST", f"/v1/admin/customers/cust-nobody-{uuid.uuid4().hex[:8]}/erase"),
        "get_my_kyc": lambda: Request("GET", "/v1/me/kyc"),
        "upload_kyc_document": lambda: _own_session(w, role, "POST", "/v1/me/kyc/documents", json={
            "kind": "identity_document", "content_type": "application/pdf", "content_base64": "JVBERi0xLjQK"}),
        "kyc_queue": lambda: Request("GET", "/v1/admin/kyc"),
        "get_kyc_case": lambda: Request("GET", f"/v1/admin/kyc/{w.customers[OWN].customer_id}"),
        "get_kyc_document": lambda: Request(
            "GET", f"/v1/admin/kyc/{w.customers[OWN].customer_id}/documents/{uuid.uuid4()}"),
        "verify_kyc": lambda: Request("POST", f"/v1/admin/kyc/{w.customers[OWN].customer_id}/verify", json={}),
        "reject_kyc": lambda: Request("POST", f"/v1/admin/kyc/{w.customers[OWN].customer_id}/reject",
                                      json={"reason": "matrix"}),
        "request_kyc_documents": lambda: Request(
            "POST", f"/v1/admin/kyc/{w.customers[OWN].customer_id}/request-more", json={"reason": "matrix"}),
        "kyc_report": lambda: Request("GET", "/v1/admin/reports/kyc"),
        "kyc_report_csv": lambda: Request("GET", "/v1/admin/reports/kyc.csv"),
        "forgot_password": lambda: Request("POST", "/v1/auth/password/forgot", json={
            "email": f"nobody-{uuid.uuid4().hex[:8]}@example.com"}),
        "reset_forgotten_password": lambda: Request("POST", "/v1/auth/password/reset", json={
            "token": uuid.uuid4().hex, "new_password": f"new-{uuid.uuid4().hex}"}),
        "mfa_disable": lambda: Request("POST", "/v1/auth/mfa/disable", json={
            "current_password": "not-checked-first", "code": "123456"}),
        "mfa_reenrol": lambda: _own_session(w, role, "POST", "/v1/auth/mfa/reenrol", json=lambda i: {
            "current_password": i.password, "code": _next_code(i)}),
        "list_sign_ins": lambda: Request("GET", "/v1/auth/sign-ins"),
        "list_loan_products": lambda: Request("GET", "/v1/loan-products"),
        "get_loan_product": lambda: Request("GET", f"/v1/loan-products/{w.product()}"),
        "create_loan_product": lambda: Request("POST", "/v1/admin/loan-products", json=_LOAN_PRODUCT),
        "update_loan_product": lambda: Request("PUT", f"/v1/admin/loan-products/no-such-{uuid.uuid4().hex[:8]}",
                                               json={"status": "retired"}),
        "change_loan_rate": lambda: Request("POST", f"/v1/admin/loan-products/no-such-{uuid.uuid4().hex[:8]}/rates",
                                            json={"annual_rate_percent": "8", "effective_on": _far_ahead()}),
        "apply_for_loan": lambda: Request("POST", "/v1/loans", json={
            "product_id": w.product(), "account_id": acct, "amount": "1000.00", "term": 12, "purpose": "matrix"}),
        "list_loans": lambda: Request("GET", "/v1/loans", params={"customer_id": customer}),
        "get_loan": lambda: Request("GET", f"/v1/loans/{_shared_loan(w, whose)}"),
        "withdraw_loan_application": lambda: Request(
            "POST", f"/v1/loans/{_loan_for(w, name, role, whose)}/withdraw"),
        "answer_loan_offer": lambda: Request("POST", f"/v1/loans/{_shared_loan(w, whose)}/offer",
                                             json={"accept": True}),
        "decide_loan": lambda: Request("POST", f"/v1/admin/loans/no-such-{uuid.uuid4().hex[:8]}/decision",
                                       json={"decision": "approve"}),
        "write_off_loan": lambda: Request("POST", f"/v1/admin/loans/no-such-{uuid.uuid4().hex[:8]}/write-off",
                                          json={"reason": "uncollectable"}),
        "repay_loan": lambda: Request("POST", f"/v1/loans/{_shared_loan(w, whose)}/repayments",
                                      json={"amount": "1.00"}, params={"wait": "true"}),
        "prepay_loan": lambda: Request("POST", f"/v1/loans/{_shared_loan(w, whose)}/prepayments",
                                       json={"amount": "1.00", "effect": "lower_instalment"}, params={"wait": "true"}),
        "get_payoff_quote": lambda: Request("GET", f"/v1/loans/{_shared_loan(w, whose)}/payoff-quote"),
        "pay_off_loan": lambda: Request("POST", f"/v1/loans/{_shared_loan(w, whose)}/payoff",
                                        params={"wait": "true"}),
        "list_savings_products": lambda: Request("GET", "/v1/savings-products"),
        "get_savings_product": lambda: Request("GET", f"/v1/savings-products/no-such-{uuid.uuid4().hex[:8]}"),
        "create_savings_product": lambda: Request("POST", "/v1/admin/savings-products", json=_SAVINGS_PRODUCT),
        "change_savings_rate": lambda: Request(
            "POST", f"/v1/admin/savings-products/no-such-{uuid.uuid4().hex[:8]}/rates",
            json={"annual_rate_percent": "2", "effective_on": _far_ahead()}),
        "enrol_savings": lambda: Request("POST", f"/v1/accounts/{acct}/savings",
                                         json={"product_id": w.saver()}),
        "account_interest": lambda: Request("GET", f"/v1/accounts/{w.savings(acct)}/interest", params=fresh),
        "close_of_business_status": lambda: Request("GET", "/v1/admin/cob"),
        "loan_portfolio": lambda: Request("GET", "/v1/admin/loans/portfolio"),
        "loan_portfolio_csv": lambda: Request("GET", "/v1/admin/loans/portfolio.csv"),
    }
    assert name in builders, f"route {name!r} has no request in tests/e2e/test_authz_matrix.py: add one"
    return builders[name]()


# ---------------------------------------------------------------- the tests


def test_every_route_has_an_expectation_and_a_policy() -> None:
    names = [route.name for route in _api_routes()]
    assert len(names) == len(set(names)), "route names must be unique: the access policy is keyed by them"
    assert sorted(set(names) - set(EXPECTED)) == [], "routes missing from the matrix"
    assert sorted(set(names) - set(POLICIES)) == [], "routes without a policy in api/authz.py (refused to all)"
    assert sorted(set(EXPECTED) - set(names)) == [] and sorted(set(POLICIES) - set(names)) == [], "stale entries"


@pytest.mark.parametrize(("name", "role", "whose"), _cells())
def test_authorization_matrix(world: World, name: str, role: str, whose: str) -> None:
    assert name in EXPECTED, f"route {name!r} is not in the authorization matrix: add its expected statuses"
    cell = EXPECTED[name][role]
    expected = cell[0 if whose != OTHER else 1] if isinstance(cell, tuple) else cell
    request = build(world, name, role, whose)
    if request.token is not None:
        client, headers = world.clients[ANON], bearer(request.token)
    else:
        client, headers = world.clients[role], {}
    if request.method == "POST" and request.data is None:
        headers |= {"Idempotency-Key": str(uuid.uuid4())}
    response = client.request(request.method, request.path, json=request.json, data=request.data,
                              params=request.params, headers=headers)
    try:
        assert response.status_code == expected, f"{request.method} {request.path} as {role}: {response.text[:500]}"
        if expected >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), response.headers
        if expected == 401 and name.startswith("rail_"):   # the rail's shared secret, whoever the user
            assert response.headers.get("www-authenticate") == "Rail-Secret"
            assert response.json()["reason"] == "invalid_rail_secret"
        elif expected == 401:
            assert response.headers.get("www-authenticate") == "Bearer"
            assert response.json()["reason"] == "not_authenticated"
        if expected == 403 and name not in ("mfa_setup", "mfa_verify"):
            assert response.json()["reason"] == "forbidden", response.text
    finally:
        if request.after is not None:
            request.after()


def test_another_customers_resource_looks_exactly_like_one_that_does_not_exist(world: World) -> None:
    """No probing: the 404 for another customer's account, command or customer id is the 404 of an id nobody
    has, field for field (only the id in the text differs)."""
    customer, ghost = world.clients[CUSTOMER], f"ghost-{uuid.uuid4().hex}"
    theirs = {"account": world.accounts[OTHER], "command": world.commands[OTHER],
              "customer": world.customers[OTHER].customer_id}
    paths = {"account": "/v1/accounts/{}", "command": "/v1/commands/{}", "customer": "/v1/customers/{}/accounts"}
    for kind, path in paths.items():
        other = customer.get(path.format(theirs[kind]))
        missing = customer.get(path.format(ghost))
        assert other.status_code == missing.status_code == 404, (kind, other.text, missing.text)

        def scrubbed(response: httpx.Response, identifier: str) -> dict[str, Any]:
            return json.loads(response.text.replace(identifier, "ID"))

        assert scrubbed(other, theirs[kind]) == scrubbed(missing, ghost), kind
    money = {"amount": "1.00", "currency": "EUR", "to_account_id": world.accounts[OWN]}
    transfer = customer.post("/v1/transfers", json=money | {"from_account_id": theirs["account"]})
    nowhere = customer.post("/v1/transfers", json=money | {"from_account_id": ghost})
    assert (transfer.status_code, transfer.json()["reason"]) == (nowhere.status_code, nowhere.json()["reason"]) == (
        404, "unknown_account")


# ---------------------------------------------------------------- what a customer sees of an outcome


def _customer_commands() -> list[str]:
    """Every command route (a POST of api/routes/commands.py) a customer may submit on their own account."""
    return sorted(route.name for route in _api_routes()
                  if route.endpoint.__module__ == "api.routes.commands" and "POST" in route.methods
                  and route.name in EXPECTED and _allowed(route.name, CUSTOMER, OWN))


def _own_accounts(w: World) -> set[str]:
    """Customer A's accounts, as the API answers A (after every write the world has seen)."""
    customer = w.customers[OWN].customer_id
    response = w.clients[CUSTOMER].get(f"/v1/customers/{customer}/accounts", params=w.fresh)
    assert response.status_code == 200, response.text
    return {account["account_id"] for account in response.json()["accounts"]}


def _submit_as_customer(w: World, request: Request) -> httpx.Response:
    return w.seen(w.clients[CUSTOMER].request(request.method, request.path, json=request.json,
                                              params=request.params, headers={"Idempotency-Key": str(uuid.uuid4())}))


@pytest.mark.parametrize("name", _customer_commands())
def test_a_customer_sees_only_events_of_their_own_accounts(world: World, name: str) -> None:
    """For each command a customer can submit, the outcome they are shown (the `?wait=true` answer and the
    status URL's) holds events of their own accounts only: a transfer to another customer shows its debit,
    never the destination's credit or balance. Staff see every side."""
    response = _submit_as_customer(world, build(world, name, CUSTOMER, OWN))
    assert response.status_code in (200, 201), f"{name}: {response.text[:500]}"
    command_id = response.json()["command_id"]
    status = world.clients[CUSTOMER].get(f"/v1/commands/{command_id}")
    assert status.status_code == 200, status.text
    mine = _own_accounts(world)
    for shown in (response.json(), status.json()):
        assert shown["events"], shown
        assert {event["account_id"] for event in shown["events"]} <= mine, (name, shown)
    if name == "transfer":   # the sender's side: the debit, and the saga's record that it was credited
        for shown in (response.json(), status.json()):
            assert shown["status"] == "accepted", shown
            assert {event["type"] for event in shown["events"]} <= {"TransferDebited", "TransferCompleted"}, shown
        staff_view = world.clients["teller"].get(f"/v1/commands/{command_id}").json()
        credited = [event for event in staff_view["events"] if event["type"] == "TransferCredited"]
        assert [event["account_id"] for event in credited] == [world.accounts[OTHER]], staff_view
        assert credited[0]["data"]["balance_after"], staff_view


def _closed_account(w: World, whose: str) -> str:
    account = w.account(whose)
    w.teller(f"/v1/accounts/{account}/close")
    return account


@pytest.mark.parametrize("state", ["frozen", "closed"])
def test_a_refused_credit_on_another_customers_account_does_not_say_why(world: World, state: str) -> None:
    """A transfer to another customer's frozen or closed account is reversed; the sender is told the
    destination could not be credited, never that it is frozen or closed (nor its events). Staff see why."""
    destination = (world.account(OTHER, frozen=True) if state == "frozen" else _closed_account(world, OTHER))
    response = _submit_as_customer(world, Request("POST", "/v1/transfers", params={"wait": "true"}, json={
        "from_account_id": world.accounts[OWN], "to_account_id": destination, "amount": "1.00", "currency": "EUR"}))
    assert response.status_code == 422, response.text
    command_id = response.json()["command_id"]
    status = world.clients[CUSTOMER].get(f"/v1/commands/{command_id}").json()
    for shown in (response.json(), status):
        assert shown["reason"] == "credit_failed", shown
        assert shown["detail"] == "the destination account could not be credited; the debit was reversed", shown
        assert [event["type"] for event in shown["events"]] == ["TransferDebited", "TransferReversed"], shown
        assert shown["events"][1]["data"]["reason"] == "credit_failed", shown
        assert f"account_{state}" not in json.dumps(shown) and state not in json.dumps(shown), shown
    staff_view = world.clients["teller"].get(f"/v1/commands/{command_id}").json()
    assert staff_view["reason"] == f"account_{state}", staff_view
    assert "TransferCreditFailed" in [event["type"] for event in staff_view["events"]], staff_view
    # Nor do the sender's own history and timeline (read models) name the other account's state.
    position = {"min_position": response.json()["position"]}
    customer_id = world.customers[OWN].customer_id
    reversal_id = response.json()["events"][1]["event_id"]
    for path in (f"/v1/accounts/{world.accounts[OWN]}/transactions", f"/v1/customers/{customer_id}/timeline"):
        items = _read_when_fresh(world.clients[CUSTOMER], path, position).json()["items"]
        reversals = [item for item in items if item.get("type") in ("transfer_reversal", "TransferReversed")
                     and reversal_id in json.dumps(item)]
        assert reversals, items
        assert f"account_{state}" not in json.dumps(reversals) and state not in json.dumps(reversals), reversals


def _read_when_fresh(client: httpx.Client, path: str, params: dict[str, str]) -> httpx.Response:
    """A query once its read model has reached `min_position` (503 read_model_behind until then)."""
    for _ in range(120):
        response = client.get(path, params=params)
        if response.status_code != 503:
            assert response.status_code == 200, response.text
            return response
        time.sleep(0.5)
    raise AssertionError(f"{path} never reached {params}")


def test_a_refused_credit_on_ones_own_account_says_why(world: World) -> None:
    """Between a customer's own accounts nothing is another's: the reason is theirs to see."""
    destination = world.account(OWN, frozen=True)
    response = _submit_as_customer(world, Request("POST", "/v1/transfers", params={"wait": "true"}, json={
        "from_account_id": world.accounts[OWN], "to_account_id": destination, "amount": "1.00", "currency": "EUR"}))
    assert (response.status_code, response.json()["reason"]) == (422, "account_frozen"), response.text
    assert [event["type"] for event in response.json()["events"]] == [
        "TransferDebited", "TransferCreditFailed", "TransferReversed"], response.text
