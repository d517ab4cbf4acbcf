"""Cash at the counter over HTTP (issue 14 point 4): a teller opens their drawer with a float from the vault, takes
cash in and pays it out, counts, and closes short: the shortage goes to suspense, the drawer ends at zero and the
books balance. Cash without an open drawer is refused.

On an API of its own with BANK_DRAWER_REQUIRED on, as in production (the session's API has it off so that the
other modules' tellers need no drawer); both share the session's ledger, so books are compared before and after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.support import Bank, create_staff, problem

pytestmark = pytest.mark.usefixtures("stack")

DRAWERS = "/v1/teller/drawers"


@pytest.fixture(scope="module")
def drawer_api(extra_api: Callable[[dict[str, str]], str]) -> str:
    return extra_api({"BANK_DRAWER_REQUIRED": "true"})


def balance(report: dict[str, Any], currency: str, ledger_account_id: str) -> Decimal:
    [books] = [of for of in report["currencies"] if of["currency"] == currency]
    row = next((row for row in books["accounts"] if row["ledger_account_id"] == ledger_account_id), None)
    return Decimal(row["balance"]) if row else Decimal(0)


async def trial_balance(client: Bank) -> dict[str, Any]:
    response = await client.http.get("/v1/admin/books/trial-balance", params={"currency": "EUR"})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def entries(client: Bank, ledger_account_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"currency": "EUR", "limit": 500}
    while True:
        response = await client.http.get(f"/v1/admin/books/accounts/{ledger_account_id}/entries", params=params)
        assert response.status_code == 200, response.text
        found += response.json()["items"]
        if not response.json()["next_cursor"]:
            return found
        params["cursor"] = response.json()["next_cursor"]


def test_a_teller_opens_takes_and_pays_cash_counts_and_closes_short_into_suspense(drawer_api: str,
                                                                                   pg_dsn: str) -> None:
    teller_identity = asyncio.run(create_staff(pg_dsn, tag="-drawer", roles=("teller",)))["teller"]

    async def scenario() -> None:
        teller = Bank(drawer_api, identity=teller_identity)
        other_teller, admin = Bank(drawer_api), Bank(drawer_api, role="admin")
        customer = await Bank.customer(drawer_api, "Cash Customer")
        try:
            me = teller_identity.user_id
            account = await customer.open()
            problem(await teller.deposit(account, "10.00"), 409, "drawer_not_open")
            assert (await teller.http.get(f"{DRAWERS}/me")).json()["status"] == "never_opened"
            before = await trial_balance(admin)

            opened = await teller.http.post(f"{DRAWERS}/me/open", json={"currency": "EUR", "float_amount": "500.00"})
            assert opened.status_code == 200, opened.text
            assert (opened.json()["status"], opened.json()["book_balance"]) == ("open", "500.00")
            problem(await teller.http.post(f"{DRAWERS}/me/open", json={"currency": "EUR"}), 409, "drawer_open")

            assert (await teller.deposit(account, "200.00")).json()["status"] == "accepted"
            assert (await teller.withdraw(account, "50.00")).json()["status"] == "accepted"
            problem(await teller.deposit(account, "5.00", currency="USD"), 409, "drawer_currency")
            drawer = (await teller.http.get(f"{DRAWERS}/{me}")).json()
            assert drawer["book_balance"] == "650.00"

            counted = await teller.http.post(f"{DRAWERS}/me/count", json={"counted": "650.00"})
            assert counted.json()["last_count"]["difference"] == "0.00"
            closed = await teller.http.post(f"{DRAWERS}/me/close", json={"counted": "640.00"})
            assert closed.status_code == 200, closed.text
            closing = closed.json()
            assert (closing["status"], closing["book_balance"]) == ("closed", "0.00")
            assert (closing["last_count"]["book_balance"], closing["last_count"]["difference"]) == ("650.00", "-10.00")
            problem(await teller.deposit(account, "1.00"), 409, "drawer_not_open")

            after = await trial_balance(admin)
            [books] = after["currencies"]
            assert books["total"] == "0.00" and books["balanced"]
            assert balance(after, "EUR", f"cash:{me}") == 0
            assert balance(after, "EUR", "suspense") - balance(before, "EUR", "suspense") == Decimal("10.00")
            assert balance(after, "EUR", "cash:vault") - balance(before, "EUR", "cash:vault") == Decimal("140.00")
            shortages = [entry for entry in await entries(admin, "suspense") if entry["event_type"] == "DrawerClosed"
                         and entry["account_id"] == f"drawer:{me}"]
            assert [(s["side"], s["amount"]) for s in shortages] == [("debit", "10.00")]
            assert (await customer.account(account))["balance"] == "150.00"

            # a teller works their own drawer; an admin (a supervisor) any; customers none
            problem(await other_teller.http.get(f"{DRAWERS}/{me}"), 403, "not_your_drawer")
            assert (await admin.http.get(f"{DRAWERS}/{me}")).json()["status"] == "closed"
            problem(await customer.http.get(f"{DRAWERS}/me"), 403, "forbidden")
        finally:
            for client in (teller, other_teller, admin, customer):
                await client.close()

    asyncio.run(scenario())
