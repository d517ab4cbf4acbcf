"""Payees (with confirmation of payee), currency-exchange quotes and exchanges between a customer's own accounts,
in a browser."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from playwright.sync_api import expect

from tests.support import Bank
from tests.support.browser import account_as_staff, check_page, funded_customer, run, sign_in


async def _set_rates(api_url: str) -> None:
    admin = Bank(api_url, role="admin")
    try:
        response = await admin.http.put("/v1/admin/fx/rates", json={"rates": [
            {"base": "EUR", "quote": "USD", "mid": "1.0850", "spread_basis_points": 50}]})
        assert response.status_code in (200, 201), response.text
    finally:
        await admin.close()


def test_add_a_payee_see_the_name_check_and_pay_them(page: Any, web_url: str, api_url: str) -> None:
    payer = funded_customer(api_url, "80.00", name="Alan Payer")
    payee = funded_customer(api_url, "0", name="Joan Clarke")
    iban = account_as_staff(api_url, payee.accounts[0])["iban"]
    sign_in(page, web_url, payer.identity)
    page.goto(f"{web_url}/app/payees")
    page.get_by_label("Account holder's name").fill("Joan Clarke")
    page.get_by_label("IBAN").fill("DE00 1234")
    page.get_by_role("button", name="Add payee").click()
    expect(page.locator("#iban-error")).to_be_visible()
    check_page(page, "payees-errors")
    page.get_by_label("IBAN").fill(iban)
    page.get_by_label("Nickname (optional)").fill("codebreaker")
    page.get_by_role("button", name="Add payee").click()
    expect(page.get_by_text("Joan Clarke is added. The name matches")).to_be_visible()
    expect(page.get_by_text("Name checked")).to_be_visible()
    check_page(page, "payees")
    page.get_by_role("link", name="Pay", exact=True).click()
    page.get_by_label("Amount").fill("30.00")
    page.get_by_role("button", name="Review transfer").click()
    assert "Joan Clarke" in page.locator("dl.summary").inner_text()
    page.get_by_role("button", name="Confirm and send €30.00").click()
    # A payee added minutes ago is within the fraud rules' cooling-off period (rule new-payee): held for review,
    # told in words a customer understands, the amount reserved meanwhile.
    expect(page.get_by_role("heading", name="We are checking this transfer")).to_be_visible()
    expect(page.get_by_text("The amount is reserved in your account meanwhile")).to_be_visible()
    page.goto(f"{web_url}/app/payees")
    page.get_by_role("link", name="Joan Clarke").click()
    page.get_by_label("Account holder's name").fill("Jon Clarke")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("The name is close to the account holder's")).to_be_visible()
    check_page(page, "payee")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove payee").click()
    page.wait_for_url(f"{web_url}/app/payees")
    expect(page.get_by_text("No payees yet")).to_be_visible()


def test_currency_exchange_quote(page: Any, web_url: str, api_url: str) -> None:
    run(_set_rates(api_url))
    customer = funded_customer(api_url, name="Olga Exchange")
    sign_in(page, web_url, customer.identity)
    page.goto(f"{web_url}/app/fx")
    page.get_by_label("Amount", exact=True).fill("100.00")
    page.get_by_role("button", name="Get a quote").click()
    summary = page.locator("dl.summary").inner_text()
    assert "€100.00" in summary and "$" in summary and "1 EUR = 1.07" in summary   # mid 1.0850 less the spread
    check_page(page, "fx-quote")
    page.get_by_label("Amount", exact=True).fill("lots")
    page.get_by_role("button", name="Get a quote").click()
    expect(page.locator("#amount-error")).to_be_visible()


async def _open_for(api_url: str, customer_id: str, currency: str) -> str:
    teller = Bank(api_url)
    try:
        account = await teller.open(currency, customer=customer_id)
        await teller.account(account)   # the web reads the read models: wait until it shows
        return account
    finally:
        await teller.close()


async def _move_business_time(api_url: str, advance: str) -> None:
    admin = Bank(api_url, role="admin")
    try:
        response = await admin.http.put("/v1/admin/clock", json={"advance": advance})
        assert response.status_code == 200, response.text
    finally:
        await admin.close()


async def _balance(api_url: str, identity: Any, account: str, wanted: str) -> None:
    customer = Bank(api_url, identity=identity)
    try:
        for _ in range(300):
            if (await customer.account(account))["balance"] == wanted:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{account} never reached {wanted}")
    finally:
        await customer.close()


def test_exchange_between_own_accounts_at_the_quoted_rate_and_an_expired_quote_refused(
        page: Any, web_url: str, api_url: str) -> None:
    run(_set_rates(api_url))
    customer = funded_customer(api_url, "250.00", name="Chien-Shiung Wu")
    euros = customer.accounts[0]
    dollars = run(_open_for(api_url, customer.identity.customer_id, "USD"))
    sign_in(page, web_url, customer.identity)

    # a quote left standing past its validity is refused, and nothing moves
    page.goto(f"{web_url}/app/fx")
    page.get_by_label("Amount", exact=True).fill("100.00")
    page.get_by_role("button", name="Get a quote").click()
    expect(page.get_by_label("From your EUR account")).to_be_visible()
    run(_move_business_time(api_url, "PT61S"))
    page.get_by_role("button", name=re.compile(r"^Exchange €100\.00 for \$")).click()
    expect(page.locator("#amount-error")).to_contain_text("This quote has expired, so nothing was exchanged.")

    # a fresh quote, confirmed at once: the euros leave, the dollars quoted arrive
    page.get_by_label("Amount", exact=True).fill("100.00")
    page.get_by_role("button", name="Get a quote").click()
    you_get = page.locator("dl.summary dd.amount").nth(1).inner_text()     # "$108.31"
    check_page(page, "fx-exchange")
    page.get_by_role("button", name=re.compile(r"^Exchange €100\.00 for \$")).click()
    page.wait_for_url(f"{web_url}/app/transfers/*")
    expect(page.get_by_role("heading", name="Transfer sent")).to_be_visible()
    run(_balance(api_url, customer.identity, euros, "150.00"))
    run(_balance(api_url, customer.identity, dollars, you_get.replace("$", "").replace(",", "")))
