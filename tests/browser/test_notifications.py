"""The notification inbox (live, through the API's stream) and the notification preferences, in a browser."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.sync_api import expect

from tests.support import Bank
from tests.support.browser import account_as_staff, DESKTOP, check_page, funded_customer, reload_until_visible, run, sign_in


async def _deposit(api_url: str, account: str, amount: str) -> None:
    teller = Bank(api_url)
    try:
        response = await teller.fund(account, amount, "EUR")
        assert response.status_code in (200, 201), response.text
    finally:
        await teller.close()


async def _preferences(api_url: str, identity: Any) -> dict[str, Any]:
    customer = Bank(api_url, identity=identity)
    try:
        response = await customer.get("/v1/me/notification-preferences")
        assert response.status_code == 200, response.text
        return dict(response.json())
    finally:
        await customer.close()


def test_a_new_notification_appears_live_and_mark_all_read_stops_at_what_was_shown(
        page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "50.00", name="Ada Notified")
    sign_in(page, web_url, customer.identity)
    page.get_by_role("link", name="Notifications").click()
    page.wait_for_url(f"{web_url}/app/notifications")
    # the notifier writes the inbox from the log: the deposit's notification may land after the page: reload then
    reload_until_visible(page, page.get_by_text("50.00 EUR received"))
    expect(page.locator("nav .bell")).to_contain_text(" new")          # the bell: the unread count on every page
    expect(page.get_by_text("unread", exact=False).first).to_be_visible()
    check_page(page, "notifications")

    run(_deposit(api_url, customer.accounts[0], "12.34"))   # while the page is open: no reload from here
    live = page.locator("#notifications li", has_text="12.34 EUR received")
    expect(live).to_be_visible(timeout=30_000)
    expect(live.get_by_text("New")).to_be_visible()
    expect(page.locator("#notifications li", has_text="12.34 EUR received")).to_have_count(1)

    page.get_by_role("button", name="Mark all read").click()
    expect(page.get_by_text("marked read.")).to_be_visible()
    # only what the page had shown when it loaded is marked: the live arrival is still unread
    unread = page.locator("#notifications li.notification--unread")
    expect(unread).to_have_count(1)
    expect(unread).to_contain_text("12.34 EUR received")
    unread.get_by_role("button", name="Mark read: 12.34 EUR received").click()
    expect(page.locator("#notifications li.notification--unread")).to_have_count(0)
    expect(page.get_by_text("Nothing unread")).to_be_visible()
    page.goto(f"{web_url}/app/")
    expect(page.locator("nav .bell")).to_be_empty()


async def _read_everything_once_signed_in(api_url: str, identity: Any) -> None:
    """Waits for the browser sign-in's own notification (a new device: the customer registered through the API),
    then marks the inbox read, so what arrives next is the only thing new."""
    customer = Bank(api_url, identity=identity)
    try:
        for _ in range(300):
            inbox = (await customer.get("/v1/notifications", limit=20)).json()["notifications"]
            if any(n["type"] == "new_device_sign_in" for n in inbox):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no new-device notification for the browser's sign-in")
        assert (await customer.post("/v1/notifications/read", {})).status_code == 200
    finally:
        await customer.close()


def test_a_transfer_made_in_one_browser_rings_the_bell_and_fills_the_inbox_in_another(
        browser: Any, page: Any, web_url: str, api_url: str) -> None:
    recipient = funded_customer(api_url, "0", name="Ida Waiting")
    payer = funded_customer(api_url, "100.00", name="Emmy Paying")
    recipient_iban = account_as_staff(api_url, recipient.accounts[0])["iban"]
    sign_in(page, web_url, recipient.identity)
    run(_read_everything_once_signed_in(api_url, recipient.identity))
    page.goto(f"{web_url}/app/notifications")
    expect(page.get_by_text("Nothing unread")).to_be_visible()
    expect(page.locator("nav .bell")).to_be_empty()

    other = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
    try:
        paying = other.new_page()
        sign_in(paying, web_url, payer.identity)
        paying.goto(f"{web_url}/app/transfers/new?from={payer.accounts[0]}")
        paying.get_by_label("An IBAN at bankstream").check()
        paying.get_by_label("To IBAN").fill(recipient_iban)
        paying.get_by_label("Amount").fill("25.00")
        paying.get_by_role("button", name="Review transfer").click()
        paying.get_by_role("button", name="Confirm and send €25.00").click()
        expect(paying.get_by_role("heading", name="Transfer sent")).to_be_visible()
    finally:
        other.close()

    # the recipient's page was never reloaded: the inbox and the bell change by themselves
    arrived = page.locator("#notifications li", has_text="25.00 EUR received")
    expect(arrived).to_be_visible(timeout=30_000)
    expect(page.locator("nav .bell")).to_have_text("1 new")
    page.get_by_role("link", name="Accounts").click()            # and on every other page
    expect(page.locator("nav .bell")).to_have_text("1 new")
    check_page(page, "bell")


def test_preferences_choose_channels_a_threshold_and_quiet_hours(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "100.00", name="Grace Prefers")
    sign_in(page, web_url, customer.identity)
    page.goto(f"{web_url}/app/notifications/preferences")
    password_email = page.get_by_label("Your password was changed: Email (always on)")
    expect(password_email).to_be_checked()
    expect(password_email).to_be_disabled()
    page.get_by_label("Money in and out of your accounts: Email").check()
    page.get_by_label("Tell me of a debit above").fill("20.00")
    page.get_by_label("Hold text messages during quiet hours", exact=False).check()
    page.get_by_label("Time zone").fill("Mars/Olympus_Mons")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("alert")).to_contain_text("no IANA time zone")
    expect(page.get_by_label("Tell me of a debit above")).to_have_value("20.00")   # what was typed is kept
    check_page(page, "notification-preferences-errors")

    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("Your notification preferences are saved.")).to_be_visible()
    expect(page.get_by_label("Money in and out of your accounts: Email")).to_be_checked()
    expect(page.get_by_label("Tell me of a debit above")).to_have_value("20.00")
    check_page(page, "notification-preferences")

    saved = run(_preferences(api_url, customer.identity))
    assert saved["channels"]["transaction_posted"] == ["in_app", "email"]
    assert saved["channels"]["password_changed"] == ["in_app", "email"]
    assert [(t["account_id"], t["debit_above"], t["balance_below"]) for t in saved["thresholds"]] == [
        (customer.accounts[0], "20.00", None)]
    assert saved["quiet_hours"] == {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}
