"""Savings interest over HTTP against the running stack (issue 17 point 6): a savings product, an account enrolled,
the close-of-business job accruing each business date and crediting each month, with business time moved by an
admin; the job killed mid-run and restarted accrues each account-date exactly once.

The expected interest is computed here from the documented rule (README, "Savings interest"): each day
balance x rate x 1/365 (ACT/365F), whole minor units posted, the exact remainder carried to the next day; each
month's posted days credited after its last day, and accruing from the next day on.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from cli.devstack import Stack
from core.events import InterestCredited
from core.savings import InterestAccrued
from core.settings import PROJECT_ROOT
from core.topics import INTEREST, LEDGER_EVENTS
from infra.kafka import read_topic
from schemas.codec import get_codec
from tests.support import Bank, with_customers

pytestmark = pytest.mark.usefixtures("stack")

WAIT_S = 90.0


async def business_today(admin: Bank) -> date:
    response = await admin.http.get("/v1/admin/clock")
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["now"]).date()


async def move_to_day(admin: Bank, day: date) -> None:
    response = await admin.http.put("/v1/admin/clock", json={"at": datetime.combine(day, time(3), UTC).isoformat()})
    assert response.status_code == 200, response.text


def months_ahead(day: date, months: int) -> date:
    """The first day of the month `months` after `day`'s."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def expected_interest(balance: int, rate_percent: str, start: date, end: date) -> dict[str, int]:
    """Per month, the interest the documented rule accrues from `start` to `end` (exclusive), ACT/365F."""
    rate, carried, months, balance_now = Fraction(Decimal(rate_percent)) / 100, Fraction(0), {}, balance
    day = start
    while day < end:
        total = Fraction(balance_now) * rate / 365 + carried
        posted = total.numerator // total.denominator
        carried = total - posted
        month = day.strftime("%Y-%m")
        months[month] = months.get(month, 0) + posted
        if day.day == calendar.monthrange(day.year, day.month)[1]:
            balance_now += months[month]   # credited after the month's last day: compounding monthly
        day += timedelta(days=1)
    return months


async def interest_until(client: Bank, account: str, through: date) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        response = await client.http.get(f"/v1/accounts/{account}/interest")
        assert response.status_code == 200, response.text
        body = dict(response.json())
        if body["accrued_through"] and date.fromisoformat(body["accrued_through"]) >= through:
            return body
        assert asyncio.get_running_loop().time() < deadline, f"accrual never reached {through}: {body}"
        await asyncio.sleep(0.1)


async def interest_credits(client: Bank, account: str) -> int:
    history = (await client.get(f"/v1/accounts/{account}/transactions")).json()
    return sum(1 for item in history["items"] if item["type"] == "interest")


async def balance_reaches(client: Bank, account: str, amount: Decimal) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while (current := Decimal((await client.account(account))["balance"])) != amount:
        assert asyncio.get_running_loop().time() < deadline, f"{account} is at {current}, never {amount}"
        await asyncio.sleep(0.1)


async def enrolled_saver(teller: Bank, customer: Bank, admin: Bank, rate: str) -> tuple[str, date]:
    product = await admin.http.post("/v1/admin/savings-products", json={
        "name": f"Saver {rate}%", "currency": "EUR", "annual_rate_percent": rate})
    assert product.status_code == 201, product.text
    one = await customer.http.get(f"/v1/savings-products/{product.json()['product_id']}")
    assert one.status_code == 200 and one.json() == product.json()
    account = await customer.open()
    assert (await teller.fund(account, "10000.00")).status_code == 200
    enrolled = await customer.http.post(f"/v1/accounts/{account}/savings",
                                        json={"product_id": product.json()["product_id"]})
    assert enrolled.status_code == 201, enrolled.text
    return account, date.fromisoformat(enrolled.json()["enrolled_on"])


def run(api_url: str, scenario: Any) -> Any:
    async def with_admin(teller: Bank, customer: Bank) -> Any:
        admin = Bank(api_url, role="admin")
        try:
            return await scenario(teller, customer, admin)
        finally:
            await admin.close()

    return with_customers(api_url, with_admin, "Sally Saver")


def test_a_savings_account_earns_exactly_the_documented_interest_over_three_months(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, admin: Bank) -> None:
        account, enrolled_on = await enrolled_saver(teller, customer, admin, "2")
        end = months_ahead(enrolled_on, 4)   # three whole months after the enrolment's one
        await move_to_day(admin, end)
        interest = await interest_until(customer, account, end - timedelta(days=1))
        expected = expected_interest(1_000_000, "2", enrolled_on, end)
        assert {m["month"]: int(Decimal(m["accrued"]) * 100) for m in interest["months"]} == expected
        assert all(m["credited"] for m in interest["months"]) and len(interest["months"]) == 4
        credited = sum(expected.values())
        await balance_reaches(customer, account, Decimal(1_000_000 + credited) / 100)
        # the history is a read model (PostgreSQL), a moment behind the ledger: wait for its four credits
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while (credits := await interest_credits(customer, account)) < 4:
            assert asyncio.get_running_loop().time() < deadline, f"the history shows {credits} interest credit(s)"
            await asyncio.sleep(0.1)
        assert credits == 4
        # the books: interest expense debited with exactly what the account was credited
        books = (await admin.http.get("/v1/admin/books/trial-balance", params={"currency": "EUR"})).json()
        assert books["currencies"][0]["balanced"], books
        status = (await admin.http.get("/v1/admin/cob")).json()
        assert date.fromisoformat(status["closing_through"]) == end - timedelta(days=1)
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while status["accounts_behind"] or status["loans_behind"]:   # every account and loan of the session
            assert asyncio.get_running_loop().time() < deadline, status
            await asyncio.sleep(0.2)
            status = (await admin.http.get("/v1/admin/cob")).json()
        done = subprocess.run([sys.executable, "-m", "cli.main", "cob", "status", "--json"], cwd=PROJECT_ROOT,
                              env=dict(os.environ), capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["accounts_behind"] == 0 and answer["loans_behind"] == 0 and answer["loans"] == status["loans"]

    run(api_url, scenario)


def test_the_job_killed_mid_run_and_restarted_accrues_each_account_date_once(
        api_url: str, stack: Stack, kafka_bootstrap: str) -> None:
    async def scenario(teller: Bank, customer: Bank, admin: Bank) -> None:
        account, enrolled_on = await enrolled_saver(teller, customer, admin, "3.5")
        end = months_ahead(enrolled_on, 8)    # ~240 dates: two ticks of 200 to catch up, killed between them
        await move_to_day(admin, end)
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:   # mid-run: some dates accrued, not all
            body = (await customer.http.get(f"/v1/accounts/{account}/interest")).json()
            through = body["accrued_through"]
            if through and date.fromisoformat(through) < end - timedelta(days=1):
                break
            assert through is None or date.fromisoformat(through) < end - timedelta(days=1), "no mid-run moment"
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        stack.kill("scheduler", signal.SIGKILL)
        await asyncio.to_thread(stack.start_scheduler)
        interest = await interest_until(customer, account, end - timedelta(days=1))
        expected = expected_interest(1_000_000, "3.5", enrolled_on, end)
        assert {m["month"]: int(Decimal(m["accrued"]) * 100) for m in interest["months"]} == expected
        await balance_reaches(customer, account, Decimal(1_000_000 + sum(expected.values())) / 100)

        codec = get_codec()
        accruals = [codec.decode(r.value, r.headers) for r in (await read_topic(kafka_bootstrap, INTEREST)).records]
        mine = [a for a in accruals if isinstance(a, InterestAccrued) and a.account_id == account]
        by_date = {a.accrual_date: a for a in mine}
        assert len(by_date) == (end - enrolled_on).days                 # every date, once each...
        assert all(len({(a.accrued, a.carried) for a in mine if a.accrual_date == day}) == 1 for day in by_date)
        credits = Counter(e.period for e in (codec.decode(r.value, r.headers) for r in
                                             (await read_topic(kafka_bootstrap, LEDGER_EVENTS)).records)
                          if isinstance(e, InterestCredited) and e.account_id == account)
        assert set(credits) == set(expected) and set(credits.values()) == {1}   # each month credited once

    run(api_url, scenario)
