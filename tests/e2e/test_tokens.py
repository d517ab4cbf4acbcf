"""Access and refresh tokens: expiry, tampering, wrong and unknown keys, key rotation across API processes,
revoked sessions (their tokens stop at once) and refresh-token reuse (the whole session is revoked)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from core.settings import get_settings
from tests.support import Bank, Identity, bearer, login, register_customer


def _customer(api_url: str) -> Identity:
    return asyncio.run(register_customer(api_url))


def _me(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/auth/me", headers=bearer(token), timeout=30)


def _refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["reason"] == reason, response.text


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _signing_key() -> tuple[str, str]:
    settings = get_settings()
    kid = settings.jwt_active_kid or next(iter(settings.jwt_keys))
    return kid, settings.jwt_keys[kid].get_secret_value()


def test_an_expired_access_token_is_refused(api_url: str) -> None:
    token = login(api_url, _customer(api_url))["access_token"]
    kid, key = _signing_key()
    now = int(time.time())
    expired = jwt.encode(_claims(token) | {"iat": now - 3600, "exp": now - 60}, key, headers={"kid": kid})
    _refused(_me(api_url, expired), "token_expired")
    assert _me(api_url, token).status_code == 200   # the same session, with a token still valid


def test_tampered_wrongly_signed_unknown_kid_and_unsigned_tokens_are_refused(api_url: str) -> None:
    token = login(api_url, _customer(api_url))["access_token"]
    claims, (kid, key) = _claims(token), _signing_key()
    header, _payload, signature = token.split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims | {"role": "admin"}).encode()).decode().rstrip("=")
    forgeries = {
        "tampered": f"{header}.{forged_payload}.{signature}",
        "wrong key": jwt.encode(claims, secrets.token_urlsafe(40), headers={"kid": kid}),
        "unknown kid": jwt.encode(claims, key, headers={"kid": "not-a-key"}),
        "no kid": jwt.encode(claims, key),
        "unsigned": jwt.encode(claims, None, algorithm="none", headers={"kid": kid}),
        "garbage": "not.a.token",
    }
    for what, forged in forgeries.items():
        response = _me(api_url, forged)
        assert response.status_code == 401, (what, response.text)
        assert response.json()["reason"] == "invalid_token", (what, response.text)
    assert _me(api_url, token).status_code == 200


def test_the_role_comes_from_the_session_not_from_the_token(api_url: str) -> None:
    """Even a token signed with the real key cannot claim a role its session does not have."""
    token = login(api_url, _customer(api_url))["access_token"]
    kid, key = _signing_key()
    promoted = jwt.encode(_claims(token) | {"role": "admin"}, key, headers={"kid": kid})
    response = httpx.get(f"{api_url}/v1/admin/users", headers=bearer(promoted), timeout=30)
    assert response.status_code == 403 and response.json()["reason"] == "forbidden", response.text


def test_signing_keys_rotate_without_logging_anyone_out(api_url: str, extra_api: Callable[[dict[str, str]], str]) -> None:
    """Rotation across a rolling deploy: add a key and make it active (old tokens still verify), then, once
    the old key's tokens have expired, remove it (they no longer do)."""
    old_kid, old_key = _signing_key()
    new_keys = {"rotated-2": secrets.token_urlsafe(48)}
    both = extra_api({"BANK_JWT_KEYS": json.dumps({old_kid: old_key} | new_keys), "BANK_JWT_ACTIVE_KID": "rotated-2"})
    customer = _customer(api_url)
    old_token = login(api_url, customer)["access_token"]
    assert jwt.get_unverified_header(old_token)["kid"] == old_kid
    assert _me(both, old_token).status_code == 200                  # the old key still verifies

    new_token = login(both, customer)["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == "rotated-2"  # the new key signs
    assert _me(both, new_token).status_code == 200
    _refused(_me(api_url, new_token), "invalid_token")              # a process that does not know the key yet

    only_new = extra_api({"BANK_JWT_KEYS": json.dumps(new_keys), "BANK_JWT_ACTIVE_KID": "rotated-2"})
    assert _me(only_new, new_token).status_code == 200
    _refused(_me(only_new, old_token), "invalid_token")             # the old key is gone


def test_a_revoked_session_stops_working_at_once(api_url: str) -> None:
    customer = _customer(api_url)
    first, second = login(api_url, customer), login(api_url, customer)
    listed = httpx.get(f"{api_url}/v1/auth/sessions", headers=bearer(first["access_token"]), timeout=30)
    assert listed.status_code == 200
    sessions = {s["session_id"]: s for s in listed.json()["items"]}
    assert set(sessions) == {first["session_id"], second["session_id"]}
    assert sessions[first["session_id"]]["current"] and not sessions[second["session_id"]]["current"]
    assert sessions[second["session_id"]]["device"].startswith("python-httpx")
    assert sessions[second["session_id"]]["ip"] == "127.0.0.1"

    revoked = httpx.delete(f"{api_url}/v1/auth/sessions/{second['session_id']}",
                           headers=bearer(first["access_token"]), timeout=30)
    assert revoked.status_code == 204
    _refused(_me(api_url, second["access_token"]), "session_revoked")   # no waiting for expiry
    refresh = httpx.post(f"{api_url}/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}, timeout=30)
    _refused(refresh, "invalid_refresh_token")
    assert _me(api_url, first["access_token"]).status_code == 200

    assert httpx.post(f"{api_url}/v1/auth/logout", headers=bearer(first["access_token"]), timeout=30).status_code == 204
    _refused(_me(api_url, first["access_token"]), "session_revoked")


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(api_url: str) -> None:
    customer = _customer(api_url)
    tokens = login(api_url, customer)

    def refresh(token: str) -> httpx.Response:
        return httpx.post(f"{api_url}/v1/auth/refresh", json={"refresh_token": token}, timeout=30)

    rotated = refresh(tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    next_tokens = rotated.json()
    assert next_tokens["refresh_token"] != tokens["refresh_token"]
    assert next_tokens["session_id"] == tokens["session_id"]
    assert _me(api_url, next_tokens["access_token"]).status_code == 200

    _refused(refresh(tokens["refresh_token"]), "refresh_token_reused")   # the old one again: stolen?
    _refused(_me(api_url, next_tokens["access_token"]), "session_revoked")  # the whole session ends
    _refused(refresh(next_tokens["refresh_token"]), "invalid_refresh_token")
    _refused(refresh("not-a-token"), "invalid_refresh_token")

    async def recorded() -> list[dict[str, Any]]:
        admin = Bank(api_url, role="admin")
        try:
            for _ in range(100):
                page = await admin.http.get("/v1/admin/audit", params={"user_id": customer.user_id,
                                                                        "action": "refresh_token_reused"})
                if page.json()["items"]:
                    return page.json()["items"]
                await asyncio.sleep(0.2)
            return []
        finally:
            await admin.close()

    [entry] = asyncio.run(recorded())
    assert entry["outcome"] == "denied" and entry["subject_user_id"] == customer.user_id
    assert entry["details"]["session_id"] == tokens["session_id"]
