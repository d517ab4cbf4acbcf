"""The customer's accounts in a browser: dashboard, account page with its chart, history (filter, search, pages,
CSV), monthly statements, opening an account."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import expect

from tests.support import Bank
from tests.support.browser import check_page, funded_customer, run, sign_in


def deposits(api_url: str, account: str, amounts: list[str], reference: str = "salary") -> None:
    """A teller's cash deposits through the API, a few at a time."""
    async def main() -> None:
        teller = Bank(api_url)
        try:
            for start in range(0, len(amounts), 5):
                responses = await asyncio.gather(*(teller.deposit(account, amount, reference=f"{reference} {n}")
                                                   for n, amount in enumerate(amounts[start:start + 5], start)))
                assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
            await teller.account(account)   # the read models have them
        finally:
            await teller.close()

    run(main())


def test_account_page_shows_balance_chart_and_recent_transactions(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "500.00", name="Mary Somerville")
    account = customer.accounts[0]
    deposits(api_url, account, ["20.00", "1234.56"], reference="pocket money")
    sign_in(page, web_url, customer.identity)
    page.locator(".account-card__link").first.click()
    page.wait_for_url(f"{web_url}/app/accounts/{account}")
    assert page.locator(".big-amount").inner_text() == "€1,754.56"
    chart = page.get_by_role("img", name="Balance over time")
    expect(chart).to_be_visible()
    assert "now €1,754.56" in page.locator("#chart-desc").text_content()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(3)
    assert "€1,754.56" in rows.first.inner_text()                 # newest first: the balance after it is today's
    assert "€1,234.56" in page.locator("table").inner_text() and "pocket money 1" in page.locator("table").inner_text()
    check_page(page, "account")


def test_history_filters_searches_pages_and_exports(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "1.00", name="Emmy Noether")
    account = customer.accounts[0]
    deposits(api_url, account, [f"{n}.00" for n in range(2, 28)], reference="batch")   # 27 postings in all
    sign_in(page, web_url, customer.identity)
    page.goto(f"{web_url}/app/accounts/{account}/transactions")
    expect(page.locator("#results table tbody tr")).to_have_count(25)
    page.get_by_role("link", name="Older transactions").click()
    page.wait_for_url("**cursor=*")
    expect(page.locator("#results table tbody tr")).to_have_count(2)
    expect(page.get_by_role("link", name="Newest")).to_be_visible()
    page.goto(f"{web_url}/app/accounts/{account}/transactions")
    page.get_by_label("Search references").fill("batch 7")     # htmx: results replaced as one types
    expect(page.locator("#results tbody tr")).to_have_count(1)
    assert "€9.00" in page.locator("#results tbody tr").inner_text()
    assert "q=batch%207" in page.url                             # the filter is in the address: shareable, back works
    page.get_by_label("Search references").fill("")
    page.get_by_label("Smallest amount").fill("25")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#results tbody tr")).to_have_count(3)
    page.get_by_label("Smallest amount").fill("abc")
    page.get_by_role("button", name="Filter").click()
    page.locator("#min_amount-error").wait_for()                 # the API's 422, next to its field
    check_page(page, "history")
    page.goto(f"{web_url}/app/accounts/{account}/transactions?min_amount=25")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    lines = open(download.value.path(), encoding="utf-8").read().strip().splitlines()
    assert len(lines) == 1 + 3 and "27.00" in lines[1]


def test_statement_of_this_month_is_printable(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "300.00", name="Lise Meitner")
    sign_in(page, web_url, customer.identity)
    account = customer.accounts[0]
    page.goto(f"{web_url}/app/accounts/{account}/statements")
    month = datetime.now(UTC).strftime("%B %Y")
    check_page(page, "statements")
    page.get_by_role("link", name=month).click()
    expect(page.get_by_role("heading", name=f"Statement for {month}")).to_be_visible()
    summary = page.locator("dl.summary").inner_text()
    assert "€0.00" in summary and "€300.00" in summary           # opening, money in, closing: the API's figures
    expect(page.get_by_role("button", name="Print or save as PDF")).to_be_visible()
    page.emulate_media(media="print")
    assert not page.locator(".site-header").is_visible()          # the print layout drops the navigation
    page.emulate_media(media="screen")
    check_page(page, "statement")
    assert page.goto(f"{web_url}/app/accounts/{account}/statements/2026-13").status == 404


def test_a_customer_opens_an_account(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, name="Chien-Shiung Wu")   # registered, no account yet
    sign_in(page, web_url, customer.identity)
    expect(page.get_by_text("You have no account yet")).to_be_visible()
    check_page(page, "dashboard-empty")
    page.get_by_text("Open a new account").click()
    page.get_by_label("Currency").select_option("USD")
    page.get_by_role("button", name="Open account").click()
    page.wait_for_url(f"{web_url}/app/accounts/*")
    expect(page.get_by_text("Your new USD account is open.")).to_be_visible()
    assert page.locator(".big-amount").inner_text() == "$0.00"
