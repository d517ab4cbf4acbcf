"""The web app's factory: the customer app under /app/ and the admin panel under /admin/, one origin with the API.

`create_app(api_base_url)` returns an ASGI app that serves `/`, `/app/...` and `/admin/...`; `server/main.py`
composes it with the API (everything else) in one process. The pages are server-rendered (Jinja2) with htmx for
partial updates; every asset is served from /app/static/ (nothing from a CDN).

Every response carries a Content-Security-Policy without 'unsafe-inline' (no inline script or style anywhere),
and the usual hardening headers. Every state-changing request needs the session's CSRF token (web/csrf.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web import admin, customer
from web.client import ApiClient, ApiError, SignInRequired
from web.csrf import CsrfFailed, require_csrf
from web.deps import NotCustomer, NotStaff, sign_in_url
from web.session import COOKIE_NAME, SessionStore, WebSession
from web.templating import render

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/app/static"
# Every asset is ours: scripts, styles, images and fonts from this origin only, nothing inline, no frames.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
                           "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
IDLE_TIMEOUT_S = 30 * 60


class SecurityHeaders:
    """Adds the hardening headers to every response; pages (not static files) are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(STATIC_PREFIX + "/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *SECURITY_HEADERS]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SessionCookies:
    """Loads the browser's session from its cookie before routing; sets (or clears) the cookie on the response
    when the session is new, got a new id at sign-in, or was dropped at sign-out."""

    def __init__(self, app: ASGIApp, store: SessionStore) -> None:
        self.app, self.store = app, store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(STATIC_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        presented = _cookie(scope, COOKIE_NAME)
        state = scope.setdefault("state", {})
        state["web_session"] = self.store.get(presented)
        secure = scope.get("scheme") == "https"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                session: WebSession | None = state.get("web_session")
                current = session.id if session is not None and self.store.get(session.id) is session else None
                if current != presented and (current or presented):
                    message["headers"] = [*message.get("headers", []), (b"set-cookie", _set_cookie(current, secure))]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:   # a malformed Cookie header: as if there were none
                return None
            if name in jar:
                return jar[name].value
    return None


def _set_cookie(session_id: str | None, secure: bool) -> bytes:
    value = f"{COOKIE_NAME}={session_id}" if session_id else f"{COOKIE_NAME}=; Max-Age=0"
    return f"{value}; Path=/; HttpOnly; SameSite=Strict{'; Secure' if secure else ''}".encode("latin-1")


def _wants_fragment(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _redirect(request: Request, url: str) -> Response:
    if _wants_fragment(request):   # htmx follows HX-Redirect with a full page load
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _exc: CsrfFailed) -> HTMLResponse:
        return render(request, "error.html", 403, title="This form has expired",
                      message="For your security the form could not be sent. Go back, reload the page and try again.")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired) -> Response:
        return _redirect(request, sign_in_url(request))

    @app.exception_handler(NotCustomer)
    async def _staff(request: Request, _exc: NotCustomer) -> Response:
        return _redirect(request, "/admin/")

    @app.exception_handler(NotStaff)
    async def _not_staff(request: Request, _exc: NotStaff) -> HTMLResponse:
        return not_found(request)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> HTMLResponse:
        if exc.status == 404:   # another customer's account looks exactly like one that does not exist
            return not_found(request)
        if exc.status == 503 and exc.reason == "maintenance":
            return render(request, "error.html", 503, title="Payments are paused for maintenance",
                          message=exc.detail)
        status = exc.status if 400 <= exc.status < 600 else 502
        return render(request, "error.html", status, title=exc.title, message=exc.detail)

    @app.exception_handler(httpx.TransportError)
    async def _unreachable(request: Request, exc: httpx.TransportError) -> HTMLResponse:
        log.warning("the API did not answer: %s", exc)
        return render(request, "error.html", 502, title="The bank is not answering",
                      message="We could not reach our systems. Please try again in a moment.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> HTMLResponse:
        log.exception("page failed: %s %s", request.method, request.url.path, exc_info=exc)
        return render(request, "error.html", 500, title="Something went wrong",
                      message="We could not show this page. Please try again; if it keeps happening, contact us.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        if exc.status_code == 404:
            return not_found(request)
        return render(request, "error.html", exc.status_code, title=str(exc.detail), message=str(exc.detail))


def not_found(request: Request) -> HTMLResponse:
    return render(request, "error.html", 404, title="Page not found",
                  message="There is nothing here, or it is not yours to see.")


def create_app(api_base_url: str, idle_timeout_s: float = IDLE_TIMEOUT_S,
               transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The web app, calling the API at `api_base_url` (a transport may be given for tests of the app alone)."""
    sessions = SessionStore(idle_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.api_client = ApiClient(api_base_url, transport=transport)
        try:
            yield
        finally:
            await app.state.api_client.close()

    app = FastAPI(title="bankstream web", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan,
                  dependencies=[Depends(require_csrf)])
    app.state.sessions = sessions
    _install_error_pages(app)
    app.add_middleware(SessionCookies, store=sessions)
    app.add_middleware(SecurityHeaders)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app/", status_code=307)

    @app.get("/app", include_in_schema=False)
    async def app_root() -> RedirectResponse:
        return RedirectResponse("/app/", status_code=307)

    app.include_router(customer.router, prefix="/app")
    app.include_router(admin.router, prefix="/admin")
    return app
