"""Loans in a browser: an admin creates a product in the admin panel, a customer applies in the web app, an analyst
approves it once the servicer has assessed it, the customer repays principal early (a shorter loan), repays part of
an instalment (then a second early repayment is refused next to its amount), sees the payoff quote, and the
portfolio shows the product; a counter-offer, accepted by the customer.

The module has staff of its own (like tests/browser/test_admin.py), so its sign-ins never wait for a TOTP step
another module's staff used.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.test_admin import staff_sign_in
from tests.support import Bank, Identity, create_staff
from tests.support.browser import DESKTOP, TIMEOUT_MS, check_page, funded_customer, reload_until_visible, run, sign_in

WAIT_S = 60.0


@pytest.fixture   # per test: one staff user signs in at most twice in a 30 s TOTP step (support.Identity)
def crew(pg_dsn: str) -> dict[str, Identity]:
    return run(create_staff(pg_dsn, tag="-loans", roles=("analyst", "admin")))


@pytest.fixture
def staff_page(browser: Any) -> Iterator[Any]:
    """A second browser (its own cookies) for staff, beside the customer's `page`."""
    context = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_product_an_application_an_approval_a_repayment_and_the_portfolio(
        page: Any, staff_page: Any, web_url: str, api_url: str, crew: dict[str, Identity]) -> None:
    staff = staff_page
    name = f"Car loan {uuid.uuid4().hex[:6]}"
    staff_sign_in(staff, web_url, crew["admin"])
    staff.get_by_role("navigation", name="Main").get_by_role("link", name="Loans").click()
    staff.get_by_role("navigation", name="Loans").get_by_role("link", name="Products", exact=True).click()
    check_page(staff, "admin-loan-products")
    staff.get_by_label("Name", exact=True).fill(name)
    staff.get_by_label("Smallest amount").fill("500.00")
    staff.get_by_label("Largest amount").fill("20000.00")
    staff.get_by_label("Fewest instalments").fill("3")
    staff.get_by_label("Most instalments").fill("24")
    staff.get_by_label("Yearly rate (%)").fill("9.5")
    staff.get_by_role("button", name="Create product").click()
    expect(staff.get_by_text(f"{name} is offered to customers.")).to_be_visible()
    expect(staff.get_by_role("heading", name=name)).to_be_visible()
    check_page(staff, "admin-loan-product")
    product_id = staff.url.rsplit("/", 1)[1]

    customer = funded_customer(api_url, "200.00", name="Lena Borrower")
    sign_in(page, web_url, customer.identity)
    page.get_by_role("link", name="Loans").click()
    expect(page.get_by_text("No loans or applications yet.")).to_be_visible()
    page.get_by_label("Loan", exact=True).select_option(product_id)
    page.get_by_label("Amount to borrow").fill("100.00")     # below the product's smallest amount
    page.get_by_label("Number of instalments").fill("6")
    page.get_by_label("What it is for").fill("a used car")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#amount-error")).to_contain_text("from €500.00 to €20,000.00")
    check_page(page, "loans-errors")
    page.get_by_label("Amount to borrow").fill("1000.00")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("Your application is in.")).to_be_visible()
    loan_id = page.url.rsplit("/", 1)[1]

    # the servicer assesses it in the background; then it waits in the analyst's queue
    staff.get_by_role("button", name="Sign out").click()
    staff_sign_in(staff, web_url, crew["analyst"])
    staff.get_by_role("navigation", name="Main").get_by_role("link", name="Loans").click()
    reload_until_visible(staff, staff.get_by_role("link", name=loan_id[:8]))
    check_page(staff, "admin-loans-queue")
    staff.get_by_role("link", name=loan_id[:8]).click()
    expect(staff.get_by_role("table", name="What the scorer saw")).to_contain_text("Money coming in")
    # the bureau's report; a regex, since a plain has_text matches any id holding "cb-" in any case
    expect(staff.locator("dl.summary code", has_text=re.compile(r"^CB-"))).to_be_visible()
    check_page(staff, "admin-loan-application")
    staff.get_by_role("button", name="Approve").click()
    expect(staff.get_by_text("Approved: the loan is paid out.")).to_be_visible()

    # paid out: the customer's loan is active, with its schedule
    reload_until_visible(page, page.locator(".section-head .badge", has_text="Active"))
    expect(page.get_by_role("table", name="Schedule").locator("tbody tr")).to_have_count(6)
    check_page(page, "loan-active")
    # principal repaid early, the loan shortened: the same instalment, fewer of them
    page.get_by_label("Principal to repay early").fill("200.00")
    page.get_by_label("Shorten my loan").check()
    page.get_by_role("button", name="Pay principal early").click()
    expect(page.get_by_text("Thank you: the principal is repaid early.")).to_be_visible()
    reload_until_visible(page, page.get_by_role("table", name="Repayments").get_by_role(
        "cell", name="Principal repaid early: a shorter loan"))
    expect(page.get_by_role("table", name="Schedule").locator("tbody tr")).to_have_count(5)
    page.get_by_label("Amount to repay").fill("25.00")
    page.get_by_role("button", name="Repay", exact=True).click()
    expect(page.get_by_text("Thank you: your repayment is paid into the loan.")).to_be_visible()
    reload_until_visible(page, page.get_by_role("table", name="Repayments").get_by_role("cell", name="€25.00"))
    # the next instalment is partly paid now: a second prepayment is refused next to its amount
    page.get_by_label("Principal to repay early").fill("100.00")
    page.get_by_label("Lower my instalment").check()
    page.get_by_role("button", name="Pay principal early").click()
    expect(page.locator("#prepay_amount-error")).to_contain_text("partly paid")
    check_page(page, "loan-prepayment-refused")
    page.get_by_role("link", name="Pay off the whole loan").click()
    expect(page.get_by_role("heading", name="Payoff quote")).to_be_visible()
    expect(page.locator("#payoff-amount")).to_have_text(re.compile(r"^€[\d,]+\.\d{2}$"))
    expect(page.get_by_role("button", name=re.compile(r"^Pay off €"))).to_be_visible()
    check_page(page, "loan-payoff")

    staff.get_by_role("navigation", name="Loans").get_by_role("link", name="Portfolio").click()
    row = staff.locator("tbody tr", has_text=name)
    expect(row.locator("td").first).to_have_text("1")
    expect(staff.get_by_role("img", name="Outstanding principal by product, EUR")).to_be_visible()
    check_page(staff, "admin-loan-portfolio")


async def _application_in_review(api_url: str, customer: Identity, account: str) -> str:
    """A product, and the customer's application for 5,000.00 over 24 instalments, once assessed."""
    admin, client = Bank(api_url, role="admin"), Bank(api_url, identity=customer)
    try:
        product = await admin.http.post("/v1/admin/loan-products", json={
            "name": f"Home improvement {uuid.uuid4().hex[:6]}", "currency": "EUR", "principal_min": "1000.00",
            "principal_max": "30000.00", "term_min": 6, "term_max": 36, "annual_rate_percent": "11"})
        assert product.status_code == 201, product.text
        applied = await client.http.post("/v1/loans", json={
            "product_id": product.json()["product_id"], "account_id": account, "amount": "5000.00", "term": 24,
            "purpose": "a new kitchen"})
        assert applied.status_code == 201, applied.text
        loan_id = str(applied.json()["loan_id"])
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while (await admin.http.get(f"/v1/loans/{loan_id}")).json()["status"] != "in_review":
            assert asyncio.get_running_loop().time() < deadline, "the application was never assessed"
            await asyncio.sleep(0.1)
        return loan_id
    finally:
        await admin.close()
        await client.close()


def test_an_analyst_counter_offers_and_the_customer_accepts(
        page: Any, staff_page: Any, web_url: str, api_url: str, crew: dict[str, Identity]) -> None:
    customer = funded_customer(api_url, "0", name="Kai Kitchen")
    loan_id = run(_application_in_review(api_url, customer.identity, customer.accounts[0]))
    staff = staff_page
    staff_sign_in(staff, web_url, crew["analyst"])
    staff.goto(f"{web_url}/admin/loans/{loan_id}")
    staff.get_by_role("button", name="Reject").click()                   # a rejection needs a reason
    expect(staff.locator("#reason-error")).to_contain_text("reason")
    check_page(staff, "admin-loan-decision-errors")
    staff.get_by_label("Amount", exact=True).fill("3000.00")
    staff.get_by_label("Instalments").fill("12")
    staff.get_by_label("Yearly rate (%)").fill("13.5")
    staff.get_by_label(re.compile("^Reason")).fill("We can lend 3,000.00 over a year")
    staff.get_by_role("button", name="Make a counter-offer").click()
    expect(staff.get_by_text("The counter-offer is sent")).to_be_visible()
    expect(staff.get_by_role("table", name="Reviews")).to_contain_text("Counter-offer")

    sign_in(page, web_url, customer.identity)
    page.get_by_role("link", name="Loans").click()
    expect(page.locator("tbody tr").first).to_contain_text("Offer waiting for you")
    page.locator("tbody tr").first.get_by_role("link").click()
    offer = page.get_by_role("region", name="Our offer")
    expect(offer).to_contain_text("We can lend 3,000.00 over a year")
    expect(offer).to_contain_text("€3,000.00")
    expect(offer).to_contain_text("13.5% a year")
    check_page(page, "loan-offer")
    page.get_by_role("button", name="Accept the offer").click()
    expect(page.get_by_text("You accepted the offer")).to_be_visible()
    expect(page.locator(".section-head .badge")).to_have_text(re.compile("Approved|Active"))


async def _approved(api_url: str, loan_id: str) -> None:
    """The application approved by an admin through the API, once paid out."""
    admin = Bank(api_url, role="admin")
    try:
        decided = await admin.http.post(f"/v1/admin/loans/{loan_id}/decision", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while (await admin.http.get(f"/v1/loans/{loan_id}")).json()["status"] != "active":
            assert asyncio.get_running_loop().time() < deadline, "the loan was never paid out"
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def test_an_admin_writes_a_loan_off_and_the_customer_sees_it(
        page: Any, staff_page: Any, web_url: str, api_url: str, crew: dict[str, Identity]) -> None:
    customer = funded_customer(api_url, "0", name="Wanda Writeoff")
    loan_id = run(_application_in_review(api_url, customer.identity, customer.accounts[0]))
    run(_approved(api_url, loan_id))
    staff = staff_page
    staff_sign_in(staff, web_url, crew["analyst"])
    staff.goto(f"{web_url}/admin/loans/{loan_id}")
    expect(staff.locator(".section-head .badge")).to_have_text("Active")
    expect(staff.get_by_role("heading", name="Write off")).to_have_count(0)     # admins only
    staff.get_by_role("button", name="Sign out").click()

    staff_sign_in(staff, web_url, crew["admin"])
    staff.goto(f"{web_url}/admin/loans/{loan_id}")
    staff.get_by_role("button", name="Write the loan off").click()             # a write-off needs a reason
    expect(staff.locator("#write_off_reason-error")).to_contain_text("Say why")
    check_page(staff, "admin-loan-write-off-errors")
    staff.get_by_label(re.compile("^Reason")).fill("the borrower emigrated and cannot be reached")
    staff.get_by_role("button", name="Write the loan off").click()
    expect(staff.get_by_text("Written off: the loan's principal")).to_be_visible()
    expect(staff.locator(".section-head .badge")).to_have_text("Written off")
    expect(staff.locator("#written-off")).to_contain_text("€5,000.00 principal")
    expect(staff.get_by_role("heading", name="Write off")).to_have_count(0)

    sign_in(page, web_url, customer.identity)
    page.goto(f"{web_url}/app/loans/{loan_id}")
    expect(page.locator(".section-head .badge")).to_have_text("Written off")
    expect(page.locator("#written-off")).to_contain_text("€5,000.00 principal")
    check_page(page, "loan-written-off")
