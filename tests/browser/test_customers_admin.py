"""Customers as people in the admin panel (issue 18 point 7): a teller onboards a walk-in customer through the form
(the API's field error first, then the new customer's page with the temporary password), and an admin erases a
customer's personal data: refused in words while an account is open, done once it is closed.

The session's stack keeps records five years after the last account closed (the default), so the erasure runs on
a site of its own (`server.main`: the API and the web apps) with BANK_ERASURE_RETENTION=PT0S, on the session's
servers, like tests/e2e/test_erasure.py's API. The module has staff of its own (like tests/browser/test_admin.py).
"""

from __future__ import annotations

import re
import signal
import sys
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from playwright.sync_api import expect

from cli.devstack import LOCALHOST, ServiceSpec, Stack, free_port
from cli.devstack import _api_ready as api_ready
from tests.browser.test_admin import staff_sign_in
from tests.support import Bank, Identity, create_staff
from tests.support.browser import check_page, funded_customer, run


@pytest.fixture   # per test: one staff user signs in at most twice in a 30 s TOTP step (support.Identity)
def crew(pg_dsn: str) -> dict[str, Identity]:
    return run(create_staff(pg_dsn, tag="-people", roles=("teller", "admin")))


@pytest.fixture(scope="module")
def erasing_site(stack: Stack) -> Iterator[str]:
    """The API and the web apps on one origin of their own, with no retention period, on the session's servers."""
    port = free_port()
    url = f"http://{LOCALHOST}:{port}"
    argv = [sys.executable, "-m", "uvicorn", "server.main:app", "--host", LOCALHOST, "--port", str(port)]
    spec = ServiceSpec(f"site-erasing-{port}", argv, port, death_signal=signal.SIGKILL, ready=partial(api_ready, url),
                       env={"BANK_ERASURE_RETENTION": "PT0S", "BANK_API_PORT": str(port), "BANK_WEB_API_URL": url})
    stack.start(spec)
    try:
        yield url
    finally:
        stack.kill(spec.name)


def test_a_teller_onboards_a_walk_in_customer(page: Any, web_url: str, crew: dict[str, Identity]) -> None:
    staff_sign_in(page, web_url, crew["teller"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="Onboard a customer").click()
    page.get_by_label("Legal name").fill("Caroline Herschel")
    page.get_by_label("Date of birth").fill("2999-03-16")
    page.get_by_label("Email").fill(f"caroline-{uuid.uuid4().hex[:8]}@example.com")
    page.get_by_label("Mobile phone (optional)").fill("+44 20 7946 0002")
    page.get_by_label("Address line 1 (optional)").fill("19 New King Street")
    page.get_by_label("City (optional)").fill("Bath")
    page.get_by_label("Country code (optional)").fill("gb")
    page.get_by_role("button", name="Onboard customer").click()
    expect(page.locator("#date_of_birth-error")).to_contain_text("must be in the past")   # the API's refusal
    expect(page.get_by_label("Legal name")).to_have_value("Caroline Herschel")            # the form is kept
    check_page(page, "admin-onboard-errors")

    page.get_by_label("Date of birth").fill("1950-03-16")
    page.get_by_role("button", name="Onboard customer").click()
    page.wait_for_url(re.compile(r"/admin/customers/cust-"))
    expect(page.get_by_role("heading", name="Caroline Herschel")).to_be_visible()
    expect(page.get_by_text("Caroline Herschel is onboarded")).to_be_visible()
    expect(page.get_by_text("Temporary password for")).to_be_visible()
    expect(page.get_by_text("No account.")).to_be_visible()
    check_page(page, "admin-onboarded-customer")


def test_an_admin_erases_a_customer_once_their_account_is_closed(
        page: Any, erasing_site: str, crew: dict[str, Identity]) -> None:
    customer = funded_customer(erasing_site, "0", name="Williamina Fleming")
    customer_id, account = customer.identity.customer_id, customer.accounts[0]
    staff_sign_in(page, erasing_site, crew["admin"])
    page.goto(f"{erasing_site}/admin/customers/{customer_id}?user_id={customer.identity.user_id}")
    erase = page.get_by_role("region", name="Erase personal data")
    erase.get_by_label("Type the customer id to confirm").fill(str(customer_id))
    erase.get_by_role("button", name="Erase personal data").click()
    refusal = page.get_by_role("alert").filter(has_text="while they have an open account")
    expect(refusal).to_be_visible()
    check_page(page, "admin-erase-refused")

    async def close() -> None:
        teller = Bank(erasing_site)
        try:
            closed = await teller.post(f"/v1/accounts/{account}/close")
            assert closed.status_code == 200, closed.text
        finally:
            await teller.close()

    run(close())
    erase.get_by_label("Type the customer id to confirm").fill(str(customer_id))
    erase.get_by_role("button", name="Erase personal data").click()
    expect(page.get_by_text("The customer's personal data is erased")).to_be_visible()
    expect(page.get_by_text("Personal data erased", exact=True)).to_be_visible()
    expect(page.get_by_text("Williamina Fleming")).to_have_count(0)
    expect(page.get_by_role("region", name="Erase personal data")).to_have_count(0)
    check_page(page, "admin-customer-erased")
