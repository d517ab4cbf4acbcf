"""Bill payments over HTTP against the running stack (issue 16 point 2): staff keep the billers directory; a bill
payment with a reference that does not fit the biller's format or check digit is refused before money moves; a
good one settles through the payment rail and has a receipt with its confirmation number."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from core.payment_history import confirmation_number
from tests.e2e.test_payments import creditor_iban, final_payment, funded, run
from tests.support import Bank

pytestmark = pytest.mark.usefixtures("stack")
GOOD_REFERENCE = "7992 7398 713"        # Luhn-valid (the classic example), typed in groups
BAD_CHECK_DIGIT = "79927398710"


async def _biller(admin: Bank, **fields: Any) -> Any:
    body = {"name": f"Stadtwerke {uuid.uuid4().hex[:8]}", "category": "utilities", "iban": creditor_iban(),
            "reference_pattern": r"^\d{8,12}$", "check_digit": "luhn"} | fields
    return await admin.http.post("/v1/admin/billers", json=body)


def test_a_bill_is_paid_with_a_checked_reference_and_has_a_receipt(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        admin = Bank(api_url, role="admin")
        try:
            created = await _biller(admin)
            assert created.status_code == 201, created.text
            biller = created.json()
            refused = {
                "invalid_pattern": await _biller(admin, reference_pattern="(unclosed"),
                "biller_exists": await _biller(admin, name=biller["name"]),
            }
            assert {reason: (r.status_code, r.json()["reason"]) for reason, r in refused.items()} == {
                "invalid_pattern": (422, "invalid_pattern"), "biller_exists": (409, "biller_exists")}
            listed = (await ann.http.get("/v1/billers")).json()["billers"]
            assert biller["biller_id"] in [b["biller_id"] for b in listed]

            account = await funded(teller, ann, "100.00")

            async def pay(reference: str, amount: str = "42.50") -> Any:
                return await ann.post("/v1/bill-payments", {"from_account_id": account, "amount": amount,
                                                            "currency": "EUR", "biller_id": biller["biller_id"],
                                                            "reference": reference})

            for reference in (BAD_CHECK_DIGIT, "ABC12345", "123"):
                response = await pay(reference)
                assert response.status_code == 422, response.text
                assert response.json()["reason"] == "invalid_reference"
            assert (await ann.account(account))["balance"] == "100.00"     # nothing moved

            paid = await pay(GOOD_REFERENCE)
            assert paid.status_code == 200 and paid.json()["status"] == "accepted", paid.text
            payment_id = paid.json()["command_id"]
            payment = await final_payment(ann, payment_id)
            assert (payment["status"], payment["creditor_name"], payment["remittance_information"]) == (
                "settled", biller["name"], "79927398713")
            assert payment["creditor_iban"] == biller["iban"]

            receipt = await ann.http.get(f"/v1/payments/{payment_id}/receipt")
            assert receipt.status_code == 200 and receipt.headers["content-type"].startswith("text/html")
            for shown in (confirmation_number(payment_id), "79927398713", biller["name"], "42.50 EUR", "settled"):
                assert shown in receipt.text, shown
            history = (await ann.http.get("/v1/payments", params={"type": "external"})).json()["items"]
            assert [(i["payment_id"], i["confirmation"]) for i in history] == [
                (payment_id, confirmation_number(payment_id))]
            foreign = await bob.http.get(f"/v1/payments/{payment_id}/receipt")
            assert foreign.status_code == 404 and foreign.json()["reason"] == "unknown_payment"

            retired = await admin.http.put(f"/v1/admin/billers/{biller['biller_id']}", json={"active": False})
            assert retired.status_code == 200 and retired.json()["active"] is False
            listed = (await ann.http.get("/v1/billers")).json()["billers"]
            assert biller["biller_id"] not in [b["biller_id"] for b in listed]
            gone = await pay(GOOD_REFERENCE, "1.00")
            assert gone.status_code == 404 and gone.json()["reason"] == "unknown_biller"
        finally:
            await admin.close()

    run(api_url, scenario)
