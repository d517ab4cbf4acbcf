"""Cross-site request forgery: every state-changing request carries the session's CSRF token.

A synchroniser token per session: forms carry it in a hidden `csrf_token` field, htmx requests in the
`X-CSRF-Token` header (web/static/js/app.js adds it from the page's meta tag). A POST, PUT, PATCH or DELETE
without the session's token is refused with 403 before its route runs. SameSite=Strict on the session cookie is
the second line: another site's form never sends the cookie at all.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from web.session import WebSession

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfFailed(Exception):
    """The request's CSRF token is missing or is not its session's."""


async def presented_token(request: Request) -> str:
    if header := request.headers.get(HEADER):
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(FIELD)
        return value if isinstance(value, str) else ""
    return ""


def valid(session: WebSession | None, presented: str) -> bool:
    return bool(session is not None and presented and hmac.compare_digest(session.csrf_token, presented))


async def require_csrf(request: Request) -> None:
    """App-wide dependency: unsafe methods need the token (routers added later, /admin's included, get it too)."""
    if request.method in SAFE_METHODS:
        return
    session: WebSession | None = getattr(request.state, "web_session", None)
    if not valid(session, await presented_token(request)):
        raise CsrfFailed()
