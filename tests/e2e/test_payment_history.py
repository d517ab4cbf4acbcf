"""The payment history over HTTP against the running stack (issue 16 point 6): a payment to another bank and a
standing-order payment in one list, newest first, with confirmation numbers, filters, cursor pages, CSV; another
customer's history is a 404 and staff read any customer's."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.test_payments import creditor_iban, final_payment, funded, pay, run
from tests.support import Bank

pytestmark = pytest.mark.usefixtures("stack")
CONFIRMATION = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$")


async def _history(client: Bank, **params: Any) -> dict[str, Any]:
    response = await client.http.get("/v1/payments", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _paid_standing_order(customer: Bank, source: str, target: str) -> dict[str, Any]:
    """A one-off order due today (business time, local midnight: due at once); the scheduler pays it."""
    listed = await _standing_orders(customer)
    response = await customer.http.post("/v1/standing-orders", json={
        "from_account_id": source, "to_account_id": target, "amount": "10.00", "currency": "EUR",
        "reference": "pocket money", "frequency": "once", "start_date": listed["today"]})
    assert response.status_code == 201, response.text
    order_id = response.json()["order_id"]
    for _ in range(300):
        order = (await customer.http.get(f"/v1/standing-orders/{order_id}")).json()
        if [o["status"] for o in order["occurrences"]] == ["paid"]:
            return dict(order)
        await asyncio.sleep(0.1)
    raise AssertionError(f"standing order {order_id} never paid: {order['occurrences']}")


async def _standing_orders(customer: Bank) -> dict[str, Any]:
    response = await customer.http.get("/v1/standing-orders")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_payments_and_standing_order_payments_in_one_history(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        source = await funded(teller, ann, "200.00")
        savings = await ann.open()
        order = await _paid_standing_order(ann, source, savings)
        payment_id = await pay(ann, source, "25.00", creditor_iban())
        assert (await final_payment(ann, payment_id))["status"] == "settled"

        history = await _history(ann)
        # newest first: by business time a standing-order payment is dated by its due moment, which a moved clock
        # may put after the external payment's
        assert sorted(i["type"] for i in history["items"]) == ["external", "standing_order"]
        by_type = {i["type"]: i for i in history["items"]}
        external, scheduled = by_type["external"], by_type["standing_order"]
        assert (external["payment_id"], external["status"], external["amount"]) == (payment_id, "settled", "25.00")
        assert external["creditor_name"] == "Erika Mustermann" and external["reference"] == "invoice 42"
        assert (scheduled["status"], scheduled["amount"], scheduled["to_account_id"]) == ("paid", "10.00", savings)
        assert scheduled["standing_order_id"] == order["order_id"]
        assert scheduled["payment_id"] == order["occurrences"][0]["occurrence_id"]
        assert all(CONFIRMATION.match(i["confirmation"]) for i in history["items"])
        assert len({i["confirmation"] for i in history["items"]}) == 2
        moments = [datetime.fromisoformat(i["created_at"]) for i in history["items"]]
        assert moments == sorted(moments, reverse=True)
        assert (await _history(ann))["items"] == history["items"]          # the same payment, the same number

        # filters
        assert [i["payment_id"] for i in (await _history(ann, type="external"))["items"]] == [payment_id]
        assert [i["status"] for i in (await _history(ann, status="paid"))["items"]] == ["paid"]
        assert (await _history(ann, account_id=savings))["items"] == []       # nothing was paid from savings
        later = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
        assert (await _history(ann, **{"from": later}))["items"] == []
        unknown = await ann.http.get("/v1/payments", params={"account_id": await _account_of(teller, bob)})
        assert unknown.status_code == 404 and unknown.json()["reason"] == "unknown_account"

        # cursor pages: every item once, newest first
        first = await _history(ann, limit=1)
        assert len(first["items"]) == 1 and first["next_cursor"]
        second = await _history(ann, limit=1, cursor=first["next_cursor"])
        assert second["next_cursor"] is None
        assert first["items"] + second["items"] == history["items"]
        bad = await ann.http.get("/v1/payments", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 422 and bad.json()["reason"] == "invalid_cursor"

        # CSV: the same rows
        exported = await ann.http.get("/v1/payments.csv")
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [r["confirmation"] for r in rows] == [i["confirmation"] for i in history["items"]]

        # whose: another customer's is a 404 and their own is empty; staff name the customer
        foreign = await bob.http.get("/v1/payments", params={"customer_id": ann.identity.customer_id})
        assert foreign.status_code == 404 and foreign.json()["reason"] == "unknown_customer"
        assert (await _history(bob))["items"] == []
        staff = await _history(teller, customer_id=ann.identity.customer_id)
        assert staff["items"] == history["items"]

    run(api_url, scenario)


async def _account_of(teller: Bank, customer: Bank) -> str:
    return await teller.open("EUR", customer=customer.identity.customer_id)
