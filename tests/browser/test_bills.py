"""Bills in a browser: an admin adds a biller to the directory in the admin panel; a customer pays it, is refused a
reference that does not fit, pays with the right one, follows the payment and prints its receipt."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import expect

from tests.browser.test_admin import staff_sign_in
from tests.e2e.test_payments import creditor_iban
from tests.support import Bank, create_staff
from tests.support.browser import check_page, funded_customer, reload_until_visible, run, sign_in


async def _biller(api_url: str, name: str) -> None:
    admin = Bank(api_url, role="admin")
    try:
        response = await admin.http.post("/v1/admin/billers", json={
            "name": name, "category": "telecom", "iban": creditor_iban(), "reference_pattern": r"^\d{8,12}$",
            "check_digit": "luhn"})
        assert response.status_code == 201, response.text
    finally:
        await admin.close()


def test_an_admin_adds_a_biller_to_the_directory(page: Any, web_url: str, pg_dsn: str) -> None:
    admin = run(create_staff(pg_dsn, tag="-billers", roles=("admin",)))["admin"]
    staff_sign_in(page, web_url, admin)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billers").click()
    name = f"Water Works {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Category").select_option("utilities")
    page.get_by_label("Settlement IBAN").fill(creditor_iban())
    page.get_by_label("Reference format").fill("(unclosed")
    page.get_by_role("button", name="Add biller").click()
    expect(page.locator("#reference_pattern-error")).to_be_visible()
    check_page(page, "admin-billers-errors")
    page.get_by_label("Reference format").fill(r"^[0-9]{6}$")
    page.get_by_label("Check digit").select_option("luhn")
    page.get_by_role("button", name="Add biller").click()
    expect(page.get_by_text(f"{name} is in the directory")).to_be_visible()
    row = page.locator("tbody tr", has_text=name)
    expect(row).to_contain_text("Offered")
    check_page(page, "admin-billers")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Retire {name}").click()
    expect(page.locator("tbody tr", has_text=name)).to_contain_text("Retired")


def test_pay_a_bill_with_the_reference_on_it_and_print_the_receipt(page: Any, web_url: str, api_url: str) -> None:
    name = f"Phone Co {uuid.uuid4().hex[:6]}"
    run(_biller(api_url, name))
    customer = funded_customer(api_url, "80.00", name="Bill Payer")
    sign_in(page, web_url, customer.identity)
    page.get_by_role("link", name="Bills").click()
    page.get_by_label("Biller").select_option(label=name)
    page.get_by_label("Reference on your bill").fill("79927398710")       # a wrong check digit
    page.get_by_label("Amount").fill("29.99")
    page.get_by_role("button", name="Review payment").click()
    page.get_by_role("button", name="Confirm and pay €29.99").click()
    expect(page.locator("#reference-error")).to_contain_text("check digit")
    check_page(page, "bills-errors")
    page.get_by_label("Reference on your bill").fill("7992 7398 713")
    page.get_by_role("button", name="Review payment").click()
    expect(page.locator("dl.summary")).to_contain_text(name)
    check_page(page, "bill-review")
    page.get_by_role("button", name="Confirm and pay €29.99").click()
    page.wait_for_url(f"{web_url}/app/transfers/*")
    reload_until_visible(page, page.get_by_role("heading", name="Payment arrived"))
    page.get_by_role("link", name="Receipt").click()
    expect(page.get_by_role("heading", name="Payment receipt")).to_be_visible()
    receipt = page.locator("dl.summary")
    expect(receipt).to_contain_text(name)
    expect(receipt).to_contain_text("79927398713")
    expect(receipt).to_contain_text("€29.99")
    assert re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", receipt.locator("code").inner_text())
    check_page(page, "receipt")
