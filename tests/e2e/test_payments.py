"""External payments through the payment gateway and the sandbox rail, over HTTP against the running stack (issue 14
points 6 and 7): a payment settles; one to an IBAN the rail returns with AC01 is reversed; inbound credits reach an
account by IBAN, and one to an unknown, closed or frozen account is returned with its code; the rail stopped during
a burst of payments and restarted: each payment settles or returns exactly once. The books balance throughout.

The session's stack is shared: figures are compared before and after, never absolute; each test pays its own
freshly generated creditor IBANs, so the rail's rules of one test touch no other.
"""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from schwifty import IBAN

from cli.devstack import Stack
from tests.support import Bank, problem, with_customers

pytestmark = pytest.mark.usefixtures("stack")

FINAL = ("settled", "returned")


@pytest.fixture(scope="module")
def rail_url(stack: Stack) -> str:
    return stack.settings.rail


def creditor_iban() -> str:
    """A valid IBAN of another bank (Commerzbank's bank code, its national check digit too), new each call."""
    while True:
        iban = IBAN.generate("DE", bank_code="37040044", account_code=f"{random.randrange(10**9, 10**10)}")
        try:
            IBAN(iban.compact, validate_bban=True)
        except ValueError:
            continue
        return iban.compact


def run(api_url: str, scenario: Callable[..., Awaitable[Any]]) -> Any:
    return with_customers(api_url, scenario, "Ann Payer", "Bob Other")


async def funded(teller: Bank, customer: Bank, amount: str = "100.00") -> str:
    """A new account of the customer's with `amount` in it, once their read of it shows the money (a test's later
    reads compare with it)."""
    account = await customer.open()
    assert (await teller.fund(account, amount)).status_code == 200
    deadline = asyncio.get_running_loop().time() + 60
    while (await customer.account(account))["balance"] != amount:
        assert asyncio.get_running_loop().time() < deadline, f"{account} never showed {amount}"
        await asyncio.sleep(0.1)
    return account


async def pay(customer: Bank, account: str, amount: str, iban: str, **extra: Any) -> str:
    response = await customer.post("/v1/payments", {"from_account_id": account, "amount": amount, "currency": "EUR",
                                                    "creditor_iban": iban, "creditor_name": "Erika Mustermann",
                                                    "remittance_information": "invoice 42"} | extra)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    return str(response.json()["command_id"])


async def final_payment(client: Bank, payment_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.http.get(f"/v1/payments/{payment_id}")
        assert response.status_code == 200, response.text
        if response.json()["status"] in FINAL:
            return response.json()
        assert asyncio.get_running_loop().time() < deadline, f"payment still {response.json()['status']}"
        await asyncio.sleep(0.1)


async def balance(client: Bank, account: str) -> Decimal:
    """From the ledger's own fold (the point-in-time balance), not a read model that may lag."""
    response = await client.http.get(f"/v1/accounts/{account}/balance")
    assert response.status_code == 200, response.text
    return Decimal(response.json()["balance"])


async def books_balance(teller: Bank) -> None:
    report = (await teller.http.get("/v1/admin/books/trial-balance", params={"currency": "EUR"})).json()
    [books] = report["currencies"]
    assert books["balanced"] and Decimal(books["total"]) == 0, books
    assert not books.get("violations"), books


async def inbound(rail_url: str, **body: Any) -> dict[str, Any]:
    """Originate an inbound credit at the rail and wait for the bank's answer to it."""
    async with httpx.AsyncClient(base_url=rail_url, timeout=10) as rail:
        created = await rail.post("/inbound", json={"amount": "12.34", "currency": "EUR",
                                                    "debtor_iban": creditor_iban(), "debtor_name": "Max Payer"} | body)
        assert created.status_code == 202, created.text
        instruction_id = created.json()["instruction_id"]
        for _ in range(300):
            state = (await rail.get(f"/inbound/{instruction_id}")).json()
            if state["status"] != "pending":
                return dict(state)
            await asyncio.sleep(0.1)
    raise AssertionError(f"inbound {instruction_id} never answered")


def test_a_payment_settles_and_another_customers_payment_is_a_404(api_url: str, rail_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        account = await funded(teller, ann)
        iban = creditor_iban()
        payment_id = await pay(ann, account, "30.00", iban, creditor_bic="COBADEFFXXX")
        assert await balance(ann, account) == Decimal("70.00")   # debited at once, to clearing
        payment = await final_payment(ann, payment_id)
        assert payment["status"] == "settled" and payment["reason_code"] is None
        assert (payment["amount"], payment["creditor_iban"], payment["creditor_bic"]) == ("30.00", iban,
                                                                                          "COBADEFFXXX")
        assert await balance(ann, account) == Decimal("70.00")
        async with httpx.AsyncClient(base_url=rail_url) as rail:
            at_rail = (await rail.get(f"/instructions/{payment_id}")).json()
        assert at_rail["status"] == "settled" and at_rail["submissions"] == 1 and at_rail["amount"] == "30.00"
        problem(await bob.http.get(f"/v1/payments/{payment_id}"), 404, "unknown_payment")
        assert (await teller.http.get(f"/v1/payments/{payment_id}")).json()["status"] == "settled"
        await books_balance(teller)

    run(api_url, scenario)


def test_a_returned_payment_is_reversed_with_its_reason_code(api_url: str, rail_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        account = await funded(teller, ann)
        iban = creditor_iban()
        async with httpx.AsyncClient(base_url=rail_url) as rail:
            assert (await rail.put(f"/rules/{iban}", json={"reason_code": "AC01"})).status_code == 200
        payment_id = await pay(ann, account, "25.50", iban)
        payment = await final_payment(ann, payment_id)
        assert (payment["status"], payment["reason_code"]) == ("returned", "AC01")
        assert payment["reason"] == "incorrect account number"
        assert await balance(ann, account) == Decimal("100.00")   # the money came back
        # the read models took the payment's events: the account's history shows both postings
        for _ in range(100):
            items = (await ann.get(f"/v1/accounts/{account}/transactions")).json()["items"]
            if "payment_return" in [item["type"] for item in items]:
                break
            await asyncio.sleep(0.1)
        postings = {item["type"]: item for item in items}
        assert postings["payment_out"]["amount"] == "-25.50" and postings["payment_return"]["amount"] == "25.50"
        await books_balance(teller)

    run(api_url, scenario)


def test_payments_are_refused_like_transfers(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        account = await funded(teller, ann, "10.00")
        body = {"from_account_id": account, "amount": "50.00", "currency": "EUR", "creditor_iban": creditor_iban(),
                "creditor_name": "Erika Mustermann"}
        problem(await ann.post("/v1/payments", body), 422, "insufficient_funds")
        own_bank = (await ann.account(account))["iban"]
        problem(await ann.post("/v1/payments", body | {"amount": "1.00", "creditor_iban": own_bank}), 422,
                "internal_iban")
        problem(await ann.post("/v1/payments", body | {"amount": "1.00", "creditor_iban": "DE00 1234"}), 422,
                "invalid_iban")
        bobs = await bob.open()
        problem(await ann.post("/v1/payments", body | {"from_account_id": bobs, "amount": "1.00"}), 404,
                "unknown_account")
        assert await balance(ann, account) == Decimal("10.00")

    run(api_url, scenario)


def test_inbound_credit_to_an_iban(api_url: str, rail_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        account = await ann.open()
        iban = (await ann.account(account))["iban"]
        answer = await inbound(rail_url, creditor_iban=iban, remittance_information="salary")
        assert answer["status"] == "credited" and answer["reason_code"] is None
        assert await balance(ann, account) == Decimal("12.34")
        await books_balance(teller)

    run(api_url, scenario)


def test_inbound_to_an_unknown_closed_or_frozen_account_is_returned(api_url: str, rail_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        closed, frozen = await ann.open(), await ann.open()
        assert (await ann.post(f"/v1/accounts/{closed}/close")).status_code == 200
        assert (await ann.post(f"/v1/accounts/{frozen}/freeze")).status_code == 200
        closed_iban, frozen_iban = (await ann.account(closed))["iban"], (await ann.account(frozen))["iban"]
        assert (await inbound(rail_url, creditor_iban=closed_iban))["reason_code"] == "AC04"
        assert (await inbound(rail_url, creditor_iban=frozen_iban))["reason_code"] == "AC06"
        assert (await inbound(rail_url, creditor_iban=creditor_iban()))["reason_code"] == "AC01"   # not ours
        for answer in [await inbound(rail_url, creditor_iban=closed_iban)]:
            assert answer["status"] == "returned"
        assert await balance(ann, frozen) == 0 and await balance(ann, closed) == 0
        await books_balance(teller)

    run(api_url, scenario)


def test_the_rail_stopped_during_a_burst_and_restarted(api_url: str, rail_url: str, stack: Stack) -> None:
    """Every payment of the burst ends once, settled or returned, after the rail comes back; the rail kept what it
    knew before it stopped (its state file), and the connector sent each instruction once."""

    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        account = await funded(teller, ann, "100.00")
        returned_iban = creditor_iban()
        async with httpx.AsyncClient(base_url=rail_url) as rail:
            assert (await rail.put(f"/rules/{returned_iban}", json={"reason_code": "AC04"})).status_code == 200
        before = await pay(ann, account, "1.00", creditor_iban())
        assert (await final_payment(ann, before))["status"] == "settled"
        stack.kill("rail")
        try:
            payments = {}
            for n in range(8):
                iban = returned_iban if n % 3 == 0 else creditor_iban()
                payments[await pay(ann, account, f"{n + 1}.00", iban)] = (n + 1, iban == returned_iban)
            await asyncio.sleep(1.0)   # the gateway retries meanwhile
            for payment_id in payments:
                status = (await ann.http.get(f"/v1/payments/{payment_id}")).json()["status"]
                assert status == "pending", status
        finally:
            await asyncio.to_thread(stack.start_rail)
        spent = 1
        for payment_id, (amount, returned) in payments.items():
            payment = await final_payment(ann, payment_id)
            assert payment["status"] == ("returned" if returned else "settled"), payment
            spent += 0 if returned else amount
        assert await balance(ann, account) == Decimal(100 - spent)
        async with httpx.AsyncClient(base_url=rail_url) as rail:
            assert (await rail.get(f"/instructions/{before}")).json()["status"] == "settled"   # kept over the restart
            for payment_id in payments:
                at_rail = (await rail.get(f"/instructions/{payment_id}")).json()
                assert at_rail["submissions"] == 1, at_rail
        # the ledger's own record: each payment ended by exactly one event
        audit = await teller.get("/v1/audit", account_id=account, type=["PaymentSettled", "PaymentReturned"],
                                 limit=500)
        assert audit.status_code == 200, audit.text
        ends = [item["data"]["payment_id"] for item in audit.json()["items"]]
        assert sorted(ends) == sorted([before, *payments]), ends
        async with httpx.AsyncClient() as http:   # the connector did retry while the rail was down
            metrics = (await http.get(f"http://127.0.0.1:{stack.settings.gateway_port}/metrics")).text
        retries = [line for line in metrics.splitlines() if line.startswith("bank_gateway_rail_retries_total ")]
        assert retries and float(retries[0].split()[1]) > 0, retries
        await books_balance(teller)

    run(api_url, scenario)


def test_the_gateway_killed_and_restarted_hands_over_the_next_payment(api_url: str, rail_url: str,
                                                                       stack: Stack) -> None:
    """kill -9 of the connector, then a restart: it rejoins its group at once (static membership; the embedded
    broker never evicts a dead member) and the next payment settles."""

    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        account = await funded(teller, ann, "10.00")
        assert (await final_payment(ann, await pay(ann, account, "1.00", creditor_iban())))["status"] == "settled"
        stack.kill("gateway", signal.SIGKILL)
        await asyncio.to_thread(stack.start_gateway)
        after = await pay(ann, account, "2.00", creditor_iban())
        assert (await final_payment(ann, after))["status"] == "settled"
        assert await balance(ann, account) == Decimal(7)

    run(api_url, scenario)


def test_the_rail_endpoints_need_the_shared_secret(api_url: str) -> None:
    body = {"instruction_id": f"x-{uuid.uuid4().hex[:8]}", "status": "settled"}
    response = httpx.post(f"{api_url}/v1/rail/notifications", json=body, headers={"Rail-Secret": "wrong"})
    problem(response, 401, "invalid_rail_secret")


def test_a_payment_to_a_sanctioned_creditor_is_blocked_and_never_reaches_the_rail(api_url: str,
                                                                                   rail_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        account = await funded(teller, ann, "50.00")
        refused = await ann.post("/v1/payments", {"from_account_id": account, "amount": "10.00", "currency": "EUR",
                                                  "creditor_iban": creditor_iban(), "creditor_name": "Pepe Alvarez"})
        payment_id = problem(refused, 422, "blocked_by_risk")["command_id"]   # the scoring path of transfers
        assert await balance(ann, account) == Decimal("50.00")
        problem(await ann.http.get(f"/v1/payments/{payment_id}"), 404, "unknown_payment")   # never debited
        async with httpx.AsyncClient(base_url=rail_url) as rail:
            assert (await rail.get(f"/instructions/{payment_id}")).status_code == 404

    run(api_url, scenario)
