"""A person's own settings in a browser: two-step verification (QR code, recovery codes, then signing in with a
code), password change, signed-in devices with revoke, profile."""

from __future__ import annotations

from typing import Any

import pyotp

from playwright.sync_api import expect

from tests.support.browser import check_page, funded_customer, register, reload_until_visible, sign_in


def test_set_up_two_step_verification_then_sign_in_with_a_code(page: Any, web_url: str, api_url: str) -> None:
    identity = register(api_url, "Barbara Liskov")
    sign_in(page, web_url, identity)
    page.goto(f"{web_url}/app/settings")
    check_page(page, "settings")
    page.get_by_role("link", name="Two-step verification").click()
    page.get_by_label("Current password").fill("wrong password, surely")
    page.get_by_role("button", name="Set up two-step verification").click()
    assert "not your current password" in page.locator("#current_password-error").inner_text()
    page.get_by_label("Current password").fill(identity.password)
    page.get_by_role("button", name="Set up two-step verification").click()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    secret = page.locator("#mfa-secret").inner_text().strip()
    check_page(page, "mfa-scan")
    page.get_by_label("Code from the app").fill("000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.get_by_role("button", name="Turn on two-step verification").click()
    expect(page.locator("#code-error")).to_be_visible()
    identity.totp_secret = secret
    code, _ = identity.next_otp()
    page.get_by_label("Code from the app").fill(code or "")
    page.get_by_role("button", name="Turn on two-step verification").click()
    codes = page.get_by_role("list", name="Recovery codes").locator("li")
    expect(codes).to_have_count(10)
    recovery = codes.first.inner_text()
    check_page(page, "mfa-recovery-codes")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, web_url, identity)                                # password, then the app's code
    check_page(page, "dashboard-after-mfa")
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{web_url}/app/sign-in")
    page.get_by_label("Email").fill(identity.email)
    page.get_by_label("Password").fill(identity.password)
    page.get_by_role("button", name="Sign in").click()
    check_page(page, "sign-in-code")
    page.get_by_label("Authentication code").fill("123456")
    page.get_by_role("button", name="Verify").click()
    assert "wrong, expired or already used" in page.locator("#code-error").inner_text()
    page.get_by_label("Authentication code").fill(recovery)        # a recovery code works once
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{web_url}/app/")


def test_change_password_and_sign_out_another_device(browser: Any, page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, name="Frances Allen")
    other = browser.new_context()                                   # a second device
    try:
        other_page = other.new_page()
        sign_in(other_page, web_url, customer.identity)
        sign_in(page, web_url, customer.identity)
        page.goto(f"{web_url}/app/settings/sessions")
        rows = page.locator("tbody tr")
        expect(rows).to_have_count(2)
        expect(page.get_by_text("This device")).to_have_count(1)
        check_page(page, "sessions")
        page.once("dialog", lambda dialog: dialog.accept())         # "Sign this device out?"
        page.locator("tbody tr", has_not_text="This device").get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{web_url}/app/settings/sessions")
        expect(page.locator("tbody tr")).to_have_count(1)
        other_page.goto(f"{web_url}/app/")                          # that device's session is over
        assert "/app/sign-in" in other_page.url
    finally:
        other.close()
    page.goto(f"{web_url}/app/settings/password")
    page.get_by_label("Current password").fill(customer.identity.password)
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("Repeat the new password").fill("short")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#new_password-error")).to_be_visible()         # the API's rules, next to the field
    check_page(page, "password-errors")
    page.get_by_label("Current password").fill(customer.identity.password)
    page.get_by_label("New password", exact=True).fill("compilers and parallelism")
    page.get_by_label("Repeat the new password").fill("compilers and parallelism")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password is changed.")).to_be_visible()
    customer.identity.password = "compilers and parallelism"
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, web_url, customer.identity)


def test_profile_address_and_a_phone_waiting_for_its_code(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, name="Margaret Hamilton")
    sign_in(page, web_url, customer.identity)
    page.goto(f"{web_url}/app/settings/profile")
    page.get_by_label("Legal name").fill("Margaret Heafield Hamilton")
    page.get_by_label("Address line 1").fill("1 Apollo Way")
    page.get_by_label("Postcode").fill("10115")
    page.get_by_label("City").fill("Berlin")
    page.get_by_label("Country code").fill("DE")
    page.get_by_label("Mobile phone").fill("not a phone")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#phone-error")).to_be_visible()                # the API's refusal, next to the phone
    page.get_by_label("Mobile phone").fill("+49 30 901820")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("We sent a code to confirm your new phone.")).to_be_visible()
    assert page.get_by_label("Address line 1").input_value() == "1 Apollo Way"
    page.get_by_label("Confirmation code").fill("000000")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#code-error")).to_be_visible()
    check_page(page, "profile")


def test_sign_in_history_shows_a_failed_attempt(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, name="Radia Perlman")
    page.goto(f"{web_url}/app/sign-in")
    page.get_by_label("Email").fill(customer.identity.email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#password-error")).to_be_visible()
    sign_in(page, web_url, customer.identity)
    page.goto(f"{web_url}/app/settings")
    page.get_by_role("link", name="Sign-in history").click()
    # from the audit trail, a moment behind
    reload_until_visible(page, page.locator("tbody tr", has_text="Failed"))
    expect(page.locator("tbody tr", has_text="Signed in").first).to_be_visible()
    check_page(page, "sign-ins")
