"""The bank's books over HTTP against the running stack (issue 14: 1 and 3; issue 20: 6): teller cash moves the
drawer's cash account, a transfer passes through transit, the trial balance is zero per currency now and as of
a past point, bad input is a problem document, and the books are the staff's.

The session's stack is shared by every test module, so figures are compared before and after, never absolute.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.support import Bank, problem, seed_customers, staff

pytestmark = pytest.mark.usefixtures("stack")

BOOKS = "/v1/admin/books"


def run(api_url: str, scenario: Callable[[Bank], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        teller = Bank(api_url)
        try:
            return await scenario(teller)
        finally:
            await teller.close()

    return asyncio.run(main())


async def trial_balance(bank: Bank, **params: str) -> dict[str, Any]:
    response = await bank.http.get(f"{BOOKS}/trial-balance", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def line(report: dict[str, Any], currency: str, ledger_account_id: str) -> dict[str, Any] | None:
    [books] = [of for of in report["currencies"] if of["currency"] == currency]
    return next((row for row in books["accounts"] if row["ledger_account_id"] == ledger_account_id), None)


def balance(report: dict[str, Any], currency: str, ledger_account_id: str) -> Decimal:
    """Debits minus credits; zero for an account without entries."""
    row = line(report, currency, ledger_account_id)
    return Decimal(row["balance"]) if row else Decimal(0)


async def entries(bank: Bank, ledger_account_id: str, **params: str) -> list[dict[str, Any]]:
    """Every page, following next_cursor."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await bank.http.get(f"{BOOKS}/accounts/{ledger_account_id}/entries",
                                       params=params | {"limit": "200"} | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 200
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found



def test_teller_cash_in_and_out_moves_the_tellers_drawer(api_url: str) -> None:
    """A teller's cash lands on their own drawer, `cash:<their user id>`; a deposit held for a second pair of eyes
    too, not on the approving analyst's."""
    async def scenario(teller: Bank) -> None:
        drawer, approver = f"cash:{teller.identity.user_id}", f"cash:{staff('analyst').user_id}"
        account = await teller.open(customer=f"books-{uuid.uuid4().hex[:8]}")
        before = await trial_balance(teller, currency="EUR")
        assert (await teller.deposit(account, "100.00")).status_code == 200
        withdrawn = await teller.withdraw(account, "30.00")
        assert withdrawn.status_code == 200, withdrawn.text
        held = await teller.fund(account, "15000.00")     # above the dual-control threshold: an analyst approves
        assert held.status_code == 200, held.text
        after = await trial_balance(teller, currency="EUR")
        assert balance(after, "EUR", drawer) - balance(before, "EUR", drawer) == Decimal("15070.00")
        assert balance(after, "EUR", approver) == balance(before, "EUR", approver)
        assert line(after, "EUR", f"customer:{account}")["balance"] == "-15070.00"   # owed to the customer
        on_drawer = [x for x in await entries(teller, drawer, currency="EUR") if x["account_id"] == account]
        assert [(x["event_type"], x["side"], x["amount"]) for x in on_drawer] == [
            ("FundsDeposited", "debit", "100.00"), ("FundsWithdrawn", "credit", "30.00"),
            ("FundsDeposited", "debit", "15000.00")]
        assert withdrawn.json()["command_id"] == on_drawer[1]["command_id"]

    run(api_url, scenario)


def test_a_transfer_passes_through_transit(api_url: str) -> None:
    async def scenario(teller: Bank) -> None:
        customer = f"books-{uuid.uuid4().hex[:8]}"
        source, destination = await teller.open(customer=customer), await teller.open(customer=customer)
        assert (await teller.deposit(source, "80.00")).status_code == 200
        moved = await teller.transfer(source, destination, "25.00")
        assert moved.status_code == 200, moved.text
        legs = [(x["event_type"], x["side"], x["amount"], x["account_id"])
                for x in await entries(teller, "transit", currency="EUR") if x["account_id"] in (source, destination)]
        assert legs == [("TransferDebited", "credit", "25.00", source),
                        ("TransferCredited", "debit", "25.00", destination)]
        source_entries = await entries(teller, f"customer:{source}")
        assert [(x["side"], x["amount"], x["balance_after"]) for x in source_entries] == [
            ("credit", "80.00", "-80.00"), ("debit", "25.00", "-55.00")]
        report = await trial_balance(teller, currency="EUR")
        assert line(report, "EUR", f"customer:{destination}")["normal_balance"] == "25.00"

    run(api_url, scenario)


def test_the_trial_balance_is_zero_in_every_currency(api_url: str) -> None:
    async def scenario(teller: Bank) -> None:
        customer = f"books-{uuid.uuid4().hex[:8]}"
        for currency, amount in (("EUR", "12.34"), ("USD", "56.78"), ("JPY", "900")):
            account = await teller.open(currency, customer=customer)
            assert (await teller.deposit(account, amount, currency)).status_code == 200
        report = await trial_balance(teller)
        currencies = {books["currency"]: books for books in report["currencies"]}
        assert {"EUR", "USD", "JPY"} <= set(currencies)
        for books in currencies.values():
            assert books["balanced"] and Decimal(books["total"]) == 0, books["currency"]
            assert books["total_debits"] == books["total_credits"]
            assert sum(Decimal(row["balance"]) for row in books["accounts"]) == 0
            assert books["constraints_broken"] == [], books["constraints_broken"]
            assert {"cash:vault", "transit", "suspense", "clearing", "capital"} <= {
                row["ledger_account_id"] for row in books["accounts"]}
        assert currencies["JPY"]["total"] == "0" and currencies["EUR"]["total"] == "0.00"
        only = await trial_balance(teller, currency="USD")
        assert [books["currency"] for books in only["currencies"]] == ["USD"] and only["events"] > 0

    run(api_url, scenario)


def test_as_of_before_a_deposit_leaves_it_out(api_url: str) -> None:
    async def scenario(teller: Bank) -> None:
        customer = f"books-{uuid.uuid4().hex[:8]}"
        await seed_customers(customer)
        opened = await teller.post("/v1/accounts", {"customer_id": customer, "currency": "EUR"})
        assert opened.status_code == 201, opened.text
        account, position = opened.json()["account_id"], opened.json()["position"]
        moment = datetime.now(UTC).isoformat()
        assert (await teller.deposit(account, "40.00")).status_code == 200
        customer = f"customer:{account}"
        assert line(await trial_balance(teller, currency="EUR"), "EUR", customer)["credits"] == "40.00"
        for before in (moment, position):
            report = await trial_balance(teller, currency="EUR", as_of=before)
            assert line(report, "EUR", customer) is None, before     # no entry yet: not in the trial balance
            assert report["currencies"][0]["balanced"]
        assert await entries(teller, customer, as_of=moment) == []
        assert [x["amount"] for x in await entries(teller, customer)] == ["40.00"]

    run(api_url, scenario)


def test_bad_input_is_a_problem_document(api_url: str) -> None:
    async def scenario(teller: Bank) -> None:
        get = teller.http.get
        problem(await get(f"{BOOKS}/trial-balance", params={"currency": "XXX"}), 422, "unknown_currency")
        problem(await get(f"{BOOKS}/trial-balance", params={"currency": "eur"}), 422, "string_pattern_mismatch")
        problem(await get(f"{BOOKS}/trial-balance", params={"as_of": "last tuesday"}), 422, "invalid_as_of")
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        problem(await get(f"{BOOKS}/trial-balance", params={"as_of": future}), 422, "as_of_in_future")
        problem(await get(f"{BOOKS}/trial-balance", params={"as_of": "0:999999999"}), 422, "position_beyond_log")
        for unknown in ("nothing", "cash", f"customer:{uuid.uuid4().hex}"):
            problem(await get(f"{BOOKS}/accounts/{unknown}/entries"), 404, "unknown_ledger_account")
        problem(await get(f"{BOOKS}/accounts/transit/entries", params={"cursor": "not-ours"}), 400, "invalid_cursor")
        problem(await get(f"{BOOKS}/accounts/transit/entries", params={"limit": "0"}), 422, "greater_than_equal")

    run(api_url, scenario)


def test_a_customer_may_not_read_the_books(api_url: str) -> None:
    async def scenario(teller: Bank) -> None:
        customer = await Bank.customer(api_url)
        try:
            account = await customer.open()
            for path in (f"{BOOKS}/trial-balance", f"{BOOKS}/accounts/customer:{account}/entries",
                         f"{BOOKS}/accounts/transit/entries"):
                problem(await customer.http.get(path), 403, "forbidden")
            assert (await teller.http.get(f"{BOOKS}/accounts/customer:{account}/entries")).status_code == 200
        finally:
            await customer.close()

    run(api_url, scenario)


def test_bank_books_trial_balance_answers_like_the_api(api_url: str) -> None:
    async def scenario(teller: Bank) -> tuple[str, dict[str, Any]]:
        account = await teller.open(customer=f"books-{uuid.uuid4().hex[:8]}")
        deposited = await teller.deposit(account, "7.00")
        assert deposited.status_code == 200, deposited.text
        position = deposited.json()["position"]
        return position, await trial_balance(teller, currency="EUR", as_of=position)

    position, over_http = run(api_url, scenario)
    runner = CliRunner()
    result = runner.invoke(app, ["books", "trial-balance", "--currency", "EUR", "--as-of", position, "--json"],
                           env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.stdout)
    [books] = from_cli["currencies"]
    assert books["balanced"] and books["total"] == "0.00"

    def rows(lines: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(row["ledger_account_id"], row["debits"], row["credits"]) for row in lines]

    assert rows(books["accounts"]) == rows(over_http["currencies"][0]["accounts"])
    readable = runner.invoke(app, ["books", "trial-balance", "--currency", "EUR"], env={"COLUMNS": "250"})
    assert readable.exit_code == 0 and "trial balance, EUR" in readable.stdout and "balanced" in readable.stdout
    assert runner.invoke(app, ["books", "trial-balance", "--as-of", "never"]).exit_code == 2
