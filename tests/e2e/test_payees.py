"""Payees over HTTP against the running stack (issue 16, point 1): CRUD, confirmation of payee, transfers by payee.

A payee is an IBAN (of this bank or another) with a name; adding one of ours compares the name with the account
holder's (core/payees.py). Payees are per customer: another customer's is a 404 like an unknown one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support import Bank, problem, with_customers

pytestmark = pytest.mark.usefixtures("stack")

EXTERNAL = "DE89 3704 0044 0532 0130 00"   # Commerzbank's documented example: a valid IBAN of another bank
HOLDER = "Bérénice Holder-Payee"           # the destination customer's name on file



def run(api_url: str, scenario: Callable[[Bank, Bank, Bank], Awaitable[Any]]) -> Any:
    """The scenario with a teller, a payer (Ann) and a payee-to-be (Bérénice, whose name is HOLDER)."""
    return with_customers(api_url, scenario, "Ann Payer", HOLDER)


async def opened(client: Bank) -> dict[str, Any]:
    return await client.account(await client.open())


async def added(client: Bank, iban: str, name: str, nickname: str | None = None) -> dict[str, Any]:
    body = {"iban": iban, "name": name} | ({"nickname": nickname} if nickname else {})
    response = await client.http.post("/v1/payees", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_customer_adds_lists_renames_and_removes_a_payee(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, holder: Bank) -> None:
        payee = await added(ann, EXTERNAL, "Acme Trading Ltd", "supplier")
        assert (payee["iban"], payee["iban_formatted"]) == ("DE89370400440532013000", EXTERNAL)
        assert (payee["customer_id"], payee["internal"], payee["nickname"]) == (ann.customer_id, False, "supplier")
        listing = (await ann.http.get("/v1/payees")).json()
        assert listing["customer_id"] == ann.customer_id and [p["payee_id"] for p in listing["payees"]] == [
            payee["payee_id"]]
        # staff read a customer's payees by customer id; they must say whose
        staff_listing = await teller.http.get("/v1/payees", params={"customer_id": ann.customer_id})
        assert [p["name"] for p in staff_listing.json()["payees"]] == ["Acme Trading Ltd"]
        problem(await teller.http.get("/v1/payees"), 422, "missing")
        # the same IBAN twice is one payee
        problem(await ann.http.post("/v1/payees", json={"iban": EXTERNAL, "name": "Acme"}), 409, "payee_exists")
        renamed = await ann.http.put(f"/v1/payees/{payee['payee_id']}", json={"name": "Acme Trading GmbH"})
        assert renamed.status_code == 200, renamed.text
        assert (renamed.json()["name"], renamed.json()["nickname"]) == ("Acme Trading GmbH", None)
        assert renamed.json()["added_at"] == payee["added_at"]   # a rename does not restart a cooling-off
        got = await ann.http.get(f"/v1/payees/{payee['payee_id']}")
        assert got.status_code == 200 and got.json()["name"] == "Acme Trading GmbH"
        removed = await ann.http.delete(f"/v1/payees/{payee['payee_id']}")
        assert removed.status_code == 204, removed.text
        problem(await ann.http.get(f"/v1/payees/{payee['payee_id']}"), 404, "unknown_payee")
        assert (await ann.http.get("/v1/payees")).json()["payees"] == []
        assert await audited(api_url, ann, payee["payee_id"]) == ["payee_added", "payee_changed", "payee_removed"]

    run(api_url, scenario)


async def audited(api_url: str, customer: Bank, payee_id: str) -> list[str]:
    """The actions on the audit trail about the payee, oldest first, once all three are there (the projection
    folds bank.audit asynchronously)."""
    analyst = Bank(api_url, role="analyst")
    try:
        actions: list[str] = []
        for _ in range(150):
            page = await analyst.get("/v1/admin/audit", user_id=customer.identity.user_id, limit=50)
            assert page.status_code == 200, page.text
            items = [item for item in page.json()["items"] if item.get("details", {}).get("payee_id") == payee_id]
            actions = [item["action"] for item in reversed(items)]
            if len(actions) >= 3:
                break
            await asyncio.sleep(0.2)
        return actions
    finally:
        await analyst.close()


def test_another_customers_payee_looks_exactly_like_an_unknown_one(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, holder: Bank) -> None:
        theirs = await added(holder, EXTERNAL, "Acme Trading Ltd")
        for payee_id in (theirs["payee_id"], str(uuid.uuid4()), "not-a-uuid"):
            for response in (await ann.http.get(f"/v1/payees/{payee_id}"),
                             await ann.http.put(f"/v1/payees/{payee_id}", json={"name": "Mine Now"}),
                             await ann.http.delete(f"/v1/payees/{payee_id}")):
                body = problem(response, 404, "unknown_payee")
                assert body["detail"] == f"no payee {payee_id}"
        problem(await ann.http.get("/v1/payees", params={"customer_id": holder.customer_id}), 404,
                "unknown_customer")
        # and it is still there, unchanged
        assert (await holder.http.get(f"/v1/payees/{theirs['payee_id']}")).json()["name"] == "Acme Trading Ltd"

    run(api_url, scenario)


def test_confirmation_of_payee_for_an_account_of_the_bank(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, holder: Bank) -> None:
        account = await opened(holder)
        exact = await added(ann, account["iban"], "berenice holder payee")   # case, accents, hyphen: the same
        assert (exact["confirmation"], exact["internal"], exact["name_on_file"]) == ("match", True, None)
        path = f"/v1/payees/{exact['payee_id']}"
        close = (await ann.http.put(path, json={"name": "Berenice Holder-Paye"})).json()
        assert (close["confirmation"], close["name_on_file"]) == ("close_match", HOLDER)
        wrong = (await ann.http.put(path, json={"name": "Carol Stranger"})).json()
        assert wrong["confirmation"] == "no_match" and wrong["name_on_file"] is None
        assert "Holder" not in str(wrong)   # the name on file is not revealed
        # the outcome is stored with the payee
        assert (await ann.http.get(path)).json()["confirmation"] == "no_match"

    run(api_url, scenario)


def test_another_banks_iban_is_not_applicable_and_an_invalid_one_is_refused(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, holder: Bank) -> None:
        external = await added(ann, EXTERNAL, "Anyone At All")
        assert (external["confirmation"], external["internal"]) == ("not_applicable", False)
        mine = await opened(ann)
        wrong_check = mine["iban"][:2] + ("00" if mine["iban"][2:4] != "00" else "01") + mine["iban"][4:]
        for text in (wrong_check, "XX00123", "DE89 3704 0044 0532 0130 01"):
            body = problem(await ann.http.post("/v1/payees", json={"iban": text, "name": "Someone"}), 422,
                           "invalid_iban")
            assert text in body["detail"]
        assert [p["payee_id"] for p in (await ann.http.get("/v1/payees")).json()["payees"]] == [external["payee_id"]]

    run(api_url, scenario)


def test_a_transfer_to_a_payee_is_held_in_its_cooling_off_then_approved(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, holder: Bank) -> None:
        source, destination = await opened(ann), await opened(holder)
        assert (await teller.fund(source["account_id"], "100.00")).status_code == 200
        payee = await added(ann, destination["iban"], HOLDER)
        money = {"from_account_id": source["account_id"], "amount": "25.00", "currency": "EUR"}
        sent = await ann.post("/v1/transfers", money | {"payee_id": payee["payee_id"]})
        # a payee added a moment ago is in its cooling-off period (rule payee-cooling-off): held for review
        assert sent.status_code == 202 and sent.json()["status"] == "held", sent.text
        approved = await ann.approved(sent.json()["command_id"], "analyst", "customer confirmed the new payee")
        assert approved.status_code == 200 and approved.json()["decision"] == "approve", approved.text
        holder.position = ann.position | teller.position
        for _ in range(300):   # approved, the transfer runs its saga: the credit follows the approval
            if (await holder.account(destination["account_id"]))["balance"] == "25.00":
                break
            await asyncio.sleep(0.1)
        assert (await holder.account(destination["account_id"]))["balance"] == "25.00"
        # exactly one destination; another bank's payee is refused like its IBAN; another customer's is unknown
        problem(await ann.post("/v1/transfers", money | {"payee_id": payee["payee_id"],
                                                         "to_account_id": destination["account_id"]}),
                422, "one_destination")
        external = await added(ann, EXTERNAL, "Acme Trading Ltd")
        problem(await ann.post("/v1/transfers", money | {"payee_id": external["payee_id"]}), 422, "external_iban")
        theirs = await added(holder, EXTERNAL, "Acme Trading Ltd")
        problem(await ann.post("/v1/transfers", money | {"payee_id": theirs["payee_id"]}), 404, "unknown_payee")
        ann.position |= teller.position
        assert (await ann.account(source["account_id"]))["balance"] == "75.00"

    run(api_url, scenario)
