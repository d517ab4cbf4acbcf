"""Who may create money, grant credit and approve it, over HTTP against the running stack (issue 12: 1, 2, 5).

Cash in and out is the bank's (tellers and admins at the counter, recorded as channel "cash" by the server); a
customer moves money only by transfers from their own accounts. Overdrafts are granted by staff, up to a maximum
per currency. Nobody decides the risk case of a movement they submitted, and staff cash above the dual-control
threshold waits for a second staff member.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.support import Bank, problem, settled_audit

pytestmark = pytest.mark.usefixtures("stack")



def run(api_url: str, scenario: Callable[[Bank, Bank], Awaitable[Any]]) -> Any:
    """The scenario with a teller and a freshly registered customer."""
    async def main() -> Any:
        teller, customer = Bank(api_url), await Bank.customer(api_url)
        try:
            return await scenario(teller, customer)
        finally:
            await teller.close()
            await customer.close()

    return asyncio.run(main())


async def _case_visible(reviewer: Bank, writer: Bank, case_id: str) -> None:
    reviewer.position = dict(writer.position)
    for _ in range(100):
        if (await reviewer.get(f"/v1/admin/cases/{case_id}")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"case {case_id} never reached the case queue")


async def _decide(reviewer: Bank, case_id: str, decision: str = "approve") -> httpx.Response:
    return reviewer.seen(await reviewer.http.post(f"/v1/admin/cases/{case_id}/{decision}", params={"wait": "true"},
                                                  json={"comment": "checked at the counter"}))


# ---------------------------------------------------------------- 1. no money from nowhere


def test_a_customer_can_neither_deposit_nor_withdraw_and_nothing_posts(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank) -> None:
        account = await customer.open()
        assert (await teller.deposit(account, "100.00")).status_code == 200
        for path in ("deposits", "withdrawals"):
            for channel in ({}, {"channel": "cash"}):
                refused = await customer.post(f"/v1/accounts/{account}/{path}",
                                              {"amount": "1000000.00", "currency": "EUR"} | channel)
                problem(refused, 403, "forbidden")
        view = await teller.account(account)
        assert (view["balance"], view["version"]) == ("100.00", 2)
        postings = (await teller.get(f"/v1/accounts/{account}/transactions")).json()["items"]
        assert [(p["type"], p["amount"]) for p in postings] == [("deposit", "100.00")]

    run(api_url, scenario)


def test_a_tellers_deposit_posts_as_cash_and_no_body_chooses_the_channel(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank) -> None:
        account = await customer.open()
        chosen = await teller.post(f"/v1/accounts/{account}/deposits",
                                   {"amount": "50.00", "currency": "EUR", "channel": "transfer"})
        assert chosen.status_code == 422 and "channel" in chosen.text, chosen.text
        posted = await teller.deposit(account, "50.00")
        assert posted.status_code == 200, posted.text
        [deposited] = [ev for ev in posted.json()["events"] if ev["type"] == "FundsDeposited"]
        assert deposited["data"]["channel"] == "cash"
        withdrawn = await teller.withdraw(account, "20.00")
        assert withdrawn.status_code == 200, withdrawn.text
        postings = (await teller.get(f"/v1/accounts/{account}/transactions")).json()["items"]
        assert {(p["type"], p["channel"]) for p in postings} == {("deposit", "cash"), ("withdrawal", "cash")}

    run(api_url, scenario)


# ---------------------------------------------------------------- 2. no self-granted credit


def test_a_customer_cannot_open_an_account_with_an_overdraft(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank) -> None:
        refused = await customer.post("/v1/accounts", {"currency": "EUR", "overdraft_limit": "1000000.00"})
        body = problem(refused, 422, "overdraft_requires_staff")
        assert body["errors"][0]["loc"] == ["body", "overdraft_limit"]
        accounts = (await customer.get(f"/v1/customers/{customer.customer_id}/accounts")).json()["accounts"]
        assert accounts == []
        assert (await customer.post("/v1/accounts", {"currency": "EUR"})).status_code == 201

    run(api_url, scenario)


def test_staff_set_an_overdraft_up_to_the_maximum_and_the_customer_may_then_use_it(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank) -> None:
        account, payee = await customer.open(), await teller.open(customer="payee-of-overdraft")
        path = f"/v1/accounts/{account}/overdraft-limit"
        problem(await customer.http.put(path, json={"overdraft_limit": "100.00"}), 403, "forbidden")
        too_high = teller.seen(await teller.http.put(path, json={"overdraft_limit": "5000.01"},
                                                     params={"wait": "true"}))
        problem(too_high, 422, "overdraft_limit_too_high")
        opened_too_high = await teller.post("/v1/accounts", {"customer_id": customer.customer_id, "currency": "EUR",
                                                             "overdraft_limit": "5000.01"})
        problem(opened_too_high, 422, "overdraft_limit_too_high")
        problem(await customer.transfer(account, payee, "60.00"), 422, "insufficient_funds")

        granted = teller.seen(await teller.http.put(path, json={"overdraft_limit": "100.00", "reason": "salary"},
                                                    params={"wait": "true"}))
        assert granted.status_code == 200, granted.text
        [event] = granted.json()["events"]
        assert (event["type"], event["data"]["overdraft_limit"], event["data"]["previous_limit"]) == (
            "OverdraftLimitSet", "100.00", "0.00")
        spent = await customer.transfer(account, payee, "60.00")
        assert spent.status_code == 200, spent.text
        view = await customer.account(account)
        assert (view["balance"], view["available_balance"], view["overdraft_limit"]) == ("-60.00", "40.00", "100.00")
        # Below what the account already uses, the limit cannot go.
        lowered = teller.seen(await teller.http.put(path, json={"overdraft_limit": "50.00"}, params={"wait": "true"}))
        problem(lowered, 422, "overdraft_in_use")

    run(api_url, scenario)


# ---------------------------------------------------------------- 5. maker-checker


def test_nobody_decides_the_case_of_a_movement_they_submitted(api_url: str, kafka_bootstrap: str) -> None:
    async def scenario() -> tuple[str, str]:
        admin, analyst = Bank(api_url, role="admin"), Bank(api_url, role="analyst")
        try:
            account = await admin.open(customer="maker-checker")
            held = await admin.deposit(account, "20000.00")
            assert held.status_code == 202 and held.json()["status"] == "held", held.text
            case_id = held.json()["command_id"]
            await _case_visible(admin, admin, case_id)
            for decision in ("approve", "reject"):
                body = problem(await _decide(admin, case_id, decision), 403, "own_movement")
                assert "maker-checker" in body["detail"]
            assert (await admin.account(account))["balance"] == "0.00"
            await _case_visible(analyst, admin, case_id)
            approved = await _decide(analyst, case_id)
            assert approved.status_code == 200, approved.text
            assert approved.json()["movement"]["status"] == "accepted"
            return account, case_id
        finally:
            await admin.close()
            await analyst.close()

    account, case_id = asyncio.run(scenario())
    audit = asyncio.run(settled_audit(kafka_bootstrap, expected_commands={case_id}))
    assert audit.violations == [] and audit.accounts[account].balance == 2_000_000


def test_large_cash_waits_for_a_second_staff_member(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank) -> None:
        account = await customer.open()
        held = await teller.deposit(account, "10000.01")
        assert held.status_code == 202 and held.json()["status"] == "held", held.text
        [event] = held.json()["events"]
        assert event["type"] == "FundsHeld"
        assert "dual-control-cash" in {hit["rule_id"] for hit in event["data"]["hits"]}
        case_id = held.json()["command_id"]
        view = await teller.account(account)
        assert (view["balance"], view["available_balance"]) == ("0.00", "0.00")   # a held deposit credits nothing
        # The teller who took the cash cannot approve it (reviewing is not a teller's), nor can the customer.
        problem(await _decide(teller, case_id), 403, "forbidden")
        problem(await _decide(customer, case_id), 403, "forbidden")
        analyst = Bank(str(teller.http.base_url), role="analyst")
        try:
            await _case_visible(analyst, teller, case_id)
            approved = await _decide(analyst, case_id)
            assert approved.status_code == 200 and approved.json()["movement"]["status"] == "accepted", approved.text
            customer.position = dict(analyst.position)
        finally:
            await analyst.close()
        assert (await customer.account(account))["balance"] == "10000.01"
        # At the threshold, cash posts at once.
        assert (await teller.deposit(account, "10000.00")).status_code == 200

    run(api_url, scenario)
