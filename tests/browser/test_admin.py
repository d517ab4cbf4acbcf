"""The admin panel in a real browser: staff sign in with MFA, an analyst approves a held transfer (and the customer
sees it complete), an admin pauses commands (and the customer sees why), the trial balance, the live feed, and
what a customer or a teller may not open.

The module has staff of its own (made like the session's, straight in PostgreSQL with TOTP enrolled), so its
sign-ins never wait for a time step the API tests' staff used.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support import Bank, Identity, create_staff
from tests.support.browser import check_page, funded_customer, run, sign_in

HELD_AMOUNT = "50000.00"   # the large-amount-absolute rule holds a debit of 50,000 or more (rules/default.yaml)


@pytest.fixture   # per test: one staff user signs in at most twice in a 30 s TOTP step (support.Identity)
def crew(pg_dsn: str, api_url: str) -> dict[str, Identity]:
    return run(create_staff(pg_dsn, tag="-panel"))


def staff_sign_in(page: Any, web_url: str, who: Identity) -> None:
    sign_in(page, web_url, who, expect_path="/admin/")
    expect(page.get_by_role("heading", name=re.compile("Good to see you"))).to_be_visible()


def held_transfer(api_url: str) -> tuple[Any, str, str]:
    """A customer with 60,000.00 (a teller's deposit, approved by a second pair of eyes) who sends 50,000.00 to
    another customer: held for review. Returns the customer, their account and the case id."""
    payer = funded_customer(api_url, "60000.00", name="Rosalind Franklin")
    payee = funded_customer(api_url, "10.00", name="Maurice Wilkins")

    async def send() -> str:
        bank = Bank(api_url, identity=payer.identity)
        try:
            response = await bank.transfer(payer.accounts[0], payee.accounts[0], HELD_AMOUNT,
                                           reference="Laboratory equipment")
            assert response.status_code == 202 and response.json()["status"] == "held", response.text
            return str(response.json()["command_id"])
        finally:
            await bank.close()

    return payer, payer.accounts[0], run(send())


def test_staff_sign_in_with_mfa_and_see_their_role(page: Any, web_url: str, crew: dict[str, Identity]) -> None:
    staff_sign_in(page, web_url, crew["teller"])
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Live feed")).to_be_visible()
    assert nav.get_by_role("link", name="Review queue").count() == 0   # tellers do not review cases
    check_page(page, "admin-overview-teller")
    page.goto(f"{web_url}/admin/cases")   # the API's 403, as a page
    expect(page.get_by_role("heading", name=re.compile("forbidden", re.IGNORECASE))).to_be_visible()


def test_an_analyst_approves_a_held_transfer_and_the_customer_sees_it_complete(
        browser: Any, page: Any, web_url: str, api_url: str, crew: dict[str, Identity]) -> None:
    payer, _account, case_id = held_transfer(api_url)
    customer = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        # the customer sees their transfer being checked, in words that say nothing of the rules
        own = customer.new_page()
        sign_in(own, web_url, payer.identity)
        own.goto(f"{web_url}/app/transfers/{case_id}")
        expect(own.get_by_role("heading", name="We are checking this transfer")).to_be_visible()

        staff_sign_in(page, web_url, crew["analyst"])
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Review queue").click()
        page.get_by_role("link", name=case_id[:8]).click()
        expect(page.get_by_text("large-amount-absolute").first).to_be_visible()     # the evidence: rules hit
        expect(page.get_by_text("Laboratory equipment").first).to_be_visible()
        expect(page.get_by_role("heading", name="The customer's recent activity")).to_be_visible()
        check_page(page, "admin-case")
        page.get_by_label("Comment").fill("Customer confirmed the purchase by phone")
        page.once("dialog", lambda dialog: dialog.accept())                        # confirm before money moves
        page.get_by_role("button", name="Approve").click()
        page.wait_for_url(f"{web_url}/admin/cases")
        expect(page.get_by_text(f"Case {case_id[:8]} approved")).to_be_visible()

        sent = own.get_by_role("heading", name="Transfer sent")
        for _ in range(20):   # the API's ledger view follows the log: a moment after the decision at most
            own.reload()
            if sent.is_visible():
                break
            own.wait_for_timeout(250)
        expect(sent).to_be_visible()
        expect(own.get_by_text("€10,000.00").first).to_be_visible()   # 60,000.00 less the approved 50,000.00
    finally:
        customer.close()


def test_an_admin_turns_maintenance_on_and_the_customer_sees_why(
        browser: Any, page: Any, web_url: str, api_url: str, crew: dict[str, Identity]) -> None:
    payer = funded_customer(api_url, "100.00", "0", name="Barbara McClintock")
    staff_sign_in(page, web_url, crew["admin"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="System").click()
    expect(page.get_by_role("heading", name="Readiness of every part")).to_be_visible()
    page.get_by_label("Message to customers (optional)").fill("Database upgrade until 02:00 UTC")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Turn maintenance on").click()
    customer = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        expect(page.get_by_text("Maintenance mode is on")).to_be_visible()
        check_page(page, "admin-health-maintenance")
        # the customer tries to move money in the customer app, and is told why it cannot
        own = customer.new_page()
        sign_in(own, web_url, payer.identity)
        own.goto(f"{web_url}/app/transfers/new")
        own.get_by_label("From").select_option(payer.accounts[0])
        own.get_by_label("To my account").select_option(payer.accounts[1])
        own.get_by_label("Amount").fill("1.00")
        own.get_by_role("button", name="Review transfer").click()
        own.get_by_role("button", name=re.compile("Confirm and send")).click()
        expect(own.get_by_role("heading", name=re.compile("paused for maintenance"))).to_be_visible()
        expect(own.get_by_text("Database upgrade until 02:00 UTC")).to_be_visible()
        check_page(own, "customer-maintenance")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Turn maintenance off").click()
        expect(page.get_by_text("Maintenance mode is off")).to_be_visible()
    finally:
        customer.close()
        httpx.delete(f"{api_url}/v1/admin/maintenance", timeout=30, headers=_bearer(api_url, crew["admin"]))


def test_the_trial_balance_page(page: Any, web_url: str, crew: dict[str, Identity]) -> None:
    staff_sign_in(page, web_url, crew["analyst"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Books").click()
    expect(page.get_by_role("heading", name="Trial balance")).to_be_visible()
    expect(page.get_by_role("heading", name="EUR", exact=True)).to_be_visible()
    expect(page.get_by_text("Balanced", exact=True).first).to_be_visible()
    expect(page.get_by_role("link", name="transit").first).to_be_visible()
    check_page(page, "admin-trial-balance")


def test_a_customer_is_refused_on_admin_pages(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "1.00", name="Lise Meitner")
    sign_in(page, web_url, customer.identity)
    for path in ("/admin/", "/admin/cases", "/admin/users", "/admin/books", f"/admin/customers/{customer.identity.customer_id}"):
        response = page.goto(f"{web_url}{path}")
        assert response is not None and response.status == 404, path
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    check_page(page, "admin-refused-customer")


def test_the_live_feed_shows_a_new_posting_as_it_happens(page: Any, web_url: str, api_url: str,
                                                         crew: dict[str, Identity]) -> None:
    customer = funded_customer(api_url, "5.00", name="Chien-Shiung Wu")
    staff_sign_in(page, web_url, crew["teller"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Live feed").click()
    page.wait_for_url(f"{web_url}/admin/feed")
    expect(page.get_by_role("heading", name="Live feed")).to_be_visible()
    page.wait_for_timeout(500)   # the EventSource connects

    async def deposit() -> None:
        teller = Bank(api_url)
        try:
            response = await teller.deposit(customer.accounts[0], "1234.56", reference="Feed check")
            assert response.status_code == 200, response.text
        finally:
            await teller.close()

    run(deposit())
    row = page.locator("#feed-rows tr", has_text="Feed check").first
    row.wait_for(timeout=10_000)   # pushed over SSE, no reload
    assert "€1,234.56" in row.inner_text()
    check_page(page, "admin-live-feed")


def test_every_other_admin_page_for_an_admin(page: Any, web_url: str, api_url: str, pg_dsn: str) -> None:
    admin = run(create_staff(pg_dsn, tag="-pages", roles=("admin",)))["admin"]
    customer = funded_customer(api_url, "42.00", name="Dorothy Hodgkin")
    staff_sign_in(page, web_url, admin)
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Customers").click()
    page.get_by_label("Name or email").fill(customer.identity.email)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Dorothy Hodgkin").click()
    expect(page.get_by_role("heading", name="Dorothy Hodgkin")).to_be_visible()      # customer 360
    expect(page.get_by_text("€42.00").first).to_be_visible()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    check_page(page, "admin-customer-360")

    nav.get_by_role("link", name="Users").click()
    page.get_by_label("Name", exact=True).fill("Irène Joliot-Curie")
    page.get_by_label("Work email").fill(f"irene-{customer.identity.user_id[:8]}@staff.test")
    page.get_by_label("Role").last.select_option("analyst")
    page.get_by_role("button", name="Create staff account").click()
    expect(page.get_by_text("Temporary password for")).to_be_visible()
    check_page(page, "admin-user")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Deactivate").click()
    expect(page.get_by_text("The user is deactivated")).to_be_visible()

    nav.get_by_role("link", name="Audit").click()
    page.get_by_label("Actions (comma separated)").fill("user_created,user_deactivated")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("td", has_text="user_created").first).to_be_visible()
    check_page(page, "admin-audit")
    csv = page.request.get(f"{web_url}/admin/audit.csv?action=user_created")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text().splitlines()[0].startswith("occurred_at,action,outcome") and "user_created" in csv.text()

    for label, heading, name in (("FX rates", "FX rates", "admin-fx"), ("System", "System health", "admin-health"),
                                 ("Review queue", "Review queue", "admin-cases"),
                                 ("Reports", "Compliance reports", "admin-reports"),
                                 ("Sign-ins", "Sign-in patterns", "admin-sign-ins")):
        nav.get_by_role("link", name=label).click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        check_page(page, name)


_TOKENS: dict[str, str] = {}


def _bearer(api_url: str, identity: Identity) -> dict[str, str]:
    """An API token of the identity's own (the browser's sessions are the web app's)."""
    if identity.email not in _TOKENS:
        from tests.support import login

        _TOKENS[identity.email] = login(api_url, identity)["access_token"]
    return {"Authorization": f"Bearer {_TOKENS[identity.email]}"}


def test_an_analysts_alerts_show_a_held_transfer_live(page: Any, web_url: str, api_url: str, pg_dsn: str) -> None:
    analyst = run(create_staff(pg_dsn, tag="-alerts", roles=("analyst",)))["analyst"]
    staff_sign_in(page, web_url, analyst)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    page.wait_for_url(f"{web_url}/admin/alerts")
    check_page(page, "admin-alerts")
    _, _, case_id = held_transfer(api_url)          # while the page is open: no reload from here
    alert = page.locator("#notifications li", has_text=case_id)
    expect(alert).to_be_visible(timeout=30_000)
    expect(alert).to_contain_text("Held transfer to review")
    expect(alert.get_by_text("New")).to_be_visible()
    alert.get_by_role("button", name=re.compile("Mark read")).click()
    expect(page.locator("#notifications li.notification--unread", has_text=case_id)).to_have_count(0)
    page.get_by_role("link", name="Notification preferences").click()
    staff_email = page.get_by_label("Fraud cases and held movements to review (staff): Email")
    staff_email.check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("Your notification preferences are saved.")).to_be_visible()
    expect(staff_email).to_be_checked()
    expect(page.get_by_role("heading", name="Amounts to watch")).to_have_count(0)   # staff hold no accounts
    check_page(page, "staff-notification-preferences")
