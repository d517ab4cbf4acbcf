"""Second factor end to end (codes generated with pyotp, like an authenticator app), recovery codes, staff who
must enrol and change a temporary password, and lock-out after repeated failures."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pyotp

from core.settings import get_settings
from tests.support import Bank, Identity, bearer, login, problem, register_customer


def _token(api_url: str, **form: str) -> httpx.Response:
    return httpx.post(f"{api_url}/v1/auth/token", data=form, timeout=30)



def _enrol(api_url: str, identity: Identity, access_token: str) -> list[str]:
    """MFA setup and verify, as a user with an authenticator app; returns the recovery codes."""
    setup = httpx.post(f"{api_url}/v1/auth/mfa/setup", json={"current_password": identity.password},
                       headers=bearer(access_token), timeout=30)
    assert setup.status_code == 200, setup.text
    uri = urllib.parse.urlparse(setup.json()["otpauth_uri"])
    query = urllib.parse.parse_qs(uri.query)
    assert uri.scheme == "otpauth" and query["issuer"] == ["bankstream"]
    assert urllib.parse.unquote(uri.path).endswith(identity.email)
    identity.totp_secret = query["secret"][0]
    code, _ = identity.next_otp()
    verified = httpx.post(f"{api_url}/v1/auth/mfa/verify", json={"code": code}, headers=bearer(access_token),
                          timeout=30)
    assert verified.status_code == 200, verified.text
    return verified.json()["recovery_codes"]


def _wrong_code(secret: str) -> str:
    """A code valid for no step the server accepts now."""
    totp, now = pyotp.TOTP(secret), datetime.now(UTC)
    valid = {totp.at(now, counter_offset=d) for d in (-2, -1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(1000000)) if c not in valid)


def _me(api_url: str, token: str) -> httpx.Response:
    return httpx.get(f"{api_url}/v1/auth/me", headers=bearer(token), timeout=30)


def test_mfa_enrolment_login_with_codes_and_single_use_recovery_codes(api_url: str) -> None:
    customer = asyncio.run(register_customer(api_url))
    session = login(api_url, customer)
    bad = httpx.post(f"{api_url}/v1/auth/mfa/verify", json={"code": "123456"},
                     headers=bearer(session["access_token"]), timeout=30)
    problem(bad, 409, "mfa_not_set_up")
    codes = _enrol(api_url, customer, session["access_token"])
    assert len(codes) == len(set(codes)) == 10
    me = _me(api_url, session["access_token"]).json()
    assert me["mfa_enabled"] and me["recovery_codes_left"] == 10

    problem(_token(api_url, username=customer.email, password=customer.password), 401, "mfa_required")
    wrong = _wrong_code(customer.totp_secret or "")
    problem(_token(api_url, username=customer.email, password=customer.password, otp=wrong), 401, "invalid_otp")

    code, _ = customer.next_otp()
    assert _token(api_url, username=customer.email, password=customer.password, otp=code or "").status_code == 200
    replayed = _token(api_url, username=customer.email, password=customer.password, otp=code or "")
    problem(replayed, 401, "invalid_otp")          # a code works once

    with_recovery = _token(api_url, username=customer.email, password=customer.password, otp=codes[0])
    assert with_recovery.status_code == 200, with_recovery.text
    problem(_token(api_url, username=customer.email, password=customer.password, otp=codes[0]), 401, "invalid_otp")
    typed = codes[1].upper().replace("-", "")       # as people type them
    assert _token(api_url, username=customer.email, password=customer.password, otp=typed).status_code == 200
    assert _me(api_url, with_recovery.json()["access_token"]).json()["recovery_codes_left"] == 8

    again = httpx.post(f"{api_url}/v1/auth/mfa/setup", json={"current_password": customer.password},
                       headers=bearer(session["access_token"]), timeout=30)
    problem(again, 409, "mfa_already_enabled")

    actions = asyncio.run(_audited(api_url, customer.user_id, {"mfa_setup", "mfa_enrolled", "mfa_failed",
                                                                "recovery_code_used", "login_failed", "login"}))
    assert {"mfa_setup", "mfa_enrolled", "mfa_failed", "recovery_code_used", "login_failed", "login"} <= actions


async def _audited(api_url: str, user_id: str, wanted: set[str]) -> set[str]:
    """The actions on the audit trail about a user, once those wanted have arrived (or after a while)."""
    admin = Bank(api_url, role="admin")
    try:
        for _ in range(150):
            page = await admin.http.get("/v1/admin/audit", params={"user_id": user_id, "limit": 500})
            assert page.status_code == 200, page.text
            actions = {item["action"] for item in page.json()["items"]}
            if wanted <= actions:
                return actions
            await asyncio.sleep(0.2)
        return actions
    finally:
        await admin.close()


def test_staff_change_their_temporary_password_and_enrol_mfa_before_anything_else(api_url: str) -> None:
    async def create() -> dict[str, Any]:
        admin = Bank(api_url, role="admin")
        try:
            response = await admin.http.post("/v1/admin/users", json={
                "email": f"new-teller-{uuid.uuid4().hex[:8]}@staff.test", "name": "Nina Newhire", "role": "teller"})
            assert response.status_code == 201, response.text
            return response.json()
        finally:
            await admin.close()

    created = asyncio.run(create())
    assert created["user"]["must_change_password"] and not created["user"]["mfa_enabled"]
    teller = Identity(email=created["user"]["email"], password=created["temporary_password"], role="teller")
    first = login(api_url, teller)
    assert first["password_change_required"] and first["mfa_enrollment_required"]
    token = first["access_token"]
    account = f"/v1/accounts/acct-{uuid.uuid4().hex}"
    problem(httpx.get(api_url + account, headers=bearer(token)), 403, "password_change_required")

    new_password = f"teller-{uuid.uuid4().hex}"
    changed = httpx.post(f"{api_url}/v1/auth/password", headers=bearer(token), timeout=30,
                         json={"current_password": teller.password, "new_password": new_password})
    assert changed.status_code == 200, changed.text
    teller.password = new_password
    problem(httpx.get(api_url + account, headers=bearer(token)), 403, "mfa_enrollment_required")
    assert _me(api_url, token).status_code == 200        # the caller's own endpoints stay open

    _enrol(api_url, teller, token)
    problem(httpx.get(api_url + account, headers=bearer(token)), 404, "unknown_account")   # authorized now
    problem(_token(api_url, username=teller.email, password=new_password), 401, "mfa_required")
    second = login(api_url, teller)
    assert not second["mfa_enrollment_required"] and not second["password_change_required"]
    problem(_token(api_url, username=teller.email, password=created["temporary_password"]), 401,
             "invalid_credentials")


def test_repeated_failures_lock_the_account_with_retry_after(api_url: str) -> None:
    settings = get_settings()
    customer = asyncio.run(register_customer(api_url))
    for _ in range(settings.lockout_threshold - 1):
        problem(_token(api_url, username=customer.email, password="not the password"), 401, "invalid_credentials")
    locked = _token(api_url, username=customer.email, password="not the password")
    body = problem(locked, 429, "account_locked")
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= settings.lockout_duration.total_seconds() and body["retry_after"] == retry_after
    # Locked means locked: the right password does not get in (and is not even checked).
    problem(_token(api_url, username=customer.email, password=customer.password), 429, "account_locked")

    # An email nobody registered locks alike, so lock-outs do not tell who has an account.
    stranger = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    for _ in range(settings.lockout_threshold - 1):
        problem(_token(api_url, username=stranger, password="whatever-it-is"), 401, "invalid_credentials")
    problem(_token(api_url, username=stranger, password="whatever-it-is"), 429, "account_locked")

    async def reset() -> str:
        admin = Bank(api_url, role="admin")
        try:
            response = await admin.http.post(f"/v1/admin/users/{customer.user_id}/password-reset")
            assert response.status_code == 200, response.text
            assert response.json()["user"]["must_change_password"]
            return str(response.json()["temporary_password"])
        finally:
            await admin.close()

    temporary = asyncio.run(reset())      # an admin's reset lifts the lock
    problem(_token(api_url, username=customer.email, password=customer.password), 401, "invalid_credentials")
    unlocked = _token(api_url, username=customer.email, password=temporary)
    assert unlocked.status_code == 200 and unlocked.json()["password_change_required"], unlocked.text
    actions = asyncio.run(_audited(api_url, customer.user_id, {"password_reset", "login_failed"}))
    assert {"password_reset", "login_failed"} <= actions
