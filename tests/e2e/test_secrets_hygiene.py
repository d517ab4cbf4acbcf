"""Passwords never leave the request: not in logs, events (bank.audit, the ledger, the commands), the MongoDB
audit trail, Redis, PostgreSQL (only an argon2id hash) or error messages.

The test exercises registration (refused and accepted), logins (failed, with the password typed into the
username field, and successful), a wrong and a right password change and a command, then greps everything the
platform wrote for each unique password.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
from bson import json_util
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from cli.devstack import Stack
from core.readmodel import MONGO_DB
from core.topics import AUDIT, LEDGER_EVENTS, RISK_COMMANDS
from infra.kafka import read_topic
from infra.records import header_list
from tests.support import bearer


async def _topic_bytes(bootstrap: str, topic: str) -> bytes:
    """Every value and header of a topic, concatenated (aborted records too: nothing written may hold one)."""
    chunks: list[bytes] = []
    for r in (await read_topic(bootstrap, topic, isolation_level="read_uncommitted")).records:
        chunks += [r.value or b"", *(value for _, value in header_list(r))]
    return b"\n".join(chunks)


async def _mongo_text(url: str) -> str:
    client: AsyncMongoClient = AsyncMongoClient(url)
    try:
        db = client[MONGO_DB]
        texts = [json_util.dumps([doc async for doc in db[name].find()]) for name in await db.list_collection_names()]
        return "\n".join(texts)
    finally:
        await client.close()


async def _redis_text(url: str) -> str:
    client = Redis.from_url(url)
    try:
        values = []
        async for key in client.scan_iter(match="bank:auth:*", count=1000):
            kind = (await client.type(key)).decode()
            if kind == "hash":
                values.append(repr(await client.hgetall(key)))
            elif kind == "string":
                values.append(repr(await client.get(key)))
            elif kind == "set":
                values.append(repr(await client.smembers(key)))
        return "\n".join(values)
    finally:
        await client.aclose()


async def _user_row(dsn: str, email: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return dict(await conn.fetchrow("SELECT * FROM users WHERE lower(email) = lower($1)", email))
    finally:
        await conn.close()


def test_passwords_appear_nowhere(stack: Stack, api_url: str, kafka_bootstrap: str, pg_dsn: str, redis_url: str,
                                  mongo_url: str) -> None:
    marker = uuid.uuid4().hex
    local = f"hygiene{marker[:10]}"
    email = f"{local}@example.com"
    passwords = {
        "refused": f"{local}-Secret-1!",           # contains the email: refused by the policy
        "first": f"First-{marker}-Pw!",
        "wrong": f"Wrong-{marker}-Pw!",
        "second": f"Second-{marker}-Pw!",
    }
    responses: list[httpx.Response] = []

    with httpx.Client(base_url=api_url, timeout=60) as http:
        def call(method: str, path: str, **kw: Any) -> httpx.Response:
            responses.append(response := http.request(method, path, **kw))
            return response

        register = {"email": email, "name": "Hygiene Tester"}
        refused = call("POST", "/v1/auth/register", json=register | {"password": passwords["refused"]})
        assert refused.status_code == 422 and refused.json()["reason"] == "weak_password", refused.text
        assert call("POST", "/v1/auth/register", json=register | {"password": passwords["first"]}).status_code == 201
        assert call("POST", "/v1/auth/token", data={"username": email, "password": passwords["wrong"]}).status_code == 401
        # People type their password into the username field: that attempt must not be recorded either.
        typo = call("POST", "/v1/auth/token", data={"username": passwords["first"], "password": passwords["first"]})
        assert typo.status_code == 401
        token = call("POST", "/v1/auth/token", data={"username": email, "password": passwords["first"]}).json()
        auth = bearer(token["access_token"])
        wrong_change = call("POST", "/v1/auth/password", headers=auth,
                            json={"current_password": passwords["wrong"], "new_password": passwords["second"]})
        assert wrong_change.status_code == 403, wrong_change.text
        weak_change = call("POST", "/v1/auth/password", headers=auth,
                           json={"current_password": passwords["first"], "new_password": passwords["first"]})
        assert weak_change.status_code == 422, weak_change.text
        changed = call("POST", "/v1/auth/password", headers=auth,
                       json={"current_password": passwords["first"], "new_password": passwords["second"]})
        assert changed.status_code == 200, changed.text
        opened = call("POST", "/v1/accounts", headers=auth | {"Idempotency-Key": marker}, params={"wait": "true"},
                      json={"currency": "EUR"})
        assert opened.status_code == 201, opened.text
        assert call("POST", "/v1/auth/token", data={"username": email, "password": passwords["first"]}).status_code == 401

    user = asyncio.run(_user_row(pg_dsn, email))
    assert str(user["password_hash"]).startswith("$argon2id$")
    _wait_for_audit(mongo_url, user["user_id"])

    places = {
        "responses": "\n".join(r.text for r in responses),
        "logs": "\n".join(p.read_text(errors="replace") for p in (stack.home / "logs").glob("*.log")),
        "bank.audit": asyncio.run(_topic_bytes(kafka_bootstrap, AUDIT)).decode(errors="replace"),
        "ledger events": asyncio.run(_topic_bytes(kafka_bootstrap, LEDGER_EVENTS)).decode(errors="replace"),
        "commands": asyncio.run(_topic_bytes(kafka_bootstrap, RISK_COMMANDS)).decode(errors="replace"),
        "mongo": asyncio.run(_mongo_text(mongo_url)),
        "redis": asyncio.run(_redis_text(redis_url)),
        "users table": json.dumps({k: str(v) for k, v in user.items()}),
    }
    assert email in places["mongo"] or str(user["user_id"]) in places["mongo"]   # the trail was searched
    leaks = [(what, where) for what, password in passwords.items() for where, text in places.items()
             if password in text]
    assert leaks == [], f"passwords found: {leaks}"


def _wait_for_audit(mongo_url: str, user_id: Any) -> None:
    """Until the audit trail has the password change (the projection is asynchronous)."""
    async def changed() -> bool:
        client: AsyncMongoClient = AsyncMongoClient(mongo_url)
        try:
            doc = await client[MONGO_DB]["audit_trail"].find_one({"actor.user_id": str(user_id),
                                                                  "action": "password_changed", "outcome": "success"})
            return doc is not None
        finally:
            await client.close()

    deadline = time.monotonic() + 60
    while not asyncio.run(changed()):
        assert time.monotonic() < deadline, "the password change never reached the audit trail"
        time.sleep(0.3)
