"""Standing orders in a browser: set one up from the bank's today, see the scheduler pay its first payment, change
its amount, pause, resume and cancel it."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.support.browser import account_as_staff, check_page, funded_customer, reload_until_visible, sign_in


def test_a_monthly_order_is_paid_changed_paused_resumed_and_cancelled(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "100.00", "0", name="Sam Regular")
    source, target = customer.accounts
    sign_in(page, web_url, customer.identity)
    page.get_by_role("link", name="Standing orders").click()
    expect(page.get_by_text("No standing orders yet.")).to_be_visible()
    page.get_by_role("button", name="Set up standing order").click()
    expect(page.locator("#amount-error")).to_be_visible()
    check_page(page, "standing-orders-errors")

    page.get_by_label("From").select_option(source)
    page.get_by_label("To", exact=True).select_option(f"account:{target}")
    page.get_by_label("Amount of each payment").fill("10.00")
    page.get_by_label("Reference (optional)").fill("Savings")
    page.get_by_label("Number of payments (optional)").fill("3")
    assert page.get_by_label("First payment on").input_value()   # the bank's business date, from the API
    page.get_by_role("button", name="Set up standing order").click()
    expect(page.get_by_text("The standing order is set up.")).to_be_visible()
    expect(page.get_by_role("heading", name="€10.00 every month")).to_be_visible()
    check_page(page, "standing-order")

    # the first payment falls due today (local midnight): the scheduler pays it
    reload_until_visible(page, page.get_by_role("cell", name="Paid", exact=True))
    runs = page.locator("ol.runs")
    expect(runs).to_contain_text("payment 3")
    expect(runs).not_to_contain_text("payment 4")   # three payments in all
    assert account_as_staff(api_url, target)["balance"] == "10.00"

    # the payment history lists it, with its confirmation number
    order_url = page.url
    page.get_by_role("link", name="Payments", exact=True).click()
    row = page.locator("tbody tr", has_text="Savings")
    expect(row).to_contain_text("Paid")
    expect(row).to_contain_text("€10.00")
    assert re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", row.locator("code").inner_text())
    page.get_by_label("Kind").select_option("external")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("No payments match.")).to_be_visible()
    check_page(page, "payments")
    page.goto(order_url)

    page.get_by_label("New amount, from the next payment").fill("12.50")
    page.get_by_role("button", name="Save amount").click()
    expect(page.get_by_role("heading", name="€12.50 every month")).to_be_visible()
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text("The standing order is paused")).to_be_visible()
    expect(page.locator(".section-head .badge")).to_have_text("Paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_text("The standing order is running again.")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel standing order").click()
    expect(page.get_by_text("The standing order is cancelled.")).to_be_visible()
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    page.get_by_role("link", name="← Standing orders").click()
    row = page.locator("tbody tr", has_text="Savings")
    expect(row).to_contain_text("Cancelled")
    expect(row).to_contain_text("€12.50")
