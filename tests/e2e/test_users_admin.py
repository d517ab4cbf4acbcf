"""Administration: staff accounts, roles, activation and resets (each ending the user's sessions at once),
maintenance mode (commands paused, queries not), `bank users create-admin` and what `bank up` says."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from cli.devstack import Stack
from core.settings import PROJECT_ROOT, Settings
from tests.support import Bank, Identity, bearer, login, problem, register_customer



def _onboard(api_url: str, created: dict[str, Any]) -> tuple[Identity, str]:
    """A new staff member's first login: change the temporary password, enrol MFA; the identity and the
    session's access token (which enrolment upgraded)."""
    staff = Identity(email=created["user"]["email"], password=created["temporary_password"],
                     role=created["user"]["role"], user_id=created["user"]["user_id"])
    token = login(api_url, staff)["access_token"]
    new_password = f"Pw-{uuid.uuid4().hex}"
    changed = httpx.post(f"{api_url}/v1/auth/password", headers=bearer(token), timeout=30,
                         json={"current_password": staff.password, "new_password": new_password})
    assert changed.status_code == 200, changed.text
    staff.password = new_password
    setup = httpx.post(f"{api_url}/v1/auth/mfa/setup", json={"current_password": staff.password},
                       headers=bearer(token), timeout=30).json()
    staff.totp_secret = setup["otpauth_uri"].split("secret=")[1].split("&")[0]
    code, _ = staff.next_otp()
    assert httpx.post(f"{api_url}/v1/auth/mfa/verify", json={"code": code}, headers=bearer(token),
                      timeout=30).status_code == 200
    return staff, token


def test_admins_manage_staff_and_every_change_takes_effect_at_once(api_url: str) -> None:
    async def admin_call(method: str, path: str, **kw: Any) -> httpx.Response:
        admin = Bank(api_url, role="admin")
        try:
            return await admin.http.request(method, path, **kw)
        finally:
            await admin.close()

    def call(method: str, path: str, **kw: Any) -> httpx.Response:
        return asyncio.run(admin_call(method, path, **kw))

    email = f"Staff.{uuid.uuid4().hex[:8]}@Staff.test"
    created = call("POST", "/v1/admin/users", json={"email": email, "name": "Sam Staff", "role": "teller"})
    assert created.status_code == 201, created.text
    problem(call("POST", "/v1/admin/users", json={"email": email.lower(), "name": "Again", "role": "teller"}),
             409, "email_taken")       # emails are unique whatever their case
    user_id = created.json()["user"]["user_id"]
    found = call("GET", "/v1/admin/users", params={"q": email.split("@")[0].upper(), "role": "teller"}).json()
    assert [u["user_id"] for u in found["items"]] == [user_id]

    teller, token = _onboard(api_url, created.json())
    assert httpx.get(f"{api_url}/v1/auth/me", headers=bearer(token)).json()["role"] == "teller"

    promoted = call("PUT", f"/v1/admin/users/{user_id}/role", json={"role": "analyst"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "analyst", promoted.text
    problem(httpx.get(f"{api_url}/v1/auth/me", headers=bearer(token)), 401, "session_revoked")
    analyst = login(api_url, teller)
    assert analyst["role"] == "analyst"
    deposit = httpx.post(f"{api_url}/v1/accounts/any/deposits", headers=bearer(analyst["access_token"]),
                         json={"amount": "1.00", "currency": "EUR"})
    problem(deposit, 403, "forbidden")     # analysts read, they do not move money

    assert call("POST", f"/v1/admin/users/{user_id}/deactivate").json()["active"] is False
    problem(httpx.get(f"{api_url}/v1/auth/me", headers=bearer(analyst["access_token"])), 401, "session_revoked")
    credentials = {"username": teller.email, "password": teller.password}
    problem(httpx.post(f"{api_url}/v1/auth/token", data=credentials), 403, "account_disabled")
    assert call("POST", f"/v1/admin/users/{user_id}/activate").json()["active"] is True
    # The password is accepted again (only the second factor is missing): the account is active.
    problem(httpx.post(f"{api_url}/v1/auth/token", data=credentials), 401, "mfa_required")

    reset = call("POST", f"/v1/admin/users/{user_id}/password-reset", json={"reset_mfa": True})
    assert reset.status_code == 200 and not reset.json()["user"]["mfa_enabled"], reset.text
    after_reset = login(api_url, Identity(email=teller.email, password=reset.json()["temporary_password"],
                                          role="analyst"))
    assert after_reset["password_change_required"] and after_reset["mfa_enrollment_required"]

    customer = asyncio.run(register_customer(api_url))
    problem(call("PUT", f"/v1/admin/users/{customer.user_id}/role", json={"role": "teller"}), 409,
             "role_change_not_allowed")
    problem(call("GET", f"/v1/admin/users/{uuid.uuid4()}"), 404, "unknown_user")
    problem(call("GET", "/v1/admin/users/not-a-uuid"), 404, "unknown_user")
    me = call("GET", "/v1/auth/me").json()
    for method, path, body in (("POST", "deactivate", None), ("PUT", "role", {"role": "teller"}),
                               ("POST", "password-reset", None)):
        problem(call(method, f"/v1/admin/users/{me['user_id']}/{path}", json=body), 409, "own_account")

    async def trail() -> list[dict[str, Any]]:
        analyst_bank = Bank(api_url, role="analyst")
        try:
            for _ in range(150):
                items = (await analyst_bank.get("/v1/admin/audit", user_id=user_id, action="role_changed")).json()["items"]
                if items:
                    return items
                await asyncio.sleep(0.2)
            return []
        finally:
            await analyst_bank.close()

    [changed] = asyncio.run(trail())
    assert changed["subject_user_id"] == user_id and changed["actor"]["user_id"] == me["user_id"]
    assert changed["actor"]["role"] == "admin" and changed["details"] == {"from": "teller", "to": "analyst"}


def test_maintenance_pauses_commands_and_not_queries(api_url: str) -> None:
    async def scenario() -> None:
        admin, teller, customer = Bank(api_url, role="admin"), Bank(api_url), await Bank.customer(api_url)
        try:
            account = await teller.open(customer=customer.customer_id)
            started = await admin.http.put("/v1/admin/maintenance", json={"message": "ledger upgrade",
                                                                          "retry_after": 120})
            assert started.status_code == 200 and started.json()["active"], started.text
            try:
                for bank, path, body in ((teller, f"/v1/accounts/{account}/deposits", {"amount": "1.00",
                                                                                      "currency": "EUR"}),
                                         (customer, "/v1/accounts", {"currency": "EUR"})):
                    paused = await bank.post(path, body)
                    refusal = problem(paused, 503, "maintenance")
                    assert paused.headers["Retry-After"] == "120" and "ledger upgrade" in refusal["detail"]
                assert (await teller.get(f"/v1/accounts/{account}")).status_code == 200
                assert (await customer.get(f"/v1/accounts/{account}")).status_code == 200
                state = await Bank(api_url, role="analyst").http.get("/v1/admin/maintenance")
                assert state.json()["active"] and state.json()["message"] == "ledger upgrade"
            finally:
                assert (await admin.http.delete("/v1/admin/maintenance")).status_code == 200
            assert (await teller.deposit(account, "1.00")).status_code == 200
        finally:
            for bank in (admin, teller, customer):
                await bank.close()

    asyncio.run(scenario())


def _create_admin(email: str, password: str | None, env_extra: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {"COLUMNS": "200"} | (env_extra or {})
    env.pop("BANK_ADMIN_PASSWORD", None)
    if password is not None:
        env["BANK_ADMIN_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "cli.main", "users", "create-admin", "--email", email, "--name",
                           "Boot Strap"], cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, text=True,
                          capture_output=True, timeout=120, check=False)


def test_bank_users_create_admin(api_url: str) -> None:
    email = f"root-{uuid.uuid4().hex[:8]}@bank.test"
    password = f"Root-{uuid.uuid4().hex}"
    missing = _create_admin(email, None)
    assert missing.returncode == 2 and "BANK_ADMIN_PASSWORD" in missing.stdout, missing.stdout + missing.stderr
    weak = "password1234"
    refused = _create_admin(email, weak)
    assert refused.returncode == 2 and "too common" in refused.stdout, refused.stdout + refused.stderr
    assert weak not in refused.stdout + refused.stderr
    made = _create_admin(email, password)
    assert made.returncode == 0, made.stdout + made.stderr
    assert password not in made.stdout + made.stderr
    assert _create_admin(email.upper(), password).returncode == 1

    tokens = login(api_url, Identity(email=email, password=password, role="admin"))
    assert tokens["role"] == "admin" and tokens["mfa_enrollment_required"]   # MFA before anything else
    users = httpx.get(f"{api_url}/v1/admin/users", headers=bearer(tokens["access_token"]))
    assert users.status_code == 403 and users.json()["reason"] == "mfa_enrollment_required"


def test_bank_up_says_how_to_log_in(tmp_path: Path) -> None:
    from cli import main

    stack = Stack(Settings(home=tmp_path))
    with main.console.capture() as captured:
        main._print_urls(stack, infra_only=False)
    text = " ".join(captured.get().split())
    assert "bank users create-admin" in text and "/v1/auth/token" in text and "/v1/auth/register" in text
