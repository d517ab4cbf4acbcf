"""The browser tests' fixtures (tests/support/browser.py): one chromium for the session, a context per test."""

from tests.support.browser import browser, context, page, playwright_session, web_url  # noqa: F401
