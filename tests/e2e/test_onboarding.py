"""Staff-assisted onboarding and self-service credentials against the real stack (issue 18 points 4 and 5): a
teller onboards a customer with their profile and opens their account, and cannot open one for a customer id
nobody has; a forgotten password is reset by the emailed token (read from the outbox, the delivery until the
notification senders exist), once, without telling whether an email has an account; MFA is disabled and
re-enrolled with the password and a code; the customer sees their recent sign-ins."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pyotp

from tests.support import auth_as, bearer, login, problem, register_customer


def _outbox(pg_dsn: str, recipient: str, purpose: str) -> list[str]:
    async def read() -> list[str]:
        connection = await asyncpg.connect(pg_dsn)
        try:
            rows = await connection.fetch("SELECT body FROM outbox WHERE recipient = $1 AND purpose = $2 "
                                          "ORDER BY created_at DESC", recipient, purpose)
            return [r["body"] for r in rows]
        finally:
            await connection.close()
    return asyncio.run(read())


def _token(body: str) -> str:
    match = re.search(r"\?token=([A-Za-z0-9_\-]+)", body)
    assert match is not None, body
    return match.group(1)


def _onboard(api_url: str, **fields: Any) -> httpx.Response:
    body = {"email": f"walk-in-{uuid.uuid4().hex[:10]}@example.com", "legal_name": "Mary Somerville",
            "date_of_birth": "1980-12-26", "address_lines": ["1 Jedburgh Road"], "postcode": "TD8 6AA",
            "city": "Jedburgh", "country": "gb", "phone": "+44 20 7946 0001"} | fields
    return httpx.post(f"{api_url}/v1/admin/customers", json=body, auth=auth_as("teller"), timeout=30)


def test_staff_onboard_a_customer_and_open_their_account_but_not_for_nobody(api_url: str) -> None:
    onboarded = _onboard(api_url)
    assert onboarded.status_code == 201, onboarded.text
    body = onboarded.json()
    customer_id, email = body["customer_id"], body["user"]["email"]
    assert body["user"]["role"] == "customer" and body["user"]["customer_id"] == customer_id
    assert body["user"]["must_change_password"] and body["kyc_status"] == "not_started"
    assert body["screening"] == {"flagged": False, "hits": []}

    opened = httpx.post(f"{api_url}/v1/accounts", params={"wait": "true"}, auth=auth_as("teller"), timeout=60,
                        json={"customer_id": customer_id, "currency": "EUR"},
                        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert opened.status_code == 201, opened.text
    nobody = httpx.post(f"{api_url}/v1/accounts", params={"wait": "true"}, auth=auth_as("teller"), timeout=60,
                        json={"customer_id": f"cust-{uuid.uuid4().hex}", "currency": "EUR"},
                        headers={"Idempotency-Key": str(uuid.uuid4())})
    problem(nobody, 422, "unknown_customer")
    problem(_onboard(api_url, email=email.upper()), 409, "email_taken")
    problem(_onboard(api_url, phone="12"), 422, "invalid_phone")

    # the customer logs in with the temporary password, sets their own, and finds their profile and account
    tokens = httpx.post(f"{api_url}/v1/auth/token", timeout=30,
                        data={"username": email, "password": body["temporary_password"]}).json()
    assert tokens["password_change_required"] and tokens["customer_id"] == customer_id
    headers = bearer(tokens["access_token"])
    changed = httpx.post(f"{api_url}/v1/auth/password", headers=headers, timeout=30, json={
        "current_password": body["temporary_password"], "new_password": f"own-{uuid.uuid4().hex}"})
    assert changed.status_code == 200, changed.text
    profile = httpx.get(f"{api_url}/v1/me/profile", headers=headers, timeout=30).json()
    assert (profile["legal_name"], profile["date_of_birth"], profile["country"], profile["phone"]) == (
        "Mary Somerville", "1980-12-26", "GB", "+442079460001")
    accounts = httpx.get(f"{api_url}/v1/customers/{customer_id}/accounts", headers=headers, timeout=30,
                         params={"min_position": opened.json()["position"]})
    assert [a["account_id"] for a in accounts.json()["accounts"]] == [opened.json()["account_id"]]


def test_a_forgotten_password_is_reset_by_the_emailed_token_once(api_url: str, pg_dsn: str) -> None:
    me = asyncio.run(register_customer(api_url, name="Emmy Noether"))
    old_session = bearer(login(api_url, me)["access_token"])
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    asked, asked_unknown = (httpx.post(f"{api_url}/v1/auth/password/forgot", json={"email": e}, timeout=30)
                            for e in (me.email, unknown))
    assert asked.status_code == asked_unknown.status_code == 202
    assert asked.json() == asked_unknown.json()                 # the answer does not tell who has an account
    assert _outbox(pg_dsn, unknown, "password_reset") == []
    messages = _outbox(pg_dsn, me.email, "password_reset")
    assert len(messages) == 1
    token = _token(messages[0])

    reset = f"{api_url}/v1/auth/password/reset"
    problem(httpx.post(reset, json={"token": token, "new_password": "password"}, timeout=30), 422, "weak_password")
    new_password = f"new-{uuid.uuid4().hex}"
    done = httpx.post(reset, json={"token": token, "new_password": new_password}, timeout=30)
    assert done.status_code == 200, done.text
    problem(httpx.post(reset, json={"token": token, "new_password": f"again-{uuid.uuid4().hex}"}, timeout=30),
            422, "invalid_token")                                  # once
    problem(httpx.post(reset, json={"token": "x" * 43, "new_password": new_password + "!"}, timeout=30),
            422, "invalid_token")
    problem(httpx.get(f"{api_url}/v1/auth/me", headers=old_session, timeout=30), 401, "session_revoked")
    old = httpx.post(f"{api_url}/v1/auth/token", data={"username": me.email, "password": me.password}, timeout=30)
    assert old.status_code == 401
    me.password = new_password
    assert login(api_url, me)["user_id"] == me.user_id


def test_a_newer_reset_link_replaces_the_older(api_url: str, pg_dsn: str) -> None:
    me = asyncio.run(register_customer(api_url))
    for _ in range(2):
        assert httpx.post(f"{api_url}/v1/auth/password/forgot", json={"email": me.email}, timeout=30).status_code == 202
    newest, older = (_token(b) for b in _outbox(pg_dsn, me.email, "password_reset"))
    reset = f"{api_url}/v1/auth/password/reset"
    problem(httpx.post(reset, json={"token": older, "new_password": f"n-{uuid.uuid4().hex}"}, timeout=30),
            422, "invalid_token")
    assert httpx.post(reset, json={"token": newest, "new_password": f"n-{uuid.uuid4().hex}"}, timeout=30).status_code == 200


def _enrol(api_url: str, headers: dict[str, str], password: str) -> tuple[pyotp.TOTP, list[str]]:
    setup = httpx.post(f"{api_url}/v1/auth/mfa/setup", json={"current_password": password}, headers=headers, timeout=30)
    assert setup.status_code == 200, setup.text
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(setup.json()["otpauth_uri"]).query)["secret"][0]
    totp = pyotp.TOTP(secret)
    verified = httpx.post(f"{api_url}/v1/auth/mfa/verify", json={"code": totp.now()}, headers=headers, timeout=30)
    assert verified.status_code == 200, verified.text
    return totp, verified.json()["recovery_codes"]


def test_mfa_is_disabled_and_reenrolled_with_the_password_and_a_code(api_url: str) -> None:
    me = asyncio.run(register_customer(api_url))
    headers = bearer(login(api_url, me)["access_token"])
    totp, recovery = _enrol(api_url, headers, me.password)
    disable, reenrol = f"{api_url}/v1/auth/mfa/disable", f"{api_url}/v1/auth/mfa/reenrol"
    problem(httpx.post(disable, json={"current_password": "wrong-password", "code": recovery[0]}, headers=headers,
                       timeout=30), 403, "wrong_password")
    problem(httpx.post(disable, json={"current_password": me.password, "code": "000000"}, headers=headers,
                       timeout=30), 422, "invalid_otp")

    # a new authenticator: the old factor stops, a code of the new one turns MFA on again
    started = httpx.post(reenrol, json={"current_password": me.password, "code": recovery[0]}, headers=headers,
                         timeout=30)
    assert started.status_code == 200, started.text
    assert httpx.get(f"{api_url}/v1/auth/me", headers=headers, timeout=30).json()["mfa_enabled"] is False
    new_secret = urllib.parse.parse_qs(urllib.parse.urlparse(started.json()["otpauth_uri"]).query)["secret"][0]
    assert new_secret != totp.secret
    again = httpx.post(f"{api_url}/v1/auth/mfa/verify", json={"code": pyotp.TOTP(new_secret).now()}, headers=headers,
                       timeout=30)
    assert again.status_code == 200, again.text

    off = httpx.post(disable, json={"current_password": me.password, "code": again.json()["recovery_codes"][0]},
                     headers=headers, timeout=30)
    assert off.status_code == 200 and off.json() == {"mfa_enabled": False}
    assert login(api_url, me)["user_id"] == me.user_id           # no second factor asked any more
    problem(httpx.post(disable, json={"current_password": me.password, "code": "123456"}, headers=headers,
                       timeout=30), 409, "mfa_not_enabled")


def test_the_customer_sees_their_recent_sign_ins(api_url: str) -> None:
    me = asyncio.run(register_customer(api_url))
    failed = httpx.post(f"{api_url}/v1/auth/token", data={"username": me.email, "password": "not-it"}, timeout=30,
                        headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"})
    assert failed.status_code == 401
    headers = bearer(login(api_url, me)["access_token"])
    items: list[dict[str, Any]] = []
    for _ in range(100):                               # the audit trail is a read model: a moment behind
        response = httpx.get(f"{api_url}/v1/auth/sign-ins", headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if len(items) >= 2:
            break
        time.sleep(0.1)
    assert [(i["success"], i["reason"]) for i in items] == [(True, None), (False, "invalid_credentials")]
    assert items[1]["device"] == "Firefox on Linux" and items[0]["ip"] == "127.0.0.1"
    # compared as instants: a time on a whole second is written without a fraction
    assert datetime.fromisoformat(items[0]["at"]) > datetime.fromisoformat(items[1]["at"])
