"""Signing in, registering and signing out, in a real browser; the security properties of the pages."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from playwright.sync_api import expect

from tests.support.browser import check_page, funded_customer, register, sign_in


def test_sign_in_page_is_labelled_and_accessible(page: Any, web_url: str) -> None:
    page.goto(f"{web_url}/")
    assert page.url == f"{web_url}/app/sign-in?next=%2Fapp%2F"   # / leads to the app, which asks to sign in
    expect(page.get_by_label("Email")).to_be_visible()
    assert page.get_by_label("Password").get_attribute("type") == "password"
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    check_page(page, "sign-in")


def test_wrong_password_is_shown_next_to_the_field(page: Any, web_url: str, api_url: str) -> None:
    identity = register(api_url, "Grace Hopper")
    page.goto(f"{web_url}/app/sign-in")
    page.get_by_label("Email").fill(identity.email)
    page.get_by_label("Password").fill("not-the-password-at-all")
    page.get_by_role("button", name="Sign in").click()
    error = page.locator("#password-error")
    assert "email or password is not right" in error.inner_text()
    assert page.get_by_label("Password").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Email").input_value() == identity.email   # kept; the password is not


def test_a_customer_signs_in_sees_their_accounts_and_signs_out(page: Any, web_url: str, api_url: str) -> None:
    customer = funded_customer(api_url, "1250.50", name="Nora Lovelace")
    sign_in(page, web_url, customer.identity)
    expect(page.get_by_role("heading", name="Hello, Nora Lovelace")).to_be_visible()
    expect(page.get_by_text("€1,250.50").first).to_be_visible()
    check_page(page, "dashboard")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{web_url}/app/sign-in")
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    page.goto(f"{web_url}/app/")
    assert "/app/sign-in" in page.url   # the session is gone


def test_register_shows_the_apis_password_rules_then_signs_in(page: Any, web_url: str) -> None:
    page.goto(f"{web_url}/app/register")
    page.get_by_label("Full name").fill("Katherine Johnson")
    email = f"kj-{uuid.uuid4().hex[:12]}@example.com"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill("password")
    page.get_by_label("Repeat the password").fill("password")
    page.get_by_role("button", name="Register").click()
    expect(page.locator("#password-error")).to_be_visible()   # the API's weak_password rules, next to the field
    check_page(page, "register-errors")
    page.get_by_label("Password", exact=True).fill("orbital mechanics 1962")
    page.get_by_label("Repeat the password").fill("orbital mechanics 1962")
    page.get_by_role("button", name="Register").click()
    page.wait_for_url(f"{web_url}/app/")
    expect(page.get_by_text("Welcome! Your profile is ready.")).to_be_visible()


# ---------------------------------------------------------------- security properties, over plain HTTP


def _csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the form"
    return match.group(1)


def test_a_post_without_the_csrf_token_is_refused(web_url: str, api_url: str) -> None:
    identity = register(api_url)
    with httpx.Client(base_url=web_url, timeout=30) as http:
        token = _csrf_of(http.get("/app/sign-in").text)
        refused = http.post("/app/sign-in", data={"email": identity.email, "password": identity.password})
        assert refused.status_code == 403
        forged = http.post("/app/sign-in", data={"email": identity.email, "password": identity.password,
                                                 "csrf_token": "x" + token[1:]})
        assert forged.status_code == 403
        accepted = http.post("/app/sign-in", data={"email": identity.email, "password": identity.password,
                                                   "csrf_token": token})
        assert accepted.status_code == 303 and accepted.headers["location"] == "/app/"
        # signed in: a state-changing request still needs the (new) session's token, form field or header
        assert http.post("/app/sign-out").status_code == 403
        assert http.get("/app/").status_code == 200


def test_session_cookie_flags_and_security_headers(web_url: str) -> None:
    response = httpx.get(f"{web_url}/app/sign-in", timeout=30)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("bank_session=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie   # plain http here; behind https (X-Forwarded-Proto from a trusted proxy) it is
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in response.text and " style=" not in response.text   # nothing inline
    https = httpx.get(f"{web_url}/app/sign-in", headers={"X-Forwarded-Proto": "https"}, timeout=30)
    assert "Secure" in https.headers["set-cookie"]


def test_another_customers_account_is_the_404_page(page: Any, web_url: str, api_url: str) -> None:
    owner = funded_customer(api_url, "10", name="Owner")
    intruder = funded_customer(api_url, "10", name="Intruder")
    sign_in(page, web_url, intruder.identity)
    response = page.goto(f"{web_url}/app/accounts/{owner.accounts[0]}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    own = page.goto(f"{web_url}/app/accounts/{intruder.accounts[0]}")
    assert own is not None and own.status == 200
    for path in (f"/app/accounts/{owner.accounts[0]}/transactions", f"/app/accounts/{owner.accounts[0]}/statements",
                 f"/app/accounts/{owner.accounts[0]}/transactions.csv", "/admin/"):
        response = page.request.get(f"{web_url}{path}")   # the same browser session
        assert response.status == 404, path
