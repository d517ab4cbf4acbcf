"""The right to be forgotten against the real stack (issue 18 point 2): a customer onboarded at the counter, with a
profile, a pending phone change, a reset email, a KYC document, a payee, sessions and an account that moved money,
is erased once their account is closed and the retention period has passed. Afterwards no store holds their name,
email or phone (every PostgreSQL table, every Redis key, every MongoDB collection, every topic), while the ledger
keeps the account's postings under the customer id and the trial balance is still zero."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from infra.kafka import read_topic
from infra.topics import load_registry
from tests.support import Bank, Identity, auth_as, bearer, problem, seed_customers


def _phone() -> tuple[str, list[str]]:
    """A German mobile number nobody else in the session has, and the forms it may be written in."""
    digits = f"151{random.randint(10**7, 10**8 - 1)}"
    return f"+49{digits}", [f"+49{digits}", f"0{digits}"]


def _identity() -> tuple[str, str, str, list[str]]:
    """A name, an email and a phone nobody else in the session has, and the phone as it may be written."""
    tag = uuid.uuid4().hex[:8]
    phone, forms = _phone()
    return f"Philippa Quetzalcoatl-{tag}", f"philippa.{tag}@erase.example", phone, forms


async def _kyc_case(pg_dsn: str, customer_id: str) -> tuple[str, str]:
    connection = await asyncpg.connect(pg_dsn)
    try:
        row = await connection.fetchrow("SELECT status, reason FROM kyc_cases WHERE customer_id = $1", customer_id)
    finally:
        await connection.close()
    return row["status"], row["reason"]


async def _postgres_hits(pg_dsn: str, needles: list[str]) -> list[str]:
    connection = await asyncpg.connect(pg_dsn)
    try:
        tables = await connection.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')")
        hits = []
        patterns = [f"%{n}%" for n in needles]
        for table in tables:
            name = f'"{table["table_schema"]}"."{table["table_name"]}"'
            rows = await connection.fetch(f"SELECT t::text AS row FROM {name} t WHERE t::text ILIKE ANY($1::text[])",
                                          patterns)
            hits += [f"{name}: {n}" for r in rows for n in needles if n.lower() in r["row"].lower()]
        return hits
    finally:
        await connection.close()


async def _redis_hits(redis_url: str, needles: list[str]) -> list[str]:
    redis = Redis.from_url(redis_url)
    hits = []
    try:
        async for key in redis.scan_iter(count=1000):
            kind = (await redis.type(key)).decode()
            value: Any = {"string": redis.get, "hash": redis.hgetall, "set": redis.smembers,
                          "list": lambda k: redis.lrange(k, 0, -1), "zset": lambda k: redis.zrange(k, 0, -1),
                          "stream": lambda k: redis.xrange(k)}.get(kind, lambda k: asyncio.sleep(0, b""))
            text = repr(key) + repr(await value(key))
            hits += [f"{key!r}: {n}" for n in needles if n.lower() in text.lower()]
    finally:
        await redis.aclose()
    return hits


async def _mongo_hits(mongo_url: str, needles: list[str]) -> list[str]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    hits = []
    try:
        for database in await client.list_database_names():
            if database in ("admin", "config", "local"):
                continue
            for collection in await client[database].list_collection_names():
                async for document in client[database][collection].find({}):
                    text = json.dumps(document, default=str).lower()
                    hits += [f"{database}.{collection}: {n}" for n in needles if n.lower() in text]
    finally:
        await client.close()
    return hits


async def _topic_hits(bootstrap: str, needles: list[str]) -> list[str]:
    async def one(topic: str) -> list[str]:
        snapshot = await read_topic(bootstrap, topic)
        found = []
        for record in snapshot.records:
            raw = b"".join([record.key or b"", record.value or b"", *(v for _, v in record.headers or ())]).lower()
            found += [f"{topic}: {n}" for n in needles if n.lower().encode() in raw]
        return found

    return [hit for hits in await asyncio.gather(*(one(topic) for topic in load_registry())) for hit in hits]


def _everywhere(settings: Any, needles: list[str]) -> list[str]:
    async def grep() -> list[str]:
        return [*await _postgres_hits(settings.pg, needles), *await _redis_hits(settings.redis, needles),
                *await _mongo_hits(settings.mongo, needles), *await _topic_hits(settings.kafka, needles)]
    return asyncio.run(grep())


def _audit_settled(api_url: str, user_id: str, action: str) -> None:
    """Wait for the audit trail (a MongoDB read model) to hold the user's record of `action`."""
    for _ in range(150):
        page = httpx.get(f"{api_url}/v1/admin/audit", params={"user_id": user_id, "action": action},
                         auth=auth_as("admin"), timeout=30)
        if page.status_code == 200 and page.json()["items"]:
            return
        asyncio.run(asyncio.sleep(0.1))
    raise AssertionError(f"no {action} of {user_id} on the audit trail")


def test_erasure_leaves_no_trace_while_the_books_still_balance(
        api_url: str, bank_env: Any, extra_api: Callable[[dict[str, str]], str]) -> None:
    name, email, phone, phone_forms = _identity()
    new_phone, new_phone_forms = _phone()                     # asked for, never confirmed: pending, in the outbox
    needles = [name, email, *phone_forms, *new_phone_forms, name.split()[-1]]
    settings = bank_env

    onboarded = httpx.post(f"{api_url}/v1/admin/customers", auth=auth_as("teller"), timeout=30, json={
        "email": email, "legal_name": name, "date_of_birth": "1984-04-04", "address_lines": ["7 Erasure Lane"],
        "postcode": "10115", "city": "Berlin", "country": "DE", "phone": phone})
    assert onboarded.status_code == 201, onboarded.text
    customer_id, user_id = onboarded.json()["customer_id"], onboarded.json()["user"]["user_id"]
    password = f"own-{uuid.uuid4().hex}"
    tokens = httpx.post(f"{api_url}/v1/auth/token", timeout=30,
                        data={"username": email, "password": onboarded.json()["temporary_password"]}).json()
    headers = bearer(tokens["access_token"])
    assert httpx.post(f"{api_url}/v1/auth/password", headers=headers, timeout=30, json={
        "current_password": onboarded.json()["temporary_password"], "new_password": password}).status_code == 200
    assert httpx.patch(f"{api_url}/v1/me/profile", headers=headers, timeout=30,
                       json={"city": "Potsdam", "phone": new_phone}).status_code == 200
    assert httpx.post(f"{api_url}/v1/me/kyc/documents", headers=headers, timeout=30, json={
        "kind": "identity_document", "content_type": "application/pdf",
        "content_base64": base64.b64encode(f"%PDF-1.4 passport of {name}".encode()).decode()}).status_code == 201
    assert httpx.post(f"{api_url}/v1/auth/password/forgot", json={"email": email}, timeout=30).status_code == 202

    async def money() -> tuple[str, str]:
        teller, admin = Bank(api_url), Bank(api_url, role="admin")
        customer = Bank(api_url, identity=Identity(email=email, password=password, role="customer", user_id=user_id,
                                                   customer_id=customer_id))
        try:
            account = await teller.open(customer=customer_id)
            await seed_customers("erasure-counterparty")
            other = await teller.open(customer="erasure-counterparty")
            assert (await teller.deposit(account, "50.00")).status_code == 200
            assert (await customer.transfer(account, other, "20.00")).status_code == 200
            assert (await teller.withdraw(account, "30.00")).status_code == 200
            payee = await customer.http.post("/v1/payees", json={"iban": (await teller.account(other))["iban"],
                                                                 "name": "Erasure Counterparty"})
            assert payee.status_code == 201, payee.text
            erase = await admin.http.post(f"/v1/admin/customers/{customer_id}/erase")
            problem(erase, 409, "accounts_open")
            closed = await teller.post(f"/v1/accounts/{account}/close")
            assert closed.status_code == 200, closed.text
            return account, closed.json()["position"]
        finally:
            for client in (teller, admin, customer):
                await client.close()

    account, position = asyncio.run(money())
    assert asyncio.run(_postgres_hits(settings.pg, needles)), "the scenario must have put the data somewhere"
    problem(httpx.post(f"{api_url}/v1/admin/customers/{customer_id}/erase", auth=auth_as("admin"), timeout=30),
            409, "retention_period")                             # the default: five years after the last closure
    _audit_settled(api_url, user_id, "password_reset_requested")

    erasing_api = extra_api({"BANK_ERASURE_RETENTION": "PT0S"})
    erased = httpx.post(f"{erasing_api}/v1/admin/customers/{customer_id}/erase", auth=auth_as("admin"), timeout=60)
    assert erased.status_code == 200, erased.text
    assert erased.json()["accounts_kept"] == [account] and erased.json()["audit_records_tombstoned"] > 0
    problem(httpx.post(f"{erasing_api}/v1/admin/customers/{customer_id}/erase", auth=auth_as("admin"), timeout=30),
            409, "already_erased")

    assert _everywhere(settings, needles) == []
    assert asyncio.run(_kyc_case(settings.pg, customer_id)) == (   # the pending review is closed, out of the queue
        "rejected", "closed unverified: the customer was erased")
    assert httpx.post(f"{api_url}/v1/auth/token", data={"username": email, "password": password},
                      timeout=30).status_code == 401
    reopened = httpx.post(f"{api_url}/v1/accounts", auth=auth_as("teller"), timeout=30,
                          json={"customer_id": customer_id, "currency": "EUR"})
    problem(reopened, 422, "unknown_customer")
    # the ledger keeps the postings under the customer id; the books still balance
    history = httpx.get(f"{api_url}/v1/accounts/{account}/transactions", auth=auth_as("teller"), timeout=30,
                        params={"min_position": position}).json()["items"]
    assert len(history) == 3
    books = httpx.get(f"{api_url}/v1/admin/books/trial-balance", params={"currency": "EUR"}, auth=auth_as("admin"),
                      timeout=60).json()
    [eur] = books["currencies"]
    assert eur["balanced"] and Decimal(eur["total"]) == 0, eur
