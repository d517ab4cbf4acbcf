"""Rate limits (Redis, fixed windows): per client address, per user, stricter on credentials and MFA, each a
429 problem with Retry-After.

They run against an API process of their own with small limits (the session's API has them out of the way of
the load tests). Clients are told apart by X-Forwarded-For, which uvicorn takes from trusted proxies only
(loopback by default, like a load balancer on the same host); every test uses addresses of its own.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.support import Identity, bearer, new_password, register_customer

LIMITS = {"BANK_RATE_LIMIT_PER_IP": "8", "BANK_RATE_LIMIT_PER_USER": "5", "BANK_AUTH_RATE_LIMIT_PER_IP": "3",
          "BANK_MFA_RATE_LIMIT_PER_USER": "2", "BANK_RATE_LIMIT_WINDOW": "PT60S"}
WINDOW_S = 60


@pytest.fixture(scope="module")
def strict_api(extra_api: Callable[[dict[str, str]], str]) -> str:
    return extra_api(LIMITS)


def _address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def _from(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address} | headers


def _limited(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["reason"] == "rate_limited" and scope in body["detail"], body
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= WINDOW_S and body["retry_after"] == retry_after


def _login(url: str, identity: Identity, address: str) -> str:
    response = httpx.post(f"{url}/v1/auth/token", data={"username": identity.email, "password": identity.password},
                          headers=_from(address), timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_sign_in_and_registration_are_limited_per_address(strict_api: str) -> None:
    address = _address()
    for _ in range(3):
        attempt = httpx.post(f"{strict_api}/v1/auth/token", headers=_from(address), timeout=30,
                             data={"username": f"x-{uuid.uuid4().hex[:6]}@example.com", "password": "guess-guess"})
        assert attempt.status_code == 401, attempt.text
    _limited(httpx.post(f"{strict_api}/v1/auth/token", data={"username": "a@example.com", "password": "b"},
                        headers=_from(address), timeout=30), "sign-in")
    registration = httpx.post(f"{strict_api}/v1/auth/register", headers=_from(address), timeout=30, json={
        "email": f"r-{uuid.uuid4().hex[:6]}@example.com", "password": new_password(), "name": "Rita"})
    _limited(registration, "sign-in")
    elsewhere = httpx.post(f"{strict_api}/v1/auth/token", data={"username": "a@example.com", "password": "b"},
                           headers=_from(_address()), timeout=30)
    assert elsewhere.status_code == 401     # another address has its own budget


def test_requests_are_limited_per_address_and_health_is_not(strict_api: str) -> None:
    address = _address()
    for _ in range(8):
        assert httpx.get(f"{strict_api}/v1/accounts/any", headers=_from(address), timeout=30).status_code == 401
    _limited(httpx.get(f"{strict_api}/v1/accounts/any", headers=_from(address), timeout=30), "from this address")
    assert httpx.get(f"{strict_api}/healthz", headers=_from(address), timeout=30).status_code == 200


def test_requests_are_limited_per_user_whatever_their_address(api_url: str, strict_api: str) -> None:
    customer = asyncio.run(register_customer(api_url))
    token = _login(strict_api, customer, _address())
    for _ in range(5):
        response = httpx.get(f"{strict_api}/v1/auth/me", headers=_from(_address(), **bearer(token)), timeout=30)
        assert response.status_code == 200, response.text
    _limited(httpx.get(f"{strict_api}/v1/auth/me", headers=_from(_address(), **bearer(token)), timeout=30),
             "of this user")


def test_second_factor_attempts_are_limited_per_user(api_url: str, strict_api: str) -> None:
    customer = asyncio.run(register_customer(api_url))
    token = _login(strict_api, customer, _address())
    for _ in range(2):
        setup = httpx.post(f"{strict_api}/v1/auth/mfa/setup", json={"current_password": customer.password},
                           headers=_from(_address(), **bearer(token)), timeout=30)
        assert setup.status_code == 200, setup.text
    _limited(httpx.post(f"{strict_api}/v1/auth/mfa/verify", json={"code": "123456"},
                        headers=_from(_address(), **bearer(token)), timeout=30), "two-factor")
