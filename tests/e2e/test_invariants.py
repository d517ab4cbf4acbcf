"""Many random concurrent commands, then the ledger's invariants checked on the event log itself; and the books
balanced in every currency with currency exchanges, payments to other banks (one returned) and standing orders
paid among the load."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from cli.devstack import Stack
from tests.e2e.test_payments import creditor_iban, final_payment, pay
from tests.support.load import bounded, open_accounts, random_commands
from tests.e2e.test_standing_orders import balance_reaches
from tests.support import Bank, settled_audit, with_customers

pytestmark = pytest.mark.usefixtures("stack")


def test_invariants_hold_under_concurrent_random_commands(api_url: str, kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        try:
            accounts = await open_accounts(bank, 50)
            result = await random_commands(bank, accounts, count=bounded(2000), seed=20261124)
        finally:
            await bank.close()
        assert set(result.statuses) == {202}, result.statuses
        audit = await settled_audit(kafka_bootstrap, expected_commands=result.command_ids)
        assert audit.violations == []
        assert not audit.in_flight
        assert result.command_ids <= audit.outcome_command_ids(), "an accepted command has no events"
        rejected = sum(1 for ev in audit.events if type(ev).__name__ == "CommandRejected")
        assert rejected > 0  # the generator does ask for impossible withdrawals
        assert audit.deposited > 0 and audit.withdrawn > 0
        # The books: zero in total, and nothing left in transit once every transfer is credited or reversed.
        assert audit.books.trial_balance("EUR").total == 0 and audit.books.balance("transit", "EUR") == 0

    asyncio.run(scenario())


async def _fx_transfers(customer: Bank, euros: str, dollars: str, count: int) -> tuple[set[str], int]:
    """`count` exchanges of 10.00 EUR into dollars, each executing a quote of its own: (command ids, cents bought)."""
    command_ids, bought = set(), 0
    for _ in range(count):
        quote = await customer.http.post("/v1/fx/quotes", json={"sell_currency": "EUR", "buy_currency": "USD",
                                                                "amount": "10.00"})
        assert quote.status_code == 201, quote.text
        done = await customer.post("/v1/transfers", {"from_account_id": euros, "to_account_id": dollars,
                                                     "amount": "10.00", "currency": "EUR",
                                                     "quote_id": quote.json()["quote_id"]})
        assert done.status_code == 200 and done.json()["status"] == "accepted", done.text
        command_ids.add(done.json()["command_id"])
        bought += int(Decimal(quote.json()["buy_amount"]) * 100)
    return command_ids, bought


async def _days_pass(admin: Bank, customer: Bank, orders: list[str], days: int) -> None:
    """Business time moved a day at a time; after each, every order has paid that day's occurrence (each daily
    order pays three times: the days after are quiet)."""
    for day in range(1, days + 1):
        response = await admin.http.put("/v1/admin/clock", json={"advance": "P1D"})
        assert response.status_code == 200, response.text
        for order_id in orders:
            await _paid(customer, order_id, min(day, 3))


async def _paid(customer: Bank, order_id: str, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        order = (await customer.http.get(f"/v1/standing-orders/{order_id}")).json()
        paid = [o for o in order["occurrences"] if o["status"] == "paid"]
        if len(paid) >= count:
            return
        assert asyncio.get_running_loop().time() < deadline, f"standing order never paid {count} times: {order}"
        await asyncio.sleep(0.1)


def test_the_books_balance_in_every_currency_with_exchanges_payments_and_standing_orders_in_the_load(
        api_url: str, kafka_bootstrap: str, stack: Stack) -> None:
    async def scenario(teller: Bank, customer: Bank) -> None:
        admin = Bank(api_url, role="admin")
        try:
            rates = await admin.http.put("/v1/admin/fx/rates", json={"rates": [
                {"base": "EUR", "quote": "USD", "mid": "1.0850", "spread_basis_points": 50}]})
            assert rates.status_code in (200, 201), rates.text
            euros, savings, dollars = await customer.open("EUR"), await customer.open("EUR"), await customer.open("USD")
            assert (await teller.fund(euros, "1000.00")).status_code == 200
            now = datetime.fromisoformat((await admin.http.get("/v1/admin/clock")).json()["now"])
            orders = []
            for amount in ("5.00", "7.50"):
                created = await customer.http.post("/v1/standing-orders", json={
                    "from_account_id": euros, "to_account_id": savings, "amount": amount, "currency": "EUR",
                    "time_zone": "UTC", "frequency": "daily", "start_date": (now.date() + timedelta(days=1)).isoformat(),
                    "count": 3})
                assert created.status_code == 201, created.text
                orders.append(created.json()["order_id"])
            accounts = await open_accounts(teller, 20)

            async def exchanges_payments_then_days() -> tuple[set[str], int, list[str]]:
                # the exchanges first: a quote is valid for 60 s of business time, and days are about to pass
                exchanged, bought = await _fx_transfers(customer, euros, dollars, 8)
                async with httpx.AsyncClient(base_url=stack.settings.rail) as rail:   # one the rail returns
                    assert (await rail.put(f"/rules/{returned}", json={"reason_code": "AC01"})).status_code == 200
                paid = [await pay(customer, euros, "10.00", iban) for iban in (creditor_iban(), creditor_iban(),
                                                                                creditor_iban(), returned)]
                await _days_pass(admin, customer, orders, 4)
                return exchanged, bought, paid

            returned = creditor_iban()
            load, (exchanges, bought, payments) = await asyncio.gather(
                random_commands(teller, accounts, count=bounded(600), seed=20261206), exchanges_payments_then_days())
            assert set(load.statuses) == {202}, load.statuses
        finally:
            await admin.close()
        audit = await settled_audit(kafka_bootstrap, expected_commands=load.command_ids | exchanges | set(payments))
        assert audit.violations == [] and not audit.in_flight and not audit.payments_in_flight
        outcomes = [(await final_payment(customer, p))["status"] for p in payments]
        assert outcomes == ["settled", "settled", "settled", "returned"], outcomes
        for currency in ("EUR", "USD"):   # zero per currency: the exchange position holds each side
            assert audit.books.trial_balance(currency).total == 0, currency
        assert audit.books.balance("transit", "EUR") == 0
        assert audit.books.balance(f"customer:{dollars}", "USD") == -bought   # a liability: credit-normal
        await balance_reaches(customer, savings, "37.50")    # 3 x 5.00 + 3 x 7.50
        await balance_reaches(customer, euros, "852.50")     # 1000 - 80.00 exchanged - 30.00 paid out - 37.50

    with_customers(api_url, scenario, "Ada Exchanging")
