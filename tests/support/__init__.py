"""Test helpers: an HTTP client for the API (logged in: staff with TOTP, or a registered customer); the reader of
the whole event log (streams/ledger_log.py) and the ledger invariants (core/invariants.py), re-exported."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest

from api.deps import POSITION_HEADER
from api.identity import UserStore
from api.security import hash_password
from core.invariants import LedgerAudit  # noqa: F401 - re-exported for the tests
from core.readmodel import Positions, format_positions, parse_positions
from core.settings import get_settings
from schemas.codec import DecodeError, get_codec
from streams.ledger_log import read_log, settled_audit  # noqa: F401 - the tests' audit helpers, re-exported

JSON = {"content-type": "application/json"}


def installed(tool: str) -> str:
    """The path of a system tool the set-up installs (prometheus, promtool). Missing: a failure under CI,
    where scripts/setup must have installed it, and a skip on a developer's machine where it could not."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (Debian: apt-get install prometheus; scripts/setup does it as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


# ---------------------------------------------------------------- who the tests are

def decoded(records: Iterable[Any]) -> list[Any]:
    """The records a reader of ours can decode, decoded. tests/e2e/test_dead_letters.py leaves unreadable records
    on the session's command topics on purpose, and the platform's readers skip them too (tests run after it met
    them: 'not in the schema-registry wire format')."""
    codec, found = get_codec(), []
    for record in records:
        try:
            found.append(codec.decode(record.value, record.headers))
        except DecodeError:
            continue
    return found


STAFF_ROLES = ("teller", "analyst", "admin")
TOKEN_MARGIN_S = 60.0   # refresh an access token this long before it expires


@dataclass
class Identity:
    """A user the tests log in as. Staff have TOTP enrolled; codes are generated like an authenticator app does,
    never reusing a time step (the API refuses a replayed code)."""

    email: str
    password: str
    role: str
    user_id: str = ""
    customer_id: str | None = None
    totp_secret: str | None = None
    last_step: int = 0

    def next_otp(self) -> tuple[str | None, float]:
        """The next unused code, or how long to wait for one (a new step every 30 s; one step of clock drift
        either way is accepted, so a second login within a step uses the next step's code)."""
        if self.totp_secret is None:
            return None, 0.0
        totp, now = pyotp.TOTP(self.totp_secret), time.time()
        current = totp.timecode(datetime.fromtimestamp(now, UTC))
        step = max(current, self.last_step + 1)
        if step > current + 1:
            return None, totp.interval - now % totp.interval + 0.1
        self.last_step = step
        return totp.at(now, counter_offset=step - current), 0.0

    def login_form(self) -> dict[str, str] | None:
        code, wait = self.next_otp()
        if wait:
            return None
        return {"username": self.email, "password": self.password} | ({"otp": code} if code else {})


@dataclass
class Tokens:
    access: str
    refresh: str
    expires_at: float      # time.time() of the access token's expiry
    session_id: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> Tokens:
        return cls(body["access_token"], body["refresh_token"], time.time() + body["expires_in"], body["session_id"])

    @property
    def fresh(self) -> bool:
        return self.expires_at - time.time() > TOKEN_MARGIN_S


STAFF: dict[str, Identity] = {}                       # role -> the session's staff user (conftest's `stack`)
_TOKENS: dict[tuple[str, str], Tokens] = {}           # (API base URL, email) -> tokens, shared by every client


def staff(role: str) -> Identity:
    """The session's staff user of a role (conftest's `stack` creates them; a module with an API of its own on
    the session's PostgreSQL gets them here, from a thread: this may run inside an event loop)."""
    if not STAFF:
        with ThreadPoolExecutor(1) as pool:
            STAFF.update(pool.submit(asyncio.run, create_staff(get_settings().pg)).result())
    return STAFF[role]


async def create_staff(pg_dsn: str, tag: str = "", roles: tuple[str, ...] = STAFF_ROLES) -> dict[str, Identity]:
    """Staff users (a teller, an analyst and an admin) with TOTP enrolled, straight in PostgreSQL (like `bank users
    create-admin`, then enrolment)."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        users = UserStore(pool)
        created = {}
        for role in roles:
            identity = Identity(email=f"{role}{tag}-{uuid.uuid4().hex[:8]}@staff.test", role=role,
                                password=f"staff-{uuid.uuid4().hex}", totp_secret=pyotp.random_base32())
            user = await users.create(email=identity.email, name=f"Test {role.title()}", role=role,  # type: ignore
                                      password_hash=await hash_password(identity.password),
                                      mfa_secret=identity.totp_secret)
            identity.user_id = user.user_id
            created[role] = identity
        return created
    finally:
        await pool.close()


def new_password() -> str:
    """A password the policy takes whatever the user's name: digits after `pw-`. Hex digits spelt a name now and
    then (`ada` in a uuid: "the password must not contain your email address or your name", a failed CI run)."""
    return f"pw-{uuid.uuid4().int:039d}"


async def register_customer(base_url: str, name: str = "Test Customer") -> Identity:
    identity = Identity(email=f"customer-{uuid.uuid4().hex[:12]}@example.com", role="customer",
                        password=new_password())
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post("/v1/auth/register", json={"email": identity.email, "password": identity.password,
                                                              "name": name})
    assert response.status_code == 201, response.text
    identity.user_id, identity.customer_id = response.json()["user_id"], response.json()["customer_id"]
    return identity


_SEEDED: set[tuple[str, str]] = set()   # (database, customer id)


async def seed_customers(*customer_ids: str, dsn: str | None = None) -> None:
    """Customers the bank already knows (staff open accounts only for those), straight in PostgreSQL under the
    ids a test names, like a migration of an older system's customers would bring them: a users row with no
    usable password. Tests about customers themselves register or onboard them through the API instead.
    `dsn`: the database of a stack of the test's own (the session stack's by default)."""
    dsn = dsn or get_settings().pg
    wanted = [c for c in customer_ids if (dsn, c) not in _SEEDED]
    if not wanted:
        return
    connection = await asyncpg.connect(dsn)
    try:
        await connection.executemany(
            "INSERT INTO users (user_id, email, email_key, name, password_hash, role, customer_id) "
            "VALUES ($1, $2, $2, 'Seeded Customer', '!seeded', 'customer', $3) ON CONFLICT DO NOTHING",
            [(uuid.uuid4(), f"{uuid.uuid4().hex}@seeded.test", c) for c in wanted])
    finally:
        await connection.close()
    _SEEDED.update((dsn, c) for c in wanted)


def login(base_url: str, identity: Identity) -> dict[str, Any]:
    """A new session of its own (not the shared tokens of BankAuth): the token response."""
    while (form := identity.login_form()) is None:
        time.sleep(identity.next_otp()[1])
    response = httpx.post(f"{base_url}/v1/auth/token", data=form, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _base(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode()}"


class BankAuth(httpx.Auth):
    """Bearer tokens for one identity: logs in once per API, refreshes before expiry, shares tokens between
    clients (so the suite logs in a handful of times, not once per test)."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self._lock: asyncio.Lock | None = None

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        key = (_base(request.url), self.identity.email)
        tokens = _TOKENS.get(key)
        if tokens is None or not tokens.fresh:
            tokens = self._tokens(key[0], tokens)
        _TOKENS[key] = tokens
        request.headers["Authorization"] = f"Bearer {tokens.access}"
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        self._lock = self._lock or asyncio.Lock()
        key = (_base(request.url), self.identity.email)
        async with self._lock:   # concurrent requests wait for one login instead of each logging in
            tokens = _TOKENS.get(key)
            if tokens is None or not tokens.fresh:
                tokens = await self._atokens(key[0], tokens)
            _TOKENS[key] = tokens
        request.headers["Authorization"] = f"Bearer {tokens.access}"
        yield request

    def _tokens(self, base: str, tokens: Tokens | None) -> Tokens:
        # A client only when tokens are due: each new httpx client builds an SSL context (tens of ms of CPU).
        with httpx.Client(base_url=base, timeout=30) as http:
            if tokens is not None:
                tokens = self._refreshed(http.post("/v1/auth/refresh", json={"refresh_token": tokens.refresh}))
            while tokens is None:
                form = self.identity.login_form()
                if form is None:
                    time.sleep(self.identity.next_otp()[1])
                    continue
                tokens = self._logged_in(http.post("/v1/auth/token", data=form))
        return tokens

    async def _atokens(self, base: str, tokens: Tokens | None) -> Tokens:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            if tokens is not None:
                refreshed = self._refreshed(await http.post("/v1/auth/refresh", json={"refresh_token": tokens.refresh}))
                if refreshed is not None:
                    return refreshed
            while True:
                form = self.identity.login_form()
                if form is not None:
                    return self._logged_in(await http.post("/v1/auth/token", data=form))
                await asyncio.sleep(self.identity.next_otp()[1])

    def _logged_in(self, response: httpx.Response) -> Tokens:
        assert response.status_code == 200, f"login as {self.identity.email} failed: {response.text}"
        return Tokens.of(response.json())

    @staticmethod
    def _refreshed(response: httpx.Response) -> Tokens | None:
        return Tokens.of(response.json()) if response.status_code == 200 else None


def auth_as(role: str) -> BankAuth:
    """For plain httpx calls: `httpx.get(url, auth=auth_as("teller"))`."""
    return BankAuth(staff(role))


class Bank:
    """The REST API, as a client would call it: logged in as a teller unless told otherwise (`role=`, or a
    registered customer's `identity=`; `await Bank.customer(url)` registers one).

    Like a well-behaved client of an eventually consistent API, it remembers the position of every command
    outcome it saw (Bank-Position) and passes it as `min_position` to its queries: it reads its own writes."""

    def __init__(self, base_url: str, timeout: float = 90.0, role: str = "teller",
                 identity: Identity | None = None, pg_dsn: str | None = None) -> None:
        self.identity = identity or staff(role)
        self.pg_dsn = pg_dsn     # a stack of the test's own: where open() seeds customers (the session's if None)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout, auth=BankAuth(self.identity))
        self.position: Positions = {}

    @classmethod
    async def customer(cls, base_url: str, name: str = "Test Customer") -> Bank:
        return cls(base_url, identity=await register_customer(base_url, name))

    @property
    def customer_id(self) -> str | None:
        return self.identity.customer_id

    def seen(self, response: httpx.Response) -> httpx.Response:
        if position := response.headers.get(POSITION_HEADER):
            for partition, offset in parse_positions(position).items():
                self.position[partition] = max(self.position.get(partition, 0), offset)
        return response

    def fresh(self, **params: Any) -> dict[str, Any]:
        """Query parameters plus min_position = everything this client has written."""
        return params | ({"min_position": format_positions(self.position)} if self.position else {})

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=self.fresh(**params))

    async def close(self) -> None:
        await self.http.aclose()

    async def post(self, path: str, body: dict[str, Any] | None = None, key: str | None = None,
                   wait: bool = True, attempts: int = 3) -> httpx.Response:
        """POST a command. Like any good client, it retries transport errors with the same Idempotency-Key
        (e.g. the server closing an idle keep-alive connection just as it is reused)."""
        headers = dict(JSON) | {"Idempotency-Key": key or str(uuid.uuid4())}
        for attempt in range(1, attempts + 1):
            try:
                return self.seen(await self.http.post(path, json=body, headers=headers,
                                                      params={"wait": "true"} if wait else None))
            except httpx.TransportError:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    async def open(self, currency: str = "EUR", overdraft: str | None = None, customer: str | None = None) -> str:
        customer = customer or self.customer_id or "cust-1"
        if self.identity.role != "customer":
            await seed_customers(customer, dsn=self.pg_dsn)   # staff open accounts only for customers it knows
        body = {"customer_id": customer, "currency": currency} | ({"overdraft_limit": overdraft} if overdraft else {})
        response = await self.post("/v1/accounts", body)
        assert response.status_code == 201, response.text
        return response.json()["account_id"]

    async def deposit(self, account: str, amount: str, currency: str = "EUR", reference: str | None = None,
                      **kw: Any) -> httpx.Response:
        body = {"amount": amount, "currency": currency} | ({"reference": reference} if reference else {})
        return await self.post(f"/v1/accounts/{account}/deposits", body, **kw)

    async def fund(self, account: str, amount: str, currency: str = "EUR") -> httpx.Response:
        """A cash deposit of any size: one above BANK_CASH_DUAL_CONTROL_THRESHOLD is held until a second staff
        member approves it, which a reviewer (an analyst, or an admin for an analyst's) does here."""
        response = await self.deposit(account, amount, currency)
        if response.status_code != 202 or response.json().get("status") != "held":
            return response
        return await self.approved(response.json()["command_id"], "admin" if self.identity.role == "analyst"
                                   else "analyst")

    async def approved(self, case_id: str, role: str, comment: str = "second pair of eyes") -> httpx.Response:
        """A reviewer of `role` approves the case once it is in the queue; this client then reads what they wrote."""
        reviewer = Bank(str(self.http.base_url), role=role)
        reviewer.position = dict(self.position)
        try:
            for _ in range(100):
                if (await reviewer.get(f"/v1/admin/cases/{case_id}")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            response = reviewer.seen(await reviewer.http.post(f"/v1/admin/cases/{case_id}/approve",
                                                              params={"wait": "true"}, json={"comment": comment}))
            for partition, offset in reviewer.position.items():
                self.position[partition] = max(self.position.get(partition, 0), offset)
            return response
        finally:
            await reviewer.close()

    async def withdraw(self, account: str, amount: str, currency: str = "EUR", reference: str | None = None,
                       **kw: Any) -> httpx.Response:
        body = {"amount": amount, "currency": currency} | ({"reference": reference} if reference else {})
        return await self.post(f"/v1/accounts/{account}/withdrawals", body, **kw)

    async def transfer(self, source: str, dest: str, amount: str, currency: str = "EUR",
                       reference: str | None = None, **kw: Any) -> httpx.Response:
        body = {"from_account_id": source, "to_account_id": dest, "amount": amount, "currency": currency}
        return await self.post("/v1/transfers", body | ({"reference": reference} if reference else {}), **kw)

    async def account(self, account: str) -> dict[str, Any]:
        response = await self.get(f"/v1/accounts/{account}")
        assert response.status_code == 200, response.text
        return response.json()

    async def command(self, command_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/commands/{command_id}")
        assert response.status_code == 200, response.text
        return response.json()


def problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    """The RFC 7807 answer a test expects: its status, the problem+json media type and the reason; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["reason"] == reason, response.text
    return response.json()


def with_customers(api_url: str, scenario: Callable[..., Awaitable[Any]], *names: str) -> Any:
    """Run `scenario(teller, *customers)`: a teller and one freshly registered customer per name, all closed after."""
    async def main() -> Any:
        teller = Bank(api_url)
        customers = [await Bank.customer(api_url, name) for name in names]
        try:
            return await scenario(teller, *customers)
        finally:
            for client in (teller, *customers):
                await client.close()

    return asyncio.run(main())
