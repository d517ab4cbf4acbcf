"""Moving money in a browser: the end-to-end flow of a new customer (registers, is funded by a teller through the
API, transfers, finds it in the history), a confirmation before money moves, a held transfer told in
customer-safe words, and a refusal shown where it belongs."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.sync_api import expect

from tests.e2e.test_payments import creditor_iban
from tests.support import Bank
from tests.support.browser import account_as_staff, check_page, funded_customer, reload_until_visible, run, sign_in


def fund(api_url: str, account: str, amount: str) -> None:
    async def main() -> None:
        teller = Bank(api_url)
        try:
            response = await teller.fund(account, amount)
            assert response.status_code == 200, response.text
            await teller.account(account)
        finally:
            await teller.close()

    run(main())


def test_register_get_funded_transfer_and_see_it_in_the_history(page: Any, web_url: str, api_url: str) -> None:
    recipient = funded_customer(api_url, "0", name="Grace Recipient")
    recipient_iban = account_as_staff(api_url, recipient.accounts[0])["iban"]
    # 1. a newcomer registers in the browser and opens an account
    page.goto(f"{web_url}/app/register")
    page.get_by_label("Full name").fill("Hedy Lamarr")
    page.get_by_label("Email").fill(f"hedy-{uuid.uuid4().hex[:10]}@example.com")
    page.get_by_label("Password", exact=True).fill("frequency hopping 1942")
    page.get_by_label("Repeat the password").fill("frequency hopping 1942")
    page.get_by_role("button", name="Register").click()
    page.wait_for_url(f"{web_url}/app/")
    page.get_by_text("Open a new account").click()
    page.get_by_role("button", name="Open account").click()
    page.wait_for_url(f"{web_url}/app/accounts/*")
    account = page.url.rsplit("/", 1)[1]
    # 2. a teller funds it (through the API)
    fund(api_url, account, "1000.00")
    # 3. she transfers to someone else's IBAN, with a review before money moves
    page.goto(f"{web_url}/app/transfers/new?from={account}")
    page.get_by_label("An IBAN at bankstream").check()
    page.get_by_label("To IBAN").fill(recipient_iban)
    page.get_by_label("Amount").fill("250.00")
    page.get_by_label("Reference (optional)").fill("Rent December")
    check_page(page, "transfer-form")
    page.get_by_role("button", name="Review transfer").click()
    expect(page.get_by_role("heading", name="Check your transfer")).to_be_visible()
    expect(page.get_by_text("No money has moved yet")).to_be_visible()
    check_page(page, "transfer-review")
    page.get_by_role("button", name="Confirm and send €250.00").click()
    page.wait_for_url(f"{web_url}/app/transfers/*")
    expect(page.get_by_role("heading", name="Transfer sent")).to_be_visible()
    assert "€750.00" in page.locator("dl.summary").inner_text()   # the balance now, as the API says
    check_page(page, "transfer-sent")
    # 4. and finds it in her history
    page.get_by_role("link", name="See the account's transactions").click()
    page.get_by_label("Search references").fill("Rent")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    row = page.locator("#results tbody tr").inner_text()
    assert "Transfer out" in row and "\u2212€250.00" in row and "€750.00" in row


def test_between_own_accounts_and_a_refusal_next_to_the_amount(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "100.00", "0", name="Rosalind Franklin")
    source, target = customer.accounts
    sign_in(page, web_url, customer.identity)
    page.goto(f"{web_url}/app/transfers/new")
    page.get_by_role("button", name="Review transfer").click()       # nothing filled in: errors by the fields
    expect(page.locator("#from_account_id-error")).to_be_visible()
    expect(page.locator("#amount-error")).to_be_visible()
    check_page(page, "transfer-form-errors")
    page.get_by_label("From").select_option(source)
    page.get_by_label("To my account").select_option(target)
    page.get_by_label("Amount").fill("500.00")
    page.get_by_role("button", name="Review transfer").click()
    page.get_by_role("button", name="Confirm and send €500.00").click()
    expect(page.get_by_role("heading", name="Transfer not made")).to_be_visible()
    expect(page.get_by_text("There is not enough money in the account")).to_be_visible()
    check_page(page, "transfer-refused")
    page.goto(f"{web_url}/app/transfers/new?from={source}")
    page.get_by_label("To my account").select_option(target)
    page.get_by_label("Amount").fill("40.00")
    page.get_by_role("button", name="Review transfer").click()
    page.get_by_role("button", name="Change details").click()        # back to the form, values kept
    assert page.get_by_label("Amount").input_value() == "40.00"
    page.get_by_role("button", name="Review transfer").click()
    page.get_by_role("button", name="Confirm and send €40.00").click()
    expect(page.get_by_role("heading", name="Transfer sent")).to_be_visible()
    page.goto(f"{web_url}/app/")
    cards = page.locator(".account-cards").inner_text()
    assert "€60.00" in cards and "€40.00" in cards


def test_a_held_transfer_is_told_in_customer_safe_words(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "60000.00", "0", name="Olga Large")   # above the absolute large-amount rule
    source, target = customer.accounts
    sign_in(page, web_url, customer.identity)
    page.goto(f"{web_url}/app/transfers/new?from={source}")
    page.get_by_label("To my account").select_option(target)
    page.get_by_label("Amount").fill("55000.00")
    page.get_by_role("button", name="Review transfer").click()
    page.get_by_role("button", name="Confirm and send €55,000.00").click()
    page.wait_for_url(f"{web_url}/app/transfers/*")
    expect(page.get_by_role("heading", name="We are checking this transfer")).to_be_visible()
    text = page.locator("main").inner_text()
    assert "The amount is reserved" in text
    for secret in ("rule", "score", "large-amount", "risk"):          # no tipping off
        assert secret not in text.lower(), secret
    assert "€5,000.00" in page.locator("dl.summary").inner_text()     # available now: the hold reserves it
    check_page(page, "transfer-held")


def test_pay_an_account_at_another_bank_and_see_it_arrive(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "90.00", name="Eve Abroad")
    sign_in(page, web_url, customer.identity)
    page.goto(f"{web_url}/app/transfers/new")
    page.get_by_label("An account at another bank").check()
    page.get_by_role("button", name="Review transfer").click()
    expect(page.locator("#creditor_iban-error")).to_be_visible()
    expect(page.locator("#creditor_name-error")).to_be_visible()
    page.get_by_label("An account at another bank").check()
    page.get_by_label("Account holder at the other bank").fill("Erika Mustermann")
    page.get_by_label("Their IBAN").fill(creditor_iban())
    page.get_by_label("Amount").fill("15.00")
    page.get_by_label("Reference (optional)").fill("invoice 7")
    page.get_by_role("button", name="Review transfer").click()
    summary = page.locator("dl.summary")
    expect(summary).to_contain_text("Erika Mustermann")
    expect(summary).to_contain_text("another bank")
    expect(summary).to_contain_text("invoice 7")
    check_page(page, "payment-review")
    page.get_by_role("button", name="Confirm and send €15.00").click()
    page.wait_for_url(f"{web_url}/app/transfers/*")
    # the rail settles it a moment later: "Check again" until it has arrived
    reload_until_visible(page, page.get_by_role("heading", name="Payment arrived"))
    expect(page.locator("dl.summary")).to_contain_text("€75.00")          # the balance now
    check_page(page, "payment-outcome")
    page.get_by_role("link", name="Payments", exact=True).click()
    row = page.locator("tbody tr", has_text="Erika Mustermann")
    expect(row).to_contain_text("Arrived")
    expect(row).to_contain_text("€15.00")
