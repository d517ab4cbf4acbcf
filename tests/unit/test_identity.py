"""Identity without servers: the password policy, recovery codes, devices, the signing keyring, and the auth
dependency refusing a route that has no policy (fail closed)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pyotp
import pytest
from starlette.requests import Request

from api.authz import POLICIES, authorize
from api.problems import Problem
from argon2 import PasswordHasher

from api.security import (Keyring, KeyringError, TokenError, hash_password, temporary_password, totp_step,
                          verify_password)
from core.audit import ACTOR_HEADER, Actor, actor_header, current_actor, parse_actor
from core.settings import Settings, get_settings
from core.identity import (STAFF_ROLES, Principal, device_from_user_agent, is_recovery_code, new_recovery_codes,
                           normalise_email, password_problems, recovery_code_hash, set_current_principal)
from infra.records import actor_of

FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")


@pytest.mark.parametrize(("password", "message"), [
    ("Sh0rt!", "at least 12 characters"),
    ("x" * 200, "at most 128 characters"),
    ("abababababababab", "at least 5 different characters"),
    ("password1234", "too common"),
    ("Qwertyuiop!!", "too common"),
    ("ada.lovelace-2024", "your email address or your name"),
    ("my-name-is-lovelace", "your email address or your name"),
])
def test_the_password_policy_says_what_is_wrong(password: str, message: str) -> None:
    problems = password_problems(password, "ada.lovelace@example.com", "Ada Lovelace")
    assert any(message in p for p in problems), problems
    assert all(password not in p for p in problems)        # messages never echo the password


def test_a_good_password_passes() -> None:
    assert password_problems("correct-staple-Battery-91", "ada@example.com", "Ada Lovelace") == []
    assert password_problems(temporary_password("ada@example.com", "Ada Lovelace"), "ada@example.com",
                             "Ada Lovelace") == []


def test_recovery_codes_are_random_single_format_and_hashed_normalised() -> None:
    codes = new_recovery_codes()
    assert len(set(codes)) == 10 and all(is_recovery_code(c) for c in codes)
    assert recovery_code_hash(codes[0]) == recovery_code_hash(codes[0].upper().replace("-", ""))
    assert recovery_code_hash(codes[0]) != recovery_code_hash(codes[1])
    assert not is_recovery_code("123456") and not is_recovery_code("")


def test_devices_are_named_from_the_user_agent() -> None:
    assert device_from_user_agent(FIREFOX) == "Firefox on Linux"
    assert device_from_user_agent(IPHONE) == "Safari on iOS"
    assert device_from_user_agent("python-httpx/0.28.1") == "python-httpx/0.28.1"
    assert device_from_user_agent(None) == "unknown device"


def test_totp_codes_accept_one_step_of_drift_and_name_their_step() -> None:
    secret, now = pyotp.random_base32(), datetime.now(UTC)
    totp = pyotp.TOTP(secret)
    step = totp.timecode(now)
    assert totp_step(secret, totp.at(now), now) == step
    assert totp_step(secret, totp.at(now, counter_offset=1), now) == step + 1
    assert totp_step(secret, totp.at(now, counter_offset=-3), now) is None
    assert totp_step(secret, "12ab56", now) is None


def _keyring(keys: dict[str, str], active: str | None = None, ttl: timedelta = timedelta(minutes=5)) -> Keyring:
    return Keyring(keys, active, "bankstream", ttl)


def test_the_keyring_refuses_unusable_settings() -> None:
    with pytest.raises(KeyringError, match="BANK_JWT_KEYS"):
        _keyring({})
    with pytest.raises(KeyringError, match="shorter than 32"):
        _keyring({"k": "short"})
    with pytest.raises(KeyringError, match="not one of"):
        _keyring({"a": "x" * 40, "b": "y" * 40}, active="c")
    assert _keyring({"only": "z" * 40}).active_kid == "only"   # one key: it is the active one


def test_tokens_verify_with_any_known_key_until_expiry() -> None:
    old, new = secrets.token_urlsafe(40), secrets.token_urlsafe(40)
    before = _keyring({"old": old})
    token, _ = before.issue(user_id="u1", role="teller", customer_id=None, session_id="s1")
    after = _keyring({"old": old, "new": new}, active="new")
    assert after.verify(token).session_id == "s1"
    assert _keyring({"new": new}).verify(after.issue(user_id="u1", role="teller", customer_id=None,
                                                     session_id="s2")[0]).user_id == "u1"
    with pytest.raises(TokenError) as unknown:
        _keyring({"new": new}).verify(token)
    assert unknown.value.reason == "invalid_token"
    expired, _ = before.issue(user_id="u1", role="teller", customer_id=None, session_id="s1",
                              now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(TokenError) as late:
        before.verify(expired)
    assert late.value.reason == "token_expired"


def test_the_actor_header_round_trips_and_follows_the_principal() -> None:
    async def inside_a_request() -> None:
        set_current_principal(Principal(user_id="u9", role="teller", session_id="s9"))
        assert current_actor() == Actor("u9", "teller", "s9")
        [(key, value)] = actor_header()
        assert key == ACTOR_HEADER and parse_actor(actor_of([(key, value)])) == Actor("u9", "teller", "s9")

    asyncio.run(inside_a_request())
    assert current_actor() is None and actor_header() == []   # the request's context did not leak
    assert parse_actor(b"not json") is None


def test_a_route_without_a_policy_is_refused_to_everyone() -> None:
    scope = {"type": "http", "method": "GET", "path": "/v1/new", "headers": [], "query_string": b"",
             "route": SimpleNamespace(name="a_route_nobody_listed"), "app": SimpleNamespace()}
    with pytest.raises(Problem) as refused:
        asyncio.run(authorize(Request(scope), token=None))
    assert (refused.value.status, refused.value.reason) == (403, "no_policy")


def test_staff_roles_need_mfa_and_public_routes_need_no_role() -> None:
    assert {r for r in STAFF_ROLES} == {"teller", "analyst", "admin"}
    assert Principal(user_id="u", role="admin", session_id="s").needs_mfa_enrolment()
    assert not Principal(user_id="u", role="customer", session_id="s").needs_mfa_enrolment()
    assert all(not p.roles for p in POLICIES.values() if p.public)
    assert all(p.roles for p in POLICIES.values() if not p.public)


def test_emails_are_compared_in_one_folded_form() -> None:
    assert normalise_email("  STRASSE@Example.COM ") == normalise_email("straße@example.com") == "strasse@example.com"
    assert normalise_email("\u212aelvin@x.io") == normalise_email("kelvin@x.io")             # the Kelvin sign
    assert normalise_email("\uff41\uff44\uff41@x.io") == "ada@x.io"                         # fullwidth letters
    assert normalise_email("\u0130nci@x.tr") == normalise_email("i\u0307nci@x.tr") != normalise_email("inci@x.tr")


def test_password_hashes_cost_what_the_settings_say_and_hashes_of_another_cost_still_verify() -> None:
    defaults = {name: Settings.model_fields[f"password_hash_{name}"].default
                for name in ("memory_kib", "time_cost", "parallelism")}
    assert defaults == {"memory_kib": 65536, "time_cost": 3, "parallelism": 4}   # RFC 9106's second profile
    settings = get_settings()
    stored = asyncio.run(hash_password("correct horse battery"))
    assert stored.startswith("$argon2id$")
    assert (f"m={settings.password_hash_memory_kib},t={settings.password_hash_time_cost},"
            f"p={settings.password_hash_parallelism}") in stored
    older = PasswordHasher(memory_cost=16384, time_cost=2, parallelism=2).hash("correct horse battery")
    assert asyncio.run(verify_password(older, "correct horse battery"))
    assert not asyncio.run(verify_password(older, "wrong horse battery"))
    assert not asyncio.run(verify_password(None, "correct horse battery"))
