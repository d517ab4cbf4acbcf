"""Savings interest in a browser: an admin creates a savings product in the admin panel, a customer (an account a
teller funded) starts earning it on the account page, business time moves past a month's end (PUT
/v1/admin/clock, as tests/e2e/test_savings.py), the month shows credited on the account page, and the admin
overview shows how far the close of business is.

The module has staff of its own (like tests/browser/test_loans.py), so its sign-ins never wait for a TOTP step
another module's staff used.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.test_admin import staff_sign_in
from tests.browser.test_loans import staff_page  # noqa: F401  (a fixture: the staff's own browser)
from tests.e2e.test_savings import business_today, move_to_day, months_ahead
from tests.support import Bank, Identity, create_staff
from tests.support.browser import check_page, funded_customer, reload_until_visible, run, sign_in


@pytest.fixture   # per test: one staff user signs in at most twice in a 30 s TOTP step (support.Identity)
def crew(pg_dsn: str) -> dict[str, Identity]:
    return run(create_staff(pg_dsn, tag="-savings", roles=("admin",)))


def _past_the_month_end(api_url: str) -> date:
    """Business time moved to the first day of next month: this month's days close and are credited."""
    async def move() -> date:
        admin = Bank(api_url, role="admin")
        try:
            first = months_ahead(await business_today(admin), 1)
            await move_to_day(admin, first)
            return first
        finally:
            await admin.close()

    return run(move())


def test_an_admins_savings_product_earned_on_an_account_and_credited_after_the_month_end(
        page: Any, staff_page: Any, web_url: str, api_url: str, crew: dict[str, Identity]) -> None:  # noqa: F811
    staff = staff_page
    name = f"Easy Saver {uuid.uuid4().hex[:6]}"
    staff_sign_in(staff, web_url, crew["admin"])
    staff.get_by_role("navigation", name="Main").get_by_role("link", name="Loans").click()
    staff.get_by_role("navigation", name="Loans").get_by_role("link", name="Savings products").click()
    check_page(staff, "admin-savings-products")
    staff.get_by_label("Name", exact=True).fill(name)
    staff.get_by_label("Yearly rate (%)").fill("3")
    staff.get_by_role("button", name="Create savings product").click()
    expect(staff.get_by_text(f"{name} is offered: EUR accounts can earn it.")).to_be_visible()
    expect(staff.get_by_role("heading", name=name)).to_be_visible()
    product_id = staff.url.rsplit("/", 1)[1]

    customer = funded_customer(api_url, "1000.00", name="Sally Saver")
    sign_in(page, web_url, customer.identity)
    page.goto(f"{web_url}/app/accounts/{customer.accounts[0]}")
    page.get_by_role("button", name="Start earning interest").click()       # no product chosen
    expect(page.locator("#product_id-error")).to_contain_text("Choose a savings product")
    check_page(page, "account-savings-errors")
    page.get_by_label("Savings product").select_option(product_id)
    page.get_by_role("button", name="Start earning interest").click()
    expect(page.get_by_text("Your account earns 3% a year from today")).to_be_visible()
    interest = page.get_by_role("region", name="Savings interest")
    expect(interest).to_contain_text(name)

    first = _past_the_month_end(api_url)
    month = (first - timedelta(days=1)).strftime("%B %Y")
    row = page.get_by_role("table", name="Interest per month").locator("tr", has_text=month)
    reload_until_visible(page, row.filter(has_text="Paid into the account"))
    expect(row.locator("td").nth(1)).to_have_text(re.compile(r"^€\d+\.\d{2}$"))
    check_page(page, "account-savings-credited")

    staff.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
    closed = (first - timedelta(days=1)).strftime("%d %b %Y")
    reload_until_visible(staff, staff.locator(".tile", has_text="Close of business").get_by_text(
        f"Closed through {closed}"))
    check_page(staff, "admin-overview-cob")
