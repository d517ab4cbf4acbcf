"""Browser tests' fixtures and helpers: one Playwright and one chromium for the whole session (Debian's
/usr/bin/chromium, never a downloaded browser), a fresh context (cookies, storage) per test, against the session's
stack (`api_url`: the API with the web apps beside it).

- `browser`: the session's chromium; `page`: a new context's page at desktop size, closed after the test.
- `web_url`: the stack's origin (the customer app is at `web_url + "/app/"`).
- `funded_customer(api_url, amount)`: a customer registered through the API with an account a teller funded.
- `sign_in(page, web_url, identity)`: through the sign-in form, as a person would.
- `check_accessibility(page)`: axe-core on the page; fails on serious or critical violations.
- `screenshots(page, name)`: the page at phone (390x844) and desktop (1280x800) width, saved under
  test-artifacts/screenshots/ (git-ignored; BANK_SCREENSHOTS_DIR overrides): for people to look at, so not under
  CI, whose artifacts nobody opens (BANK_SCREENSHOTS=1 takes them there too; 0 skips them anywhere).

Tests register these fixtures with `from tests.support.browser import browser, page, ...` in tests/browser/conftest.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support import Bank, Identity, register_customer

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("BANK_SCREENSHOTS_DIR") or ROOT / "test-artifacts" / "screenshots")
TAKE_SCREENSHOTS = os.environ.get("BANK_SCREENSHOTS", "0" if os.environ.get("CI") else "1") == "1"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
BLOCKING_IMPACTS = ("serious", "critical")
TIMEOUT_MS = 20_000
T = TypeVar("T")
ASSET_TYPES = {"script", "stylesheet", "image", "font", "media", "manifest"}


def chromium_path() -> Path:
    """Debian's chromium (scripts/setup installs it). Missing: a failure under CI, a skip elsewhere."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (Debian: apt-get install chromium; scripts/setup does it as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to completion from a browser test. Playwright's sync API keeps its event loop marked as
    running in the test's thread, so `asyncio.run` refuses there: the coroutine gets a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session")
def playwright_session(api_url: str) -> Iterator[Any]:
    """Started after the stack (whose set-up runs asyncio), stopped before it; tests/conftest.py runs the browser
    tier last, so no test of another tier calls asyncio.run while Playwright's loop is marked running."""
    chromium_path()   # skip before starting Playwright at all
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        yield playwright
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def browser(playwright_session: Any) -> Iterator[Any]:
    chromium = playwright_session.chromium.launch(executable_path=str(chromium_path()),
                                                  args=["--disable-dev-shm-usage"])
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="session")
def web_url(api_url: str) -> str:
    return api_url


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: Any) -> Any:
    page = context.new_page()
    errors: list[str] = []
    # A CSP violation or a script error shows in the console, a missing asset as a failed sub-resource: a test
    # fails on them (`check_page`). A page's own 4xx (a form with errors, the 404 page, an htmx partial's 422) is
    # no error.
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 and response.request.resource_type in ASSET_TYPES else None)
    page.console_errors = errors   # type: ignore[attr-defined]
    return page


# ---------------------------------------------------------------- people and money, through the API


@dataclass
class Customer:
    identity: Identity
    accounts: list[str]


def funded_customer(api_url: str, *amounts: str, name: str = "Nora Lovelace", currency: str = "EUR") -> Customer:
    """A customer registered through the API, with one account per amount, each opened and funded (a cash
    deposit) by a teller through the API."""
    async def main() -> Customer:
        identity = await register_customer(api_url, name)
        teller = Bank(api_url)
        try:
            accounts = []
            for amount in amounts:
                account = await teller.open(currency, customer=identity.customer_id)
                if amount and amount != "0":
                    response = await teller.fund(account, amount, currency)
                    assert response.status_code in (200, 201), response.text
                accounts.append(account)
            # the web reads the read models: wait until they show the teller's writes
            for account in accounts:
                await teller.account(account)
            return Customer(identity, accounts)
        finally:
            await teller.close()

    return run(main())


def account_as_staff(api_url: str, account: str) -> dict[str, Any]:
    """An account as a teller reads it through the API (its IBAN, balance), once the read model has it."""
    async def main() -> dict[str, Any]:
        teller = Bank(api_url)
        try:
            return dict(await teller.account(account))
        finally:
            await teller.close()

    return run(main())


def register(api_url: str, name: str = "Test Customer") -> Identity:
    """A customer registered through the API (no account yet)."""
    return run(register_customer(api_url, name))


def sign_in(page: Any, web_url: str, identity: Identity, expect_path: str = "/app/") -> None:
    """Through the sign-in form, with the labels a person reads ("Email", "Password", "Sign in")."""
    page.goto(f"{web_url}/app/sign-in")
    page.get_by_label("Email").fill(identity.email)
    page.get_by_label("Password").fill(identity.password)
    page.get_by_role("button", name="Sign in").click()
    if identity.totp_secret is not None:
        code = None
        while code is None:
            code, wait = identity.next_otp()
            if code is None:
                page.wait_for_timeout(wait * 1000)
        page.get_by_label("Authentication code").fill(code)
        page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{web_url}{expect_path}*")


def reload_until_visible(page: Any, locator: Any, tries: int = 40, pause_ms: int = 500) -> None:
    """Reload the page until `locator` shows (what a person does with "Check again"): for what the stack does a
    moment later (the notifier, the scheduler, the rail), then assert it is there."""
    from playwright.sync_api import expect

    for _ in range(tries):
        if locator.count():
            break
        page.wait_for_timeout(pause_ms)
        page.reload()
    expect(locator.first).to_be_visible()


# ---------------------------------------------------------------- quality checks


def check_accessibility(page: Any, context: str | None = None) -> None:
    """axe-core on the page as it is: no serious or critical violation (each listed with its nodes)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, context=context)
    violations = [v for v in results.response.get("violations", []) if v.get("impact") in BLOCKING_IMPACTS]
    report = "\n".join(f"- {v['id']} ({v['impact']}): {v['help']} at "
                       + ", ".join(str(node.get("target")) for node in v.get("nodes", [])[:5])
                       for v in violations)
    assert not violations, f"accessibility violations on {page.url}:\n{report}"


def screenshots(page: Any, name: str) -> list[Path]:
    """The page at phone and desktop width (full page), as test artifacts; the viewport is restored after."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size or DESKTOP
    saved = []
    try:
        for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
            page.set_viewport_size(size)
            path = SCREENSHOTS / f"{name}-{label}.png"
            page.screenshot(path=str(path), full_page=True)
            saved.append(path)
    finally:
        page.set_viewport_size(original)
    return saved


def check_page(page: Any, name: str) -> None:
    """What every page's test ends with: no script or CSP error, axe clean, screenshots at both widths (not
    under CI: TAKE_SCREENSHOTS)."""
    errors = getattr(page, "console_errors", [])
    assert not errors, f"console errors on {page.url}: {errors}"
    check_accessibility(page)
    if TAKE_SCREENSHOTS:
        screenshots(page, name)
