"""What stands between an attacker and someone else's account, through the API: a lock-out that parallel guesses
cannot outrun, one account per email however it is spelt (Unicode case folding, as Python decides it), and
the current password before anything that would outlive a stolen access token."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx

from core.identity import normalise_email
from core.settings import get_settings
from tests.support import Identity, bearer, login, new_password, register_customer

GUESSES_PER_THRESHOLD = 3


def _address() -> str:
    """A client address of its own, so per-address limits never answer for the lock-out."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def _reason(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return str(response.json()["reason"])


async def _guess_at_once(api_url: str, email: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=api_url, timeout=120) as http:
        return list(await asyncio.gather(*(
            http.post("/v1/auth/token", data={"username": email, "password": f"wrong-{n}-{uuid.uuid4().hex}"},
                      headers={"X-Forwarded-For": _address()})
            for n in range(count))))


def test_parallel_wrong_passwords_are_never_checked_beyond_the_lockout_threshold(api_url: str) -> None:
    threshold = get_settings().lockout_threshold
    customer = asyncio.run(register_customer(api_url))
    responses = asyncio.run(_guess_at_once(api_url, customer.email, GUESSES_PER_THRESHOLD * threshold))
    reasons = [(r.status_code, _reason(r)) for r in responses]
    checked_and_wrong = reasons.count((401, "invalid_credentials"))
    # The threshold-th wrong password locks (429); every guess after it is refused unchecked (429).
    assert checked_and_wrong <= threshold - 1, reasons
    assert all(reason in ((401, "invalid_credentials"), (429, "account_locked")) for reason in reasons), reasons
    right = httpx.post(f"{api_url}/v1/auth/token", data={"username": customer.email, "password": customer.password},
                       headers={"X-Forwarded-For": _address()}, timeout=30)
    assert (right.status_code, _reason(right)) == (429, "account_locked"), right.text


def _register(api_url: str, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{api_url}/v1/auth/register", timeout=30,
                      json={"email": email, "password": password, "name": "Una Code"})


def _token(api_url: str, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{api_url}/v1/auth/token", data={"username": email, "password": password}, timeout=30)


def test_an_email_is_one_account_in_every_case_folding_spelling(api_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    pairs = [   # (registered, then tried), with the folding traps: Turkish İ, ß/SS, the Kelvin sign, fullwidth
        (f"straße-{tag}@example.com", f"STRASSE-{tag}@Example.com"),
        (f"\u212aelvin-{tag}@example.com", f"kelvin-{tag}@EXAMPLE.COM"),
        (f"\uff21\uff24\uff21-{tag}@example.com", f"ada-{tag}@example.com"),
        (f"\u0130nci-{tag}@example.com", f"i\u0307nci-{tag}@example.com"),     # İ folds to i + combining dot
        (f"\u0130pek-{tag}@example.com", f"ipek-{tag}@example.com"),           # ... so a plain i is another address
    ]
    for registered, tried in pairs:
        same = normalise_email(registered) == normalise_email(tried)
        password, other_password = new_password(), new_password()
        first = _register(api_url, registered, password)
        assert first.status_code == 201, first.text
        second = _register(api_url, tried, other_password)
        assert second.status_code == (409 if same else 201), (registered, tried, second.text)
        if same:
            assert _reason(second) == "email_taken"
        logged_in = _token(api_url, tried, password)
        if same:   # the variant logs in to the one account, the way Python compares
            assert logged_in.status_code == 200, (registered, tried, logged_in.text)
            assert logged_in.json()["user_id"] == first.json()["user_id"]
        else:      # another account, with its own password
            assert (logged_in.status_code, _reason(logged_in)) == (401, "invalid_credentials"), logged_in.text
            assert _token(api_url, tried, other_password).json()["user_id"] == second.json()["user_id"]


def _me(api_url: str, token: str) -> dict[str, Any]:
    response = httpx.get(f"{api_url}/v1/auth/me", headers=bearer(token), timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _refused(response: httpx.Response) -> None:
    assert response.status_code in (401, 403, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text


def test_a_stolen_access_token_alone_cannot_change_the_password_or_enrol_a_second_factor(api_url: str) -> None:
    customer: Identity = asyncio.run(register_customer(api_url))
    token = login(api_url, customer)["access_token"]
    before = _me(api_url, token)
    new_password = f"taken-{uuid.uuid4().hex}"
    for current in ({}, {"current_password": "not-the-password"}):
        _refused(httpx.post(f"{api_url}/v1/auth/password", headers=bearer(token), timeout=30,
                            json=current | {"new_password": new_password}))
        _refused(httpx.post(f"{api_url}/v1/auth/mfa/setup", headers=bearer(token), timeout=30, json=current))
    _refused(httpx.post(f"{api_url}/v1/auth/mfa/setup", headers=bearer(token), timeout=30))
    wrong = httpx.post(f"{api_url}/v1/auth/mfa/setup", headers=bearer(token), timeout=30,
                       json={"current_password": "not-the-password"})
    assert (wrong.status_code, _reason(wrong)) == (403, "wrong_password"), wrong.text
    # Nothing changed: the password still logs in, no second factor is pending (verify has nothing to check).
    after = _me(api_url, token)
    assert (after["mfa_enabled"], after["password_changed_at"]) == (False, before["password_changed_at"])
    assert _token(api_url, customer.email, customer.password).status_code == 200
    assert _token(api_url, customer.email, new_password).status_code == 401
    pending = httpx.post(f"{api_url}/v1/auth/mfa/verify", json={"code": "123456"}, headers=bearer(token), timeout=30)
    assert (pending.status_code, _reason(pending)) == (409, "mfa_not_set_up"), pending.text
    # With the current password, both work.
    setup = httpx.post(f"{api_url}/v1/auth/mfa/setup", headers=bearer(token), timeout=30,
                       json={"current_password": customer.password})
    assert setup.status_code == 200 and setup.json()["otpauth_uri"].startswith("otpauth://"), setup.text
    changed = httpx.post(f"{api_url}/v1/auth/password", headers=bearer(token), timeout=30,
                         json={"current_password": customer.password, "new_password": new_password})
    assert changed.status_code == 200, changed.text


def test_wrong_current_passwords_lock_the_account_like_wrong_logins(api_url: str) -> None:
    threshold = get_settings().lockout_threshold
    customer = asyncio.run(register_customer(api_url))
    token = login(api_url, customer)["access_token"]
    answers = [httpx.post(f"{api_url}/v1/auth/mfa/setup", headers=bearer(token), timeout=30,
                          json={"current_password": f"guess-{n}"}) for n in range(threshold + 1)]
    assert [(a.status_code, _reason(a)) for a in answers] == (
        [(403, "wrong_password")] * (threshold - 1) + [(429, "account_locked")] * 2)
    # Locked: even the right password is not checked, here or at log-in.
    right = httpx.post(f"{api_url}/v1/auth/password", headers=bearer(token), timeout=30,
                       json={"current_password": customer.password, "new_password": f"new-{uuid.uuid4().hex}"})
    assert (right.status_code, _reason(right)) == (429, "account_locked"), right.text
    assert _reason(_token(api_url, customer.email, customer.password)) == "account_locked"
