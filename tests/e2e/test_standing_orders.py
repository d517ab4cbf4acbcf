"""Standing orders over HTTP against the running stack (issue 16, point 3), with business time moved by an admin
(PUT /v1/admin/clock), never by sleeping: a year of monthly payments takes seconds.

Business time only runs forward, and the whole session shares it: each test starts from wherever it stands and
moves it to the due moments it needs (dates in UTC: the orders here name that zone).
"""

from __future__ import annotations

import asyncio
import calendar
import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from cli.devstack import Stack, free_port
from core.events import TransferDebited
from core.schedules import occurrence_id
from core.topics import LEDGER_EVENTS
from infra.kafka import read_topic
from tests.support import Bank, decoded, problem, with_customers

pytestmark = pytest.mark.usefixtures("stack")

WAIT_S = 60.0


async def business_now(admin: Bank) -> datetime:
    response = await admin.http.get("/v1/admin/clock")
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["now"])


async def move_to(admin: Bank, moment: datetime) -> None:
    """Business time to `moment`, or left where it is if it is already later (it never runs back)."""
    if moment > await business_now(admin):
        response = await admin.http.put("/v1/admin/clock", json={"at": moment.isoformat()})
        assert response.status_code == 200, response.text


def last_of_month(day: date) -> bool:
    return day.day == calendar.monthrange(day.year, day.month)[1]


def first_of_next_month(moment: datetime) -> date:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return date(year, month, 1)


async def create(customer: Bank, body: dict[str, Any]) -> dict[str, Any]:
    response = await customer.http.post("/v1/standing-orders", json={"currency": "EUR", "time_zone": "UTC"} | body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def until(customer: Bank, order_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The order once `done` holds (the scheduler works in the background: poll, with a deadline)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        response = await customer.http.get(f"/v1/standing-orders/{order_id}")
        assert response.status_code == 200, response.text
        order = dict(response.json())
        if done(order):
            return order
        assert asyncio.get_running_loop().time() < deadline, f"standing order never got there: {order}"
        await asyncio.sleep(0.1)


def statuses(order: dict[str, Any]) -> dict[str, str]:
    return {o["due_date"]: o["status"] for o in order["occurrences"]}


async def fund(teller: Bank, account: str, amount: str) -> None:
    response = await teller.fund(account, amount)
    assert response.status_code in (200, 202) and response.json()["status"] == "accepted", response.text


async def balance_reaches(client: Bank, account: str, amount: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while Decimal((await client.account(account))["balance"]) != Decimal(amount):
        assert asyncio.get_running_loop().time() < deadline, f"{account} never reached {amount}"
        await asyncio.sleep(0.1)


def run(api_url: str, scenario: Callable[..., Awaitable[Any]]) -> Any:
    async def with_admin(teller: Bank, customer: Bank) -> Any:
        admin = Bank(api_url, role="admin")
        try:
            return await scenario(teller, customer, admin)
        finally:
            await admin.close()

    return with_customers(api_url, with_admin, "Stan Ding")


def test_a_monthly_order_of_twelve_on_the_31st_pays_twelve_times_in_thirteen_months(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, admin: Bank) -> None:
        source, target = await customer.open(), await customer.open()
        await fund(teller, source, "1000.00")
        start = first_of_next_month(await business_now(admin))
        order = await create(customer, {"from_account_id": source, "to_account_id": target, "amount": "10.00",
                                        "frequency": "monthly", "day_of_month": 31,
                                        "start_date": start.isoformat(), "count": 12, "reference": "rent"})
        runs = [date.fromisoformat(r["due_date"]) for r in order["next_runs"]]
        # the documented end-of-month rule: the month's last day when it has no 31st, never a skipped month
        assert len(runs) == 5 and all(last_of_month(day) for day in runs)
        assert len({(day.year, day.month) for day in runs}) == 5
        for _month in range(13):
            due = date.fromisoformat(order["next_runs"][0]["due_date"]) if order["next_runs"] else None
            if due is None:   # the thirteenth month: nothing left to pay; move on a month anyway
                await move_to(admin, (await business_now(admin)) + timedelta(days=31))
                break
            await move_to(admin, datetime.combine(due, datetime.min.time(), UTC) + timedelta(hours=1))
            day = due.isoformat()
            order = await until(customer, order["order_id"], lambda o, day=day: statuses(o).get(day) == "paid")
        order = await until(customer, order["order_id"], lambda o: len(o["occurrences"]) >= 12)
        paid = [o for o in order["occurrences"] if o["status"] == "paid"]
        assert len(paid) == 12 and len(order["occurrences"]) == 12 and order["next_runs"] == []
        assert [o["number"] for o in paid] == list(range(1, 13))
        days = [date.fromisoformat(o["due_date"]) for o in paid]
        assert all(last_of_month(day) for day in days) and len({(d.year, d.month) for d in days}) == 12
        assert any(day.month == 2 for day in days)   # 28 or 29 February among them
        assert not any(o["late"] for o in paid)
        await balance_reaches(customer, target, "120.00")
        await balance_reaches(customer, source, "880.00")

    run(api_url, scenario)


def test_insufficient_funds_fails_then_retries_later_the_same_day(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, admin: Bank) -> None:
        poor, broke, target = await customer.open(), await customer.open(), await customer.open()
        tomorrow = (await business_now(admin)).date() + timedelta(days=1)
        saved = await create(customer, {"from_account_id": poor, "to_account_id": target, "amount": "25.00",
                                        "frequency": "once", "start_date": tomorrow.isoformat()})
        lost = await create(customer, {"from_account_id": broke, "to_account_id": target, "amount": "5.00",
                                       "frequency": "once", "start_date": tomorrow.isoformat()})
        assert [r["due_date"] for r in saved["next_runs"]] == [tomorrow.isoformat()]
        await move_to(admin, datetime.combine(tomorrow, datetime.min.time(), UTC) + timedelta(minutes=30))
        for order in (saved, lost):
            pending = await until(customer, order["order_id"],
                                  lambda o: statuses(o).get(tomorrow.isoformat()) == "retry_pending")
            [occurrence] = pending["occurrences"]
            assert occurrence["reason"] == "insufficient_funds" and occurrence["attempt"] == 1
            retry_at = datetime.fromisoformat(occurrence["retry_at"])
            assert retry_at.date() == tomorrow and retry_at > await business_now(admin)   # later the same day
        await fund(teller, poor, "30.00")
        await move_to(admin, retry_at + timedelta(minutes=1))
        done = await until(customer, saved["order_id"], lambda o: statuses(o).get(tomorrow.isoformat()) == "paid")
        assert done["occurrences"][0]["attempt"] == 2
        failed = await until(customer, lost["order_id"], lambda o: statuses(o).get(tomorrow.isoformat()) == "failed")
        assert (failed["occurrences"][0]["attempt"], failed["occurrences"][0]["reason"]) == (2, "insufficient_funds")
        await balance_reaches(customer, target, "25.00")
        await balance_reaches(customer, poor, "5.00")

    run(api_url, scenario)


def test_a_scheduler_killed_at_a_due_time_and_a_second_one_pay_each_occurrence_once(
        api_url: str, stack: Stack, kafka_bootstrap: str) -> None:
    second = stack.scheduler_spec()
    second.name, second.port = "scheduler-second", free_port()
    second.env = {"BANK_SCHEDULER_PORT": str(second.port)}

    async def scenario(teller: Bank, customer: Bank, admin: Bank) -> None:
        source, target = await customer.open(), await customer.open()
        await fund(teller, source, "100.00")
        tomorrow = (await business_now(admin)).date() + timedelta(days=1)
        order = await create(customer, {"from_account_id": source, "to_account_id": target, "amount": "7.00",
                                        "frequency": "daily", "start_date": tomorrow.isoformat(), "count": 2})
        await move_to(admin, datetime.combine(tomorrow, datetime.min.time(), UTC) + timedelta(minutes=5))
        stack.kill("scheduler", signal.SIGKILL)   # at the due time, whether or not it got to submit
        await asyncio.to_thread(stack.start_scheduler)
        await asyncio.to_thread(stack.start, second)   # and a second scheduler besides
        try:
            await move_to(admin, datetime.combine(tomorrow, datetime.min.time(), UTC) + timedelta(days=1, minutes=5))
            done = await until(customer, order["order_id"],
                               lambda o: [x["status"] for x in o["occurrences"]] == ["paid", "paid"])
            assert [x["number"] for x in done["occurrences"]] == [1, 2]
            await balance_reaches(customer, target, "14.00")
        finally:
            stack.kill(second.name)
        debits = [event for event in await ledger_events(kafka_bootstrap) if isinstance(event, TransferDebited)
                  and event.account_id == source]
        days = [tomorrow, tomorrow + timedelta(days=1)]
        assert sorted(d.command_id for d in debits) == sorted(occurrence_id(order["order_id"], d) for d in days)

    run(api_url, scenario)


async def ledger_events(bootstrap: str) -> list[Any]:
    return decoded((await read_topic(bootstrap, LEDGER_EVENTS)).records)


def test_customers_edit_pause_resume_and_cancel_their_own_orders_only(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, admin: Bank) -> None:
        source, target = await customer.open(), await customer.open()
        start = (await business_now(admin)).date() + timedelta(days=3)
        body = {"from_account_id": source, "to_account_id": target, "amount": "1.00", "frequency": "weekly",
                "weekday": 4, "start_date": start.isoformat()}
        key = str(uuid.uuid4())
        made = await customer.http.post("/v1/standing-orders", json=body | {"currency": "EUR"},
                                        headers={"Idempotency-Key": key})
        again = await customer.http.post("/v1/standing-orders", json=body | {"currency": "EUR"},
                                         headers={"Idempotency-Key": key})
        assert made.status_code == 201 and again.json()["order_id"] == made.json()["order_id"]
        order = made.json()
        assert order["time_zone"] == "Europe/Berlin"   # the customer's zone by default (BANK_CUSTOMER_TIME_ZONE)
        assert all(date.fromisoformat(r["due_date"]).weekday() == 4 for r in order["next_runs"])
        edited = await customer.http.patch(f"/v1/standing-orders/{order['order_id']}", json={"amount": "2.50"})
        assert edited.status_code == 200 and (edited.json()["amount"], edited.json()["version"]) == ("2.50", 2)
        paused = await customer.http.patch(f"/v1/standing-orders/{order['order_id']}", json={"status": "paused"})
        assert paused.json()["status"] == "paused"
        resumed = await customer.http.patch(f"/v1/standing-orders/{order['order_id']}", json={"status": "active"})
        assert resumed.json()["status"] == "active"
        listing = (await customer.http.get("/v1/standing-orders")).json()
        assert [o["order_id"] for o in listing["standing_orders"]] == [order["order_id"]]
        staff_view = await teller.http.get("/v1/standing-orders", params={"customer_id": customer.customer_id})
        assert [o["order_id"] for o in staff_view.json()["standing_orders"]] == [order["order_id"]]
        other = await Bank.customer(api_url, "Other Person")
        try:
            problem(await other.http.get(f"/v1/standing-orders/{order['order_id']}"), 404, "unknown_standing_order")
            problem(await other.http.delete(f"/v1/standing-orders/{order['order_id']}"), 404,
                    "unknown_standing_order")
            problem(await other.http.post("/v1/standing-orders", json=body | {"currency": "EUR"}), 404,
                    "unknown_account")   # another's account to pay from
        finally:
            await other.close()
        problem(await customer.http.post("/v1/standing-orders", json=body | {
            "currency": "EUR", "start_date": "2001-01-01"}), 422, "start_in_the_past")
        problem(await customer.http.post("/v1/standing-orders", json=body | {"currency": "USD"}), 422,
                "currency_mismatch")
        assert (await customer.http.delete(f"/v1/standing-orders/{order['order_id']}")).status_code == 204
        cancelled = (await customer.http.get(f"/v1/standing-orders/{order['order_id']}")).json()
        assert (cancelled["status"], cancelled["next_runs"]) == ("cancelled", [])
        problem(await customer.http.patch(f"/v1/standing-orders/{order['order_id']}", json={"amount": "3.00"}), 409,
                "standing_order_cancelled")

    run(api_url, scenario)
