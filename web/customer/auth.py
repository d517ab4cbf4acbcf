"""Signing in (with a second step for the authenticator code when the API asks for one), signing out, registering.

Sign-in and registration go to the API's public endpoints (`POST /v1/auth/token`, `/v1/auth/register`); the
tokens it answers with stay in the server-side session. Staff sign in here too and land on the admin panel.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.client import Api, ApiError
from web.deps import ApiDep, SessionDep, browser_of, client_of, local_path, store_of
from web.forms import field_errors
from web.session import PENDING_MFA_TTL_S, PendingSignIn, WebSession
from web.templating import render

router = APIRouter()

CUSTOMER_HOME = "/app/"
STAFF_HOME = "/admin/"
PASSWORD_PAGE = "/app/settings/password"
MFA_PAGE = "/app/settings/mfa"

# What a sign-in refusal means to the person in front of it (never whether the email exists).
SIGN_IN_MESSAGES = {
    "invalid_credentials": "The email or password is not right.",
    "account_disabled": "This account is deactivated. Please contact the bank.",
    "account_locked": "Too many failed attempts: this account is locked for a while. Try again later.",
    "invalid_otp": "That code is wrong, expired or already used. Enter the current code from your app.",
}


def _refusal(error: ApiError) -> str:
    if error.status == 429 and error.reason != "account_locked":
        return "Too many attempts from here. Wait a minute and try again."
    return SIGN_IN_MESSAGES.get(error.reason, error.detail)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, session: SessionDep, next: str | None = None) -> Response:
    if session.auth is not None:
        return RedirectResponse(_home(session), status_code=303)
    return render(request, "customer/sign_in.html", next=local_path(next, ""))


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, session: SessionDep, email: Annotated[str, Form()] = "",
                  password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "") -> Response:
    form = {"email": email}
    errors = {}
    if not email.strip():
        errors["email"] = ["Enter your email address."]
    if not password:
        errors["password"] = ["Enter your password."]
    if errors:
        return render(request, "customer/sign_in.html", 422, form=form, errors=errors, next=next)
    try:
        body = await client_of(request).token(browser_of(request), email.strip(), password)
    except ApiError as error:
        if error.reason == "mfa_required":
            session.pending = PendingSignIn(email.strip(), password, local_path(next, ""),
                                            time.time() + PENDING_MFA_TTL_S)
            return render(request, "customer/sign_in_code.html")
        status = 429 if error.status == 429 else 401 if error.status == 401 else 400
        return render(request, "customer/sign_in.html", status, form=form, next=next,
                      errors={"password": [_refusal(error)]})
    return await _signed_in(request, session, body, next)


@router.post("/sign-in/code", response_class=HTMLResponse)
async def sign_in_code(request: Request, session: SessionDep, code: Annotated[str, Form()] = "") -> Response:
    pending = session.pending
    if pending is None or pending.expired:
        session.pending = None
        session.flash("Your sign-in took too long. Please start again.", "error")
        return RedirectResponse("/app/sign-in", status_code=303)
    code = code.strip().replace(" ", "")
    if not code:
        return render(request, "customer/sign_in_code.html", 422,
                      errors={"code": ["Enter the code from your authenticator app, or a recovery code."]})
    try:
        body = await client_of(request).token(browser_of(request), pending.email, pending.password, code)
    except ApiError as error:
        if error.reason in ("account_locked", "account_disabled", "invalid_credentials"):
            session.pending = None
            session.flash(_refusal(error), "error")
            return RedirectResponse("/app/sign-in", status_code=303)
        return render(request, "customer/sign_in_code.html", 401, errors={"code": [_refusal(error)]})
    return await _signed_in(request, session, body, pending.next_url)


async def _signed_in(request: Request, session: WebSession, body: dict[str, Any], next_url: str) -> Response:
    """The API said yes: the session gets a new id (no fixation) and the tokens; then where the person was going."""
    store_of(request).rotate(session)
    session.signed_in(body)
    api = Api(client_of(request), session, browser_of(request))
    try:
        me = await api.get("/v1/auth/me")
        session.name, session.email = me.get("name", ""), me.get("email", "")
    except ApiError:
        pass
    auth = session.auth
    assert auth is not None
    if auth.password_change_required:
        session.flash("Please choose a new password before you go on.", "info")
        return RedirectResponse(PASSWORD_PAGE, status_code=303)
    if auth.mfa_enrollment_required:   # staff must have a second factor before the API serves them anything else
        session.flash("Please set up two-step verification before you go on.", "info")
        return RedirectResponse(MFA_PAGE, status_code=303)
    return RedirectResponse(local_path(next_url, _home(session)), status_code=303)


def _home(session: WebSession) -> str:
    return STAFF_HOME if session.auth is not None and session.auth.staff else CUSTOMER_HOME


@router.post("/sign-out")
async def sign_out(request: Request, api: ApiDep) -> Response:
    if api.signed_in:
        try:
            await api.post("/v1/auth/logout")   # the API session ends: its tokens stop working at once
        except Exception:   # already ended, or the API is down: the browser session ends all the same
            pass
    store = store_of(request)
    store.drop(api.session)
    fresh = store.create()
    request.state.web_session = fresh
    fresh.flash("You have signed out.", "success")
    return RedirectResponse("/app/sign-in", status_code=303)


@router.get("/register", response_class=HTMLResponse)
async def register_page(request: Request, session: SessionDep) -> Response:
    if session.auth is not None:
        return RedirectResponse(_home(session), status_code=303)
    return render(request, "customer/register.html")


REGISTER_FIELDS = ("name", "email", "password")


@router.post("/register", response_class=HTMLResponse)
async def register(request: Request, session: SessionDep, name: Annotated[str, Form()] = "",
                   email: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
                   confirm_password: Annotated[str, Form()] = "") -> Response:
    form = {"name": name, "email": email}
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = ["Enter your full name."]
    if not email.strip():
        errors["email"] = ["Enter your email address."]
    if not password:
        errors["password"] = ["Choose a password."]
    elif password != confirm_password:
        errors["confirm_password"] = ["The two passwords are not the same."]
    if errors:
        return render(request, "customer/register.html", 422, form=form, errors=errors)
    client, browser = client_of(request), browser_of(request)
    try:
        await client.register(browser, name.strip(), email.strip(), password)
        body = await client.token(browser, email.strip(), password)
    except ApiError as error:
        return render(request, "customer/register.html", 422 if error.status < 500 else 502, form=form,
                      errors=field_errors(error, REGISTER_FIELDS, default="email"))
    session.flash("Welcome! Your profile is ready.", "success")
    return await _signed_in(request, session, body, CUSTOMER_HOME)
