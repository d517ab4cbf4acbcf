"""What a page's route needs, as FastAPI dependencies: the browser session, the API bound to it, a signed-in
customer. The admin panel (web/admin/) uses the same ones (`StaffApi` for staff pages)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from web.client import Api, ApiClient, Browser, SignInRequired
from web.session import SessionStore, WebSession


class NotCustomer(Exception):
    """A staff member on a customer page (staff have the admin panel)."""


class NotStaff(Exception):
    """A customer on a staff page: answered like an unknown page (404)."""


def store_of(request: Request) -> SessionStore:
    return request.app.state.sessions


def client_of(request: Request) -> ApiClient:
    return request.app.state.api_client


def browser_of(request: Request) -> Browser:
    return Browser(ip=request.client.host if request.client else "unknown",
                   user_agent=request.headers.get("user-agent", ""))


def web_session(request: Request) -> WebSession:
    """The request's session, created when it has none (the cookie is set on the response)."""
    session: WebSession | None = getattr(request.state, "web_session", None)
    if session is None:
        session = store_of(request).create()
        request.state.web_session = session
    return session


def api(request: Request, session: Annotated[WebSession, Depends(web_session)]) -> Api:
    return Api(client_of(request), session, browser_of(request))


def signed_in_api(request: Request, bound: Annotated[Api, Depends(api)]) -> Api:
    if not bound.signed_in:
        raise SignInRequired()
    return bound


def customer_api(bound: Annotated[Api, Depends(signed_in_api)]) -> Api:
    assert bound.session.auth is not None
    if bound.session.auth.staff:
        raise NotCustomer()
    return bound


def staff_api(bound: Annotated[Api, Depends(signed_in_api)]) -> Api:
    assert bound.session.auth is not None
    if not bound.session.auth.staff:
        raise NotStaff()
    return bound


SessionDep = Annotated[WebSession, Depends(web_session)]
ApiDep = Annotated[Api, Depends(api)]
SignedInApi = Annotated[Api, Depends(signed_in_api)]
CustomerApi = Annotated[Api, Depends(customer_api)]
StaffApi = Annotated[Api, Depends(staff_api)]


def local_path(candidate: str | None, default: str) -> str:
    """A redirect target from a query or form: only a path on this site (no open redirect)."""
    if candidate and candidate.startswith("/") and not candidate.startswith("//") and "\\" not in candidate:
        return candidate
    return default


def sign_in_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/app/sign-in?next={quote(target, safe='')}"
