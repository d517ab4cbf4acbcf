"""Standing orders in the chaos run: customers' daily orders, paid by the scheduler while the faults land, as an
admin moves business time a day at a time; afterwards each order must have paid each of its days exactly once."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx

from core.invariants import Check

SAVERS = 2          # customers with a daily order each
PAYMENTS = 3        # each order pays this many days
AMOUNT = "1.00"
ORDERS_PAID = "every standing order paid each of its days once"


@dataclass(frozen=True, slots=True)
class Saver:
    token: str
    order_id: str
    target: str


async def set_up(api_url: str, pg_dsn: str, teller: httpx.AsyncClient, admin_token: str) -> list[Saver]:
    """Customers registered through the API (verified, as the bench's are), two accounts each opened and the first
    funded by the teller, and a daily order between them from tomorrow (business time)."""
    tomorrow = (await business_now(api_url, admin_token)).date() + timedelta(days=1)
    return [await _saver(api_url, pg_dsn, teller, n, tomorrow) for n in range(SAVERS)]


async def _saver(api_url: str, pg_dsn: str, teller: httpx.AsyncClient, n: int, start: date) -> Saver:
    email, password = f"saver-{n}-{uuid.uuid4().hex[:8]}@chaos.test", secrets.token_urlsafe(18)
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
        registered = await http.post("/v1/auth/register", json={"email": email, "password": password,
                                                                "name": f"Chaos Saver {n}"})
        registered.raise_for_status()
        customer_id = registered.json()["customer_id"]
        connection = await asyncpg.connect(pg_dsn)
        try:   # verified (core/kyc.py) before its accounts open: no receiving limit
            await connection.execute("INSERT INTO kyc_cases (customer_id, status) VALUES ($1, 'verified') "
                                     "ON CONFLICT (customer_id) DO UPDATE SET status = 'verified'", customer_id)
        finally:
            await connection.close()
        source, target = [await _opened(teller, customer_id, f"chaos-saver-{n}-{side}") for side in ("from", "to")]
        funded = await teller.post(f"/v1/accounts/{source}/deposits", params={"wait": "true"},
                                   json={"amount": "100.00", "currency": "EUR"},
                                   headers={"Idempotency-Key": f"chaos-saver-{n}-funding"})
        funded.raise_for_status()
        token = await http.post("/v1/auth/token", data={"username": email, "password": password})
        token.raise_for_status()
        access = str(token.json()["access_token"])
        order = await http.post("/v1/standing-orders", headers={"Authorization": f"Bearer {access}"}, json={
            "from_account_id": source, "to_account_id": target, "amount": AMOUNT, "currency": "EUR",
            "time_zone": "UTC", "frequency": "daily", "start_date": start.isoformat(), "count": PAYMENTS,
            "reference": "chaos saving"})
        order.raise_for_status()
        return Saver(access, str(order.json()["order_id"]), target)


async def _opened(teller: httpx.AsyncClient, customer_id: str, key: str) -> str:
    opened = await teller.post("/v1/accounts", params={"wait": "true"}, headers={"Idempotency-Key": key},
                               json={"customer_id": customer_id, "currency": "EUR"})
    opened.raise_for_status()
    return str(opened.json()["account_id"])


async def business_now(api_url: str, admin_token: str) -> datetime:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        clock = await http.get("/v1/admin/clock", headers={"Authorization": f"Bearer {admin_token}"})
        clock.raise_for_status()
        return datetime.fromisoformat(clock.json()["now"])


async def days_pass(api_url: str, admin_token: str, days: int, gap: float, give_up_s: float) -> int:
    """Business time moved a day every `gap` seconds, `days` times; a move the API (killed meanwhile) did not take
    is tried again. How many days passed."""
    moved = 0
    async with httpx.AsyncClient(base_url=api_url, timeout=30,
                                 headers={"Authorization": f"Bearer {admin_token}"}) as http:
        for _ in range(days):
            await asyncio.sleep(gap)
            deadline = time.monotonic() + give_up_s
            while True:
                try:
                    response = await http.put("/v1/admin/clock", json={"advance": "P1D"})
                    if response.status_code == 200:
                        moved += 1
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    return moved
                await asyncio.sleep(0.5)
    return moved


async def paid_check(api_url: str, savers: list[Saver], timeout: float) -> Check:
    """Each order, once the scheduler is done with it: PAYMENTS occurrences numbered 1.., each paid once, and the
    money in the target account (as the read model shows it, once caught up)."""
    check = Check(ORDERS_PAID, f"{len(savers)} daily orders of {PAYMENTS} payments")
    expected = str(Decimal(AMOUNT) * PAYMENTS)
    deadline = time.monotonic() + timeout
    paid = 0
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        for saver in savers:
            headers = {"Authorization": f"Bearer {saver.token}"}
            while True:
                order = (await http.get(f"/v1/standing-orders/{saver.order_id}", headers=headers)).json()
                occurrences = sorted((o["number"], o["status"]) for o in order.get("occurrences", []))
                balance = (await http.get(f"/v1/accounts/{saver.target}", headers=headers)).json().get("balance")
                done = occurrences == [(n, "paid") for n in range(1, PAYMENTS + 1)] and balance == expected
                if done or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            if not done:
                check.fail(f"order {saver.order_id}: occurrences {occurrences}, its account holds {balance}, "
                           f"not {expected}")
            paid += sum(1 for _number, status in occurrences if status == "paid")
    check.counts = {"orders": len(savers), "payments": paid}
    return check
