"""A customer's profile and contact details against the real stack: defaults, edits, validation, a new phone or
email confirmed by the code sent to it (read from the outbox, which is the delivery until issue 19's senders
exist), the current password for an email, a taken email, and the masked before/after on the audit trail."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx

from tests.support import Bank, Identity, bearer, login, problem, register_customer


class Me:
    """A registered customer's own session against one API."""

    def __init__(self, api_url: str, name: str = "Ada Lovelace") -> None:
        self.url = api_url
        self.identity: Identity = asyncio.run(register_customer(api_url, name=name))
        self.headers = bearer(login(api_url, self.identity)["access_token"])

    def get(self) -> httpx.Response:
        return httpx.get(f"{self.url}/v1/me/profile", headers=self.headers, timeout=30)

    def patch(self, **body: Any) -> httpx.Response:
        return httpx.patch(f"{self.url}/v1/me/profile", json=body, headers=self.headers, timeout=30)

    def verify(self, code: str) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/me/profile/verify", json={"code": code}, headers=self.headers, timeout=30)



def _code(pg_dsn: str, recipient: str) -> str:
    """The code in the newest outbox message to this recipient."""
    async def read() -> str | None:
        connection = await asyncpg.connect(pg_dsn)
        try:
            return await connection.fetchval("SELECT body FROM outbox WHERE recipient = $1 "
                                             "ORDER BY created_at DESC LIMIT 1", recipient)
        finally:
            await connection.close()
    body = asyncio.run(read())
    assert body is not None, f"no message to {recipient} in the outbox"
    match = re.search(r"\b(\d{6})\b", body)
    assert match is not None, body
    return match.group(1)


def _other(code: str) -> str:
    return f"{(int(code) + 1) % 1000000:06d}"


def test_defaults_then_name_address_and_date_of_birth(api_url: str) -> None:
    me = Me(api_url)
    profile = me.get()
    assert profile.status_code == 200, profile.text
    assert profile.json() | {"updated_at": None} == {
        "user_id": me.identity.user_id, "email": me.identity.email, "legal_name": "Ada Lovelace",
        "date_of_birth": None, "address_lines": [], "postcode": None, "city": None, "country": None, "phone": None,
        "pending": [], "updated_at": None}

    changed = me.patch(legal_name="Augusta Ada King", date_of_birth="1985-12-10",
                       address_lines=["12 St James's Square"], postcode="SW1Y 4JH", city="London", country="gb")
    assert changed.status_code == 200, changed.text
    assert me.get().json() | {"updated_at": None} == {
        "user_id": me.identity.user_id, "email": me.identity.email, "legal_name": "Augusta Ada King",
        "date_of_birth": "1985-12-10", "address_lines": ["12 St James's Square"], "postcode": "SW1Y 4JH",
        "city": "London", "country": "GB", "phone": None, "pending": [], "updated_at": None}
    only_city = me.patch(city="Marylebone")
    assert only_city.json()["city"] == "Marylebone" and only_city.json()["postcode"] == "SW1Y 4JH"

    problem(me.patch(date_of_birth="2999-01-01"), 422, "invalid_date_of_birth")
    assert me.patch(date_of_birth="2001-02-30").status_code == 422          # no such day
    problem(me.patch(country="XX"), 422, "invalid_country")
    problem(me.patch(nickname="Ada"), 422, "extra_forbidden")               # no such field
    assert me.get().json()["country"] == "GB"                                # refused edits changed nothing


def test_a_new_phone_is_normalised_and_applied_with_the_code_sent_to_it(api_url: str, pg_dsn: str) -> None:
    me = Me(api_url)
    invalid = problem(me.patch(phone="+49 12"), 422, "invalid_phone")
    assert invalid["detail"].startswith("phone: ") and invalid["errors"][0]["loc"] == ["body", "phone"]
    problem(me.patch(phone="call me maybe"), 422, "invalid_phone")

    asked = me.patch(phone="0151 1234 5678")                   # national: the default region (DE)
    assert asked.status_code == 200, asked.text
    assert asked.json()["phone"] is None                       # not before the code comes back
    assert [(p["channel"], p["value"]) for p in asked.json()["pending"]] == [("phone", "+4915112345678")]
    code = _code(pg_dsn, "+4915112345678")

    wrong = problem(me.verify(_other(code)), 422, "invalid_code")
    assert wrong["attempts_left"] == 4
    verified = me.verify(code)
    assert verified.status_code == 200, verified.text
    assert verified.json()["phone"] == "+4915112345678" and verified.json()["pending"] == []
    problem(me.verify(code), 409, "no_pending_change")        # a code works once

    me.patch(phone="+44 20 7946 0958")
    code = _code(pg_dsn, "+442079460958")
    for _ in range(4):
        problem(me.verify(_other(code)), 422, "invalid_code")
    problem(me.verify(_other(code)), 422, "too_many_attempts")
    problem(me.verify(code), 422, "too_many_attempts")        # the right code no longer helps
    assert me.get().json()["phone"] == "+4915112345678"


def test_an_expired_code_is_refused(extra_api: Callable[[dict[str, str]], str], pg_dsn: str) -> None:
    url = extra_api({"BANK_CONTACT_CODE_TTL": "PT0S"})          # every code expires at once
    me = Me(url)
    assert me.patch(phone="+1 650 253 0000").status_code == 200
    problem(me.verify(_code(pg_dsn, "+16502530000")), 422, "code_expired")
    assert me.get().json()["phone"] is None


def test_a_new_email_needs_the_password_and_the_code_and_must_be_free(api_url: str, pg_dsn: str) -> None:
    me, other = Me(api_url), Me(api_url, name="Charles Babbage")
    new_email = f"ada-{me.identity.user_id[:8]}@example.org"
    problem(me.patch(email=new_email), 422, "missing")
    problem(me.patch(email=new_email, current_password="not-my-password"), 403, "wrong_password")
    problem(me.patch(email=other.identity.email.upper(), current_password=me.identity.password), 409, "email_taken")

    asked = me.patch(email=new_email, current_password=me.identity.password)
    assert asked.status_code == 200, asked.text
    assert asked.json()["email"] == me.identity.email
    verified = me.verify(_code(pg_dsn, new_email))
    assert verified.status_code == 200, verified.text
    assert verified.json()["email"] == new_email
    new_login = httpx.post(f"{api_url}/v1/auth/token", data={"username": new_email,
                                                             "password": me.identity.password}, timeout=30)
    assert new_login.status_code == 200, new_login.text

    # the other customer asks for an address that is free, and someone takes it before the code comes back
    wanted = f"wanted-{other.identity.user_id[:8]}@example.org"
    assert other.patch(email=wanted, current_password=other.identity.password).status_code == 200
    assert me.patch(email=wanted, current_password=me.identity.password).status_code == 200
    assert me.verify(_code(pg_dsn, wanted)).status_code == 200
    problem(other.verify(_code_for_user(pg_dsn, other.identity.user_id, wanted)), 409, "email_taken")


def _code_for_user(pg_dsn: str, user_id: str, recipient: str) -> str:
    async def read() -> str | None:
        connection = await asyncpg.connect(pg_dsn)
        try:
            return await connection.fetchval("SELECT body FROM outbox WHERE recipient = $1 AND user_id = $2 "
                                             "ORDER BY created_at DESC LIMIT 1", recipient, uuid.UUID(user_id))
        finally:
            await connection.close()
    body = asyncio.run(read())
    assert body is not None
    match = re.search(r"\b(\d{6})\b", body)
    assert match is not None
    return match.group(1)


def test_every_change_is_on_the_audit_trail_masked(api_url: str, pg_dsn: str) -> None:
    me = Me(api_url, name="Grace Hopper")
    assert me.patch(legal_name="Grace Brewster Hopper", city="Arlington").status_code == 200
    assert me.patch(phone="+4915112345612").status_code == 200
    assert me.verify(_code(pg_dsn, "+4915112345612")).status_code == 200
    new_email = f"grace-{me.identity.user_id[:8]}@navy.example"
    assert me.patch(email=new_email, current_password=me.identity.password).status_code == 200
    assert me.verify(_code(pg_dsn, new_email)).status_code == 200

    items = asyncio.run(_trail(api_url, me.identity.user_id, 5))
    by_action: dict[str, list[dict[str, str]]] = {}
    for item in items:
        by_action.setdefault(item["action"], []).append(item["details"])
    profile = by_action["profile_changed"][0]
    assert profile["fields"] == "city,legal_name"
    assert profile["legal_name_before"] == "G***" and profile["legal_name_after"] == "G***"
    assert profile["city_before"] == "None" and profile["city_after"] == "A***"
    verified = {d["channel"]: d for d in by_action["contact_change_verified"]}
    assert verified["phone"]["before"] == "None" and verified["phone"]["after"] == "+49*********12"
    assert verified["email"]["before"] == "c***@e***.com" and verified["email"]["after"] == "g***@n***.example"
    assert {d["channel"] for d in by_action["contact_change_requested"]} == {"phone", "email"}
    text = repr(items)
    for secret in ("Brewster", "Arlington", "15112345612", me.identity.email, new_email):
        assert secret not in text


async def _trail(api_url: str, user_id: str, wanted: int) -> list[dict[str, Any]]:
    """The profile records of a user on the audit trail, once `wanted` of them have arrived."""
    admin = Bank(api_url, role="admin")
    actions = "profile_changed,contact_change_requested,contact_change_verified"
    try:
        items: list[dict[str, Any]] = []
        for _ in range(150):
            page = await admin.http.get("/v1/admin/audit", params={"user_id": user_id, "limit": 500})
            assert page.status_code == 200, page.text
            items = [i for i in page.json()["items"] if i["action"] in actions.split(",")]
            if len(items) >= wanted:
                return items
            await asyncio.sleep(0.2)
        return items
    finally:
        await admin.close()
