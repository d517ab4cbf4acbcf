"""The benchmark's API user: a teller with TOTP, created in the user store, logged in like any client."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pyotp

from api.identity import UserStore
from api.security import hash_password
from core.settings import Settings

BENCH_ACCOUNTS = 200
BENCH_CUSTOMERS = 20


async def _staff_member(pool: asyncpg.Pool, role: str) -> dict[str, str]:
    """A fresh staff member of `role` with TOTP enrolled, in the user store: the sign-in form it answers to."""
    email, password, secret = f"bench-{uuid.uuid4().hex[:8]}@staff.test", f"bench-{uuid.uuid4().hex}", pyotp.random_base32()
    await UserStore(pool).create(email=email, name=f"Benchmark {role.title()}", role=role,  # type: ignore[arg-type]
                                 password_hash=await hash_password(password), mfa_secret=secret)
    return {"username": email, "password": password, "otp": pyotp.TOTP(secret).now()}


async def admin_token(settings: Settings, api_url: str) -> str:
    """An access token of a fresh admin (rates, products: what only admins set)."""
    pool = await asyncpg.create_pool(settings.pg, min_size=1, max_size=2)
    try:
        form = await _staff_member(pool, "admin")
    finally:
        await pool.close()
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
        response = await http.post("/v1/auth/token", data=form)
        response.raise_for_status()
        return str(response.json()["access_token"])


async def bench_token(settings: Settings, api_url: str) -> tuple[str, list[str]]:
    """An access token of a fresh teller, and BENCH_ACCOUNTS accounts opened through the API to deposit into."""
    pool = await asyncpg.create_pool(settings.pg, min_size=1, max_size=2)
    try:
        form = await _staff_member(pool, "teller")
        # The customers the accounts are opened for (staff open accounts only for customers the bank knows),
        await pool.executemany(
            "INSERT INTO users (user_id, email, email_key, name, password_hash, role, customer_id) "
            "VALUES ($1, $2, $2, 'Benchmark Customer', '!bench', 'customer', $3) ON CONFLICT DO NOTHING",
            [(uuid.uuid4(), f"{uuid.uuid4().hex}@bench.test", f"bench-api-{n}") for n in range(BENCH_CUSTOMERS)])
        # verified (core/kyc.py): the load moves more money through more accounts than an unverified customer may
        await pool.executemany("INSERT INTO kyc_cases (customer_id, status) VALUES ($1, 'verified') "
                               "ON CONFLICT (customer_id) DO UPDATE SET status = 'verified'",
                               [(f"bench-api-{n}",) for n in range(BENCH_CUSTOMERS)])
    finally:
        await pool.close()
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
        response = await http.post("/v1/auth/token", data=form)
        response.raise_for_status()
        token = response.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        # Cash moves through the teller's drawer: open it, as a teller does first thing (BANK_DRAWER_REQUIRED).
        drawer = await http.post("/v1/teller/drawers/me/open", headers=headers,
                                 json={"currency": "EUR", "float_amount": "0"})
        drawer.raise_for_status()

        async def open_one(n: int) -> str:
            opened = await http.post("/v1/accounts", params={"wait": "true"}, headers=headers | {
                "Idempotency-Key": str(uuid.uuid4())}, json={"customer_id": f"bench-api-{n % BENCH_CUSTOMERS}", "currency": "EUR"})
            opened.raise_for_status()
            return str(opened.json()["account_id"])

        accounts = []
        for start in range(0, BENCH_ACCOUNTS, 50):
            accounts += await asyncio.gather(*(open_one(n) for n in range(start, min(start + 50, BENCH_ACCOUNTS))))
    return token, accounts
