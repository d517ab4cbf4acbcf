"""Currency exchange on the session stack: admins set rates, anyone signed in gets a quote, kept by id."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from api import fx_store
from core.books import unbalanced
from core.fx import Quote, fx_legs
from core.topics import FX_RATES
from infra.kafka import read_topic
from schemas.codec import get_codec
from tests.support import Bank, bearer, login, problem, register_customer, staff

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture(scope="module")
def admin(api_url: str) -> dict[str, str]:
    return bearer(str(login(api_url, staff("admin"))["access_token"]))


@pytest.fixture(scope="module")
def customer(api_url: str) -> dict[str, str]:
    identity = asyncio.run(register_customer(api_url))
    return bearer(str(login(api_url, identity)["access_token"]))


@pytest.fixture(scope="module")
def rates(api_url: str, admin: dict[str, str]) -> dict[str, Any]:
    response = httpx.put(f"{api_url}/v1/admin/fx/rates", headers=admin, timeout=30, json={"rates": [
        {"base": "EUR", "quote": "NOK", "mid": "11.5230", "spread_basis_points": 40},
        {"base": "EUR", "quote": "CHF", "mid": "0.9410"},
        {"base": "EUR", "quote": "NOK", "mid": "99", "effective_from": "2999-01-01T00:00:00Z"},
    ]})
    assert response.status_code == 200, response.text
    return response.json()


def _quote(api_url: str, headers: dict[str, str], **body: str) -> httpx.Response:
    return httpx.post(f"{api_url}/v1/fx/quotes", headers=headers, json=body, timeout=30)


def test_admin_sets_rates_effective_now_and_later(rates: dict[str, Any], api_url: str,
                                                 admin: dict[str, str]) -> None:
    table = httpx.get(f"{api_url}/v1/admin/fx/rates", headers=admin, timeout=30).json()
    current = {(line["base"], line["quote"]): line for line in table["rates"]}
    assert current[("EUR", "NOK")]["mid"] == "11.5230" and current[("EUR", "NOK")]["spread_basis_points"] == 40
    assert current[("EUR", "CHF")]["spread_basis_points"] == table["default_spread_basis_points"]
    assert any(line["mid"] == "99" for line in table["scheduled"])   # not effective yet, not used below


def test_a_rate_change_is_one_record_on_the_rates_topic(rates: dict[str, Any], kafka_bootstrap: str) -> None:
    """The table is the log: the admin's change is one FxRatesSet on bank.fx.rates, all its entries, who set it."""
    codec = get_codec()
    changes = [codec.decode(r.value, r.headers, {"FxRatesSet"})
               for r in asyncio.run(read_topic(kafka_bootstrap, FX_RATES)).records]
    ours = [change for change in changes if any(e["mid_rate"] == "11.5230" for e in change.entries)]
    assert ours, changes
    change = ours[-1]
    assert change.set_by == staff("admin").user_id
    assert [(e["base"], e["quote"], e["mid_rate"], e["spread_basis_points"]) for e in change.entries] == [
        ("EUR", "NOK", "11.5230", 40), ("EUR", "CHF", "0.9410", 50), ("EUR", "NOK", "99", 50)]
    assert change.entries[2]["effective_from"] == datetime(2999, 1, 1, tzinfo=UTC)


def test_customer_gets_a_quote_consistent_with_the_rate(rates: dict[str, Any], api_url: str,
                                                         customer: dict[str, str], pg_dsn: str) -> None:
    response = _quote(api_url, customer, sell_currency="EUR", buy_currency="NOK", amount="100.00")
    assert response.status_code == 201, response.text
    quote = response.json()
    assert quote["mid_rate"] == "11.523" and quote["spread_basis_points"] == 40
    # 11.5230 less 40 bp = 11.4769080: 100 euros buy 1147.69080 kroner, paid as 1147.69 (rounded down).
    assert quote["rate"] == "11.476908" and quote["buy_amount"] == "1147.69" and quote["sell_amount"] == "100.00"
    assert Decimal(quote["inverse_rate"]) * Decimal(quote["rate"]) >= 1
    assert quote["rounding"]["currency"] == "NOK" and quote["rounding"]["rounding_amount"] == "0.00"
    assert quote["expires_at"] > quote["created_at"]
    # Kept by id exactly as given: what a transfer executing it will post (core.fx.fx_legs).
    kept = asyncio.run(_kept(pg_dsn, quote["quote_id"]))
    assert kept is not None
    assert (kept.sell_amount, kept.buy_amount, kept.rate) == (100_00, 1147_69, Decimal("11.476908"))
    assert kept.expires_at.isoformat().replace("+00:00", "Z") == quote["expires_at"].replace("+00:00", "Z")
    assert unbalanced(fx_legs(kept, "from-account", "to-account")) == {}


async def _kept(dsn: str, quote_id: str) -> Quote | None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        found = await fx_store.quote_by_id(pool, quote_id)
        assert await fx_store.quote_by_id(pool, "no-such-quote") is None
        return found[0] if found else None
    finally:
        await pool.close()


def test_buy_side_and_cross_rate(rates: dict[str, Any], api_url: str, customer: dict[str, str]) -> None:
    response = _quote(api_url, customer, sell_currency="CHF", buy_currency="NOK", amount="1000.00", side="buy")
    assert response.status_code == 201, response.text
    quote = response.json()
    # Crossed through EUR: 1 CHF is about 11.523 / 0.941 = 12.2455 NOK at the mid; a customer pays a bit more.
    assert quote["buy_amount"] == "1000.00"
    sell = Decimal(quote["sell_amount"])
    assert Decimal("1000") / Decimal("12.2455") < sell < Decimal("1000") / Decimal("12.2455") * Decimal("1.01")
    assert sell * Decimal(quote["rate"]) >= Decimal("1000.00")   # rounded up: the bank's favour


def test_no_rate(rates: dict[str, Any], api_url: str, customer: dict[str, str]) -> None:
    response = _quote(api_url, customer, sell_currency="DKK", buy_currency="SEK", amount="10.00")
    assert response.status_code == 422 and response.json()["reason"] == "no_rate", response.text


def test_a_customer_cannot_set_rates(api_url: str, customer: dict[str, str]) -> None:
    response = httpx.put(f"{api_url}/v1/admin/fx/rates", headers=customer, timeout=30,
                         json={"rates": [{"base": "EUR", "quote": "NOK", "mid": "1"}]})
    assert response.status_code == 403, response.text


def test_bad_rate_refused(api_url: str, admin: dict[str, str]) -> None:
    response = httpx.put(f"{api_url}/v1/admin/fx/rates", headers=admin, timeout=30,
                         json={"rates": [{"base": "EUR", "quote": "EUR", "mid": "1"}]})
    assert response.status_code == 422 and response.json()["reason"] == "same_currency", response.text


def test_a_transfer_between_currencies_executes_a_quote_once_and_the_books_balance(
        rates: dict[str, Any], api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, other: Bank) -> None:
        euros, crowns = await customer.open("EUR"), await customer.open("NOK")
        assert (await teller.fund(euros, "500.00")).status_code == 200
        same = await customer.post("/v1/transfers", {"from_account_id": euros, "to_account_id": crowns,
                                                     "amount": "10.00", "currency": "EUR"})
        problem(same, 422, "currency_mismatch")                     # two currencies need a quote
        quote = (await customer.http.post("/v1/fx/quotes", json={"sell_currency": "EUR", "buy_currency": "NOK",
                                                                 "amount": "100.00"})).json()
        body = {"from_account_id": euros, "to_account_id": crowns, "amount": "100.00", "currency": "EUR",
                "quote_id": quote["quote_id"]}
        problem(await customer.post("/v1/transfers", body | {"amount": "90.00"}), 422, "quote_mismatch")
        problem(await other.post("/v1/transfers", body | {"from_account_id": await other.open("EUR")}), 404,
                "unknown_quote")                                     # another customer's quote
        stale = (await customer.http.post("/v1/fx/quotes", json={"sell_currency": "EUR", "buy_currency": "NOK",
                                                                 "amount": "100.00"})).json()
        clock = (await teller.http.put("/v1/admin/clock", json={"advance": "PT61S"}))   # past its 60 s
        assert clock.status_code == 200, clock.text
        problem(await customer.post("/v1/transfers", body | {"quote_id": stale["quote_id"]}), 422, "quote_expired")
        quote = (await customer.http.post("/v1/fx/quotes", json={"sell_currency": "EUR", "buy_currency": "NOK",
                                                                 "amount": "100.00"})).json()
        body |= {"quote_id": quote["quote_id"]}
        done = await customer.post("/v1/transfers", body)
        assert done.status_code == 200 and done.json()["status"] == "accepted", done.text
        again = await customer.post("/v1/transfers", body)         # a retry, another Idempotency-Key: once
        assert again.json()["command_id"] == done.json()["command_id"]
        clock = await teller.http.put("/v1/admin/clock", json={"advance": "PT61S"})
        assert clock.status_code == 200, clock.text
        late = await customer.post("/v1/transfers", body)          # a retry after the quote's expiry: the answer
        assert late.status_code == 200 and late.json()["command_id"] == done.json()["command_id"], late.text
        assert (await customer.account(euros))["balance"] == "400.00"
        deadline = asyncio.get_running_loop().time() + 30
        while (await customer.account(crowns))["balance"] != quote["buy_amount"]:
            assert asyncio.get_running_loop().time() < deadline, "the crowns never arrived"
            await asyncio.sleep(0.1)

        # the books: fx-position took the euros and gave the crowns; every currency balances
        books = (await teller.http.get("/v1/admin/books/trial-balance")).json()
        assert all(currency["balanced"] for currency in books["currencies"]), books
        for currency, side in (("EUR", "credit"), ("NOK", "debit")):
            entries = (await teller.http.get("/v1/admin/books/accounts/fx-position/entries",
                                             params={"currency": currency, "limit": 500})).json()["items"]
            mine = [entry for entry in entries if entry["account_id"] in (euros, crowns)]
            assert mine and all(entry["side"] == side for entry in mine), mine

    asyncio.run(_with_customers(api_url, scenario))


async def _with_customers(api_url: str, scenario: Any) -> None:
    teller = Bank(api_url, role="admin")
    customer, other = await Bank.customer(api_url, "Fx Trader"), await Bank.customer(api_url, "Fx Other")
    try:
        await scenario(teller, customer, other)
    finally:
        for client in (teller, customer, other):
            await client.close()
