"""Fuzzing the whole API with schemathesis, over the running API's own OpenAPI document, logged in.

Every operation of /openapi.json gets generated requests, valid and invalid (query strings, paths, bodies,
headers), sent to the session's API; each response must pass:

- `not_a_server_error`: no 5xx (a 503 a healthy stack should not give counts too: maintenance is switched off
  again after each case that switches it on, and a `min_position` past the log's end is a 422);
- `status_code_conformance`, `content_type_conformance`, `response_schema_conformance`,
  `response_headers_conformance`: the status, media type, body and required headers are the documented ones
  (errors: problem+json; api/openapi.py documents what authz, the guards and dependencies answer).

Two callers: an admin (reaches every route) and a customer (their own resources; staff routes answer 403).
Both are users of this module's own, so nothing here can lock out the session's staff. Half the generated ids
(by a hash of the generated value, so a case stays the same case when Hypothesis replays it) are swapped for
real ones (the customer's accounts and command, a throw-away staff user), so the handlers behind the 404s are
fuzzed too.

Operations that would end or change the caller's own session (log-out, revoking a session, changing the
password) and the MFA enrolment (a lucky code would switch MFA on; 10 tries a minute per user), like the profile
(a new email re-authenticates, and its codes count like second factors), run, for each
case, as a customer registered for that case: excluded from the admin run, where they would only test the same
code under another role. Moving business time (PUT /v1/admin/clock) is excluded from the admin run too: it would
move the session's clock for every later test. Staff administration (role, activation, password reset, sessions) only ever reaches the
throw-away staff user or unknown ids: a generated id cannot name the session's staff, and an admin cannot act
on their own account (409) except for ending their own sessions, which is why the admin is this module's own.

Bounded for CI: BANK_FUZZ_EXAMPLES examples per operation and phase (default 3) with a fixed seed
(BANK_FUZZ_SEED); the coverage phase (systematic boundary values, many cases per operation) runs only in long
runs (BANK_FUZZ_EXAMPLES above the default). A long run: `BANK_FUZZ_EXAMPLES=200 scripts/test
tests/e2e/test_fuzz_api.py`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from api.authz import POLICIES
from api.main import app
from tests.support import Bank, BankAuth, Identity, create_staff, login, new_password

DEFAULT_EXAMPLES = 3
EXAMPLES = int(os.environ.get("BANK_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
SEED = int(os.environ.get("BANK_FUZZ_SEED", "20261124"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]

# Routes (FastAPI route names = operation ids' prefixes) run as a customer registered for the case.
OWN_SESSION = ("auth_logout", "revoke_session", "change_password", "mfa_setup", "mfa_verify", "update_profile",
               "verify_contact", "mfa_disable", "mfa_reenrol")
# Moving business time: an admin's generated moves would put the whole session's business time up to a century
# ahead, under every later test's commands. Its validation is tested in tests/e2e/test_clock.py; the customer run
# still reaches it (403). Setting FX rates likewise: an admin's generated rates (valid currencies are in the
# schema's enum) would price later tests' quotes; its validation is tested in tests/e2e/test_fx.py and
# tests/unit/test_fx.py, and the customer run still reaches it (403).
NOT_AS_ADMIN = (*OWN_SESSION, "move_clock", "set_fx_rates")
# A followed event stream never ends by itself (until BANK_NOTIFICATION_STREAM_MAX): a generated request would hold
# the run for minutes. tests/e2e/test_notifications.py and the authorization matrix (follow=false) call it.
NEVER = ("notification_stream",)


@dataclass
class World:
    """What the fuzzed requests may name: real ids to swap in, and who calls."""

    api_url: str
    admin: Identity
    customer: Identity
    accounts: tuple[str, str]
    command_id: str
    staff_target: Identity      # the one real user the admin's user administration may act on


@pytest.fixture(scope="module")
def world(api_url: str, pg_dsn: str) -> Iterator[World]:
    async def build() -> World:
        made = await create_staff(pg_dsn, tag="-fuzz", roles=("admin", "teller"))
        bank = await Bank.customer(api_url, name="Fuzz Customer")
        try:
            accounts = (await bank.open(), await bank.open())
            teller = Bank(api_url, identity=made["teller"])   # cash in at the counter: staff only
            deposit = await teller.deposit(accounts[0], "100.00")
            await teller.close()
            assert deposit.status_code == 200, deposit.text
            assert bank.customer_id is not None
            return World(api_url, made["admin"], bank.identity, accounts, deposit.json()["command_id"],
                         made["teller"])
        finally:
            await bank.close()

    served = httpx.get(f"{api_url}/openapi.json", timeout=30)
    assert served.status_code == 200 and served.json() == app.openapi(), "the running API serves another document"
    built = asyncio.run(build())
    yield built
    # Whatever the run did, commands must not stay paused for the tests after it.
    response = httpx.delete(f"{api_url}/v1/admin/maintenance", auth=BankAuth(built.admin), timeout=30)
    assert response.status_code == 200, response.text


def _config() -> schemathesis.Config:
    long_run = EXAMPLES > DEFAULT_EXAMPLES
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True, "database": "none",
                       "with-security-parameters": False},   # the token is ours (a generated one is just a 401)
        "phases": {"examples": {"enabled": True}, "fuzzing": {"enabled": True},
                   "coverage": {"enabled": long_run}, "stateful": {"enabled": False}},
        "suppress-health-check": ["all"],    # slow responses (commands with ?wait=true) are not a test failure
    })


# The document the API's code generates, loaded at collection (one test per operation, named by it). The world
# fixture checks that the running API serves exactly this document. Not schemathesis.pytest.from_fixture (loading
# it from the running API's URL): schemathesis 4.32.5's lazy loader sets pytest's Node._nodeid, which pytest 9.2
# no longer has.
schema = schemathesis.openapi.from_dict(app.openapi(), config=_config())


def _route(case: schemathesis.Case) -> str:
    """The FastAPI route name of a case's operation (its operationId starts with it)."""
    operation_id = case.operation.definition.raw.get("operationId", "")
    return next((name for name in _ROUTE_NAMES if operation_id.startswith(f"{name}_")), operation_id)


_ROUTE_NAMES = tuple(sorted(POLICIES, key=len, reverse=True))   # longest first: a name may prefix another


def _heads(value: Any) -> bool:
    """Deterministic coin flip on a generated value: swap it for a real id or keep it."""
    return zlib.crc32(repr(value).encode()) % 2 == 0


def _real_ids(case: schemathesis.Case, world: World) -> None:
    """Half of the generated ids become real ones, so the fuzzer gets past the 404s."""
    swaps = {"account_id": world.accounts[0], "customer_id": world.customer.customer_id,
             "command_id": world.command_id, "user_id": world.staff_target.user_id}
    for name, real in swaps.items():
        if case.path_parameters and name in case.path_parameters and _heads(case.path_parameters[name]):
            case.path_parameters[name] = real
    if isinstance(case.body, dict):
        for name, real in (("from_account_id", world.accounts[0]), ("to_account_id", world.accounts[1]),
                           ("customer_id", world.customer.customer_id)):
            if name in case.body and _heads(case.body[name]):
                case.body[name] = real


def _bearer(api_url: str, identity: Identity) -> str:
    """The identity's current access token (tests/support/__init__.py's shared token cache: logs in or refreshes only when
    needed, so a long run outlives the 10-minute tokens)."""
    flow = BankAuth(identity).sync_auth_flow(httpx.Request("GET", f"{api_url}/v1/auth/me"))
    return next(flow).headers["Authorization"]


def _throwaway_customer(api_url: str) -> tuple[Identity, dict[str, Any]]:
    identity = Identity(email=f"fuzz-{uuid.uuid4().hex[:12]}@example.com", role="customer",
                        password=new_password())
    response = httpx.post(f"{api_url}/v1/auth/register", json={"email": identity.email, "name": "Fuzz Throwaway",
                                                               "password": identity.password}, timeout=30)
    assert response.status_code == 201, response.text
    return identity, login(api_url, identity)


def _fuzz(case: schemathesis.Case, world: World, caller: Identity) -> None:
    route = _route(case)
    _real_ids(case, world)
    if route in OWN_SESSION:
        identity, tokens = _throwaway_customer(world.api_url)
        if isinstance(case.body, dict) and "current_password" in case.body:
            case.body["current_password"] = identity.password   # fuzz the new password, not the lock-out
        if case.path_parameters and "session_id" in case.path_parameters and _heads(case.path_parameters["session_id"]):
            case.path_parameters["session_id"] = tokens["session_id"]
        authorization = f"Bearer {tokens['access_token']}"
        if route == "mfa_verify":   # past "not set up": the generated codes meet a real secret
            setup = httpx.post(f"{world.api_url}/v1/auth/mfa/setup", json={"current_password": identity.password},
                               headers={"Authorization": authorization}, timeout=30)
            assert setup.status_code == 200, setup.text
    else:
        authorization = _bearer(world.api_url, caller)
    try:
        case.call_and_validate(base_url=world.api_url, headers={"Authorization": authorization}, checks=CHECKS,
                               timeout=120)
    finally:
        if route == "start_maintenance":
            ended = httpx.delete(f"{world.api_url}/v1/admin/maintenance", timeout=30,
                                 headers={"Authorization": _bearer(world.api_url, world.admin)})
            assert ended.status_code == 200, ended.text


@schema.exclude(operation_id_regex="^(" + "|".join((*NOT_AS_ADMIN, *NEVER)) + ")_").parametrize()
def test_fuzz_as_admin(case: schemathesis.Case, world: World) -> None:
    _fuzz(case, world, world.admin)


@schema.exclude(operation_id_regex="^(" + "|".join(NEVER) + ")_").parametrize()
def test_fuzz_as_customer(case: schemathesis.Case, world: World) -> None:
    _fuzz(case, world, world.customer)
