"""The signed-in person's own settings: password, two-step verification (a QR code for the authenticator app,
then one-time recovery codes), active sessions with revoke, and the profile (name, address, contact details).

Password, MFA and sessions are each user's own (`/v1/auth/*`), so staff use these pages too; the profile is the
API's `/v1/me/profile`. What would outlive a stolen session (a new password, a new second factor, a new email)
asks for the current password, as the API requires.
"""

from __future__ import annotations

import io
from typing import Annotated, Any
from urllib.parse import parse_qs, urlparse

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from web.client import Api, ApiError
from web.deps import SignedInApi, store_of
from web.forms import field_errors
from web.templating import render

router = APIRouter(prefix="/settings")

MFA_PENDING = "mfa_setup_uri"


@router.get("", response_class=HTMLResponse)
async def overview(request: Request, api: SignedInApi) -> HTMLResponse:
    me = await api.get("/v1/auth/me")
    return render(request, "customer/settings.html", me=me)


# ---------------------------------------------------------------- password


@router.get("/password", response_class=HTMLResponse)
async def password_page(request: Request, api: SignedInApi) -> HTMLResponse:
    return render(request, "customer/password.html")


@router.post("/password", response_class=HTMLResponse)
async def change_password(request: Request, api: SignedInApi, current_password: Annotated[str, Form()] = "",
                          new_password: Annotated[str, Form()] = "",
                          confirm_password: Annotated[str, Form()] = "") -> Response:
    errors: dict[str, list[str]] = {}
    if not current_password:
        errors["current_password"] = ["Enter your current password."]
    if not new_password:
        errors["new_password"] = ["Choose a new password."]
    elif new_password != confirm_password:
        errors["confirm_password"] = ["The two new passwords are not the same."]
    if not errors:
        try:
            changed = await api.post("/v1/auth/password", {"current_password": current_password,
                                                           "new_password": new_password})
        except ApiError as error:
            if error.status >= 500:
                raise
            fields = ("current_password", "new_password")
            errors = {"new_password": error.messages()} if error.reason == "weak_password" else \
                field_errors(error, fields, default="current_password")
            if error.reason == "wrong_password":
                errors = {"current_password": ["That is not your current password."]}
        else:
            if api.session.auth is not None:
                api.session.auth.password_change_required = False
            others = changed.get("other_sessions_revoked", 0)
            api.session.flash("Your password is changed." + (f" You were signed out on {others} other device(s)."
                                                              if others else ""), "success")
            return RedirectResponse("/app/settings", status_code=303)
    return render(request, "customer/password.html", 422, errors=errors)


# ---------------------------------------------------------------- two-step verification


def qr_svg(uri: str) -> Markup:
    """The otpauth URI as an SVG QR code, drawn here (segno): no image service ever sees the secret."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", xmldecl=False, scale=5, border=2, svgclass="qr-code",
                                    title="QR code for your authenticator app")
    return Markup(buffer.getvalue().decode())


def secret_of(uri: str) -> str:
    return parse_qs(urlparse(uri).query).get("secret", [""])[0]


@router.get("/mfa", response_class=HTMLResponse)
async def mfa_page(request: Request, api: SignedInApi) -> HTMLResponse:
    me = await api.get("/v1/auth/me")
    return render(request, "customer/mfa.html", me=me, step="start")


@router.post("/mfa/setup", response_class=HTMLResponse)
async def mfa_setup(request: Request, api: SignedInApi, current_password: Annotated[str, Form()] = "") -> Response:
    me = await api.get("/v1/auth/me")
    if not current_password:
        return render(request, "customer/mfa.html", 422, me=me, step="start",
                      errors={"current_password": ["Enter your current password."]})
    try:
        setup = await api.post("/v1/auth/mfa/setup", {"current_password": current_password})
    except ApiError as error:
        if error.status >= 500:
            raise
        message = ["That is not your current password."] if error.reason == "wrong_password" else error.messages()
        return render(request, "customer/mfa.html", 422 if error.status != 409 else 409, me=me, step="start",
                      errors={"current_password": message})
    api.session.data[MFA_PENDING] = setup["otpauth_uri"]
    return _scan_page(request, api, me)


def _scan_page(request: Request, api: Api, me: dict[str, Any], status: int = 200,
               errors: dict[str, list[str]] | None = None) -> HTMLResponse:
    uri = api.session.data[MFA_PENDING]
    return render(request, "customer/mfa.html", status, me=me, step="scan", qr=qr_svg(uri), secret=secret_of(uri),
                  errors=errors or {})


@router.post("/mfa/verify", response_class=HTMLResponse)
async def mfa_verify(request: Request, api: SignedInApi, code: Annotated[str, Form()] = "") -> Response:
    me = await api.get("/v1/auth/me")
    if MFA_PENDING not in api.session.data:
        return RedirectResponse("/app/settings/mfa", status_code=303)
    code = code.strip().replace(" ", "")
    if not code:
        return _scan_page(request, api, me, 422, {"code": ["Enter the 6-digit code your app shows."]})
    try:
        codes = await api.post("/v1/auth/mfa/verify", {"code": code})
    except ApiError as error:
        if error.status >= 500:
            raise
        return _scan_page(request, api, me, 422, {"code": [
            "That code does not match. Check that your phone's clock is right and enter the current code."
            if error.reason == "invalid_otp" else error.detail]})
    api.session.data.pop(MFA_PENDING, None)
    return render(request, "customer/mfa.html", me=me | {"mfa_enabled": True}, step="done",
                  recovery_codes=codes.get("recovery_codes", []))


# ---------------------------------------------------------------- sessions


@router.get("/sessions", response_class=HTMLResponse)
async def sessions_page(request: Request, api: SignedInApi) -> HTMLResponse:
    sessions = (await api.get("/v1/auth/sessions")).get("items", [])
    return render(request, "customer/sessions.html", sessions=sessions)


@router.get("/sign-ins", response_class=HTMLResponse)
async def sign_ins_page(request: Request, api: SignedInApi) -> HTMLResponse:
    """Recent sign-ins, failed ones included: how a person notices someone trying their password."""
    sign_ins = (await api.get("/v1/auth/sign-ins", limit=50)).get("items", [])
    return render(request, "customer/sign_ins.html", sign_ins=sign_ins)


@router.post("/sessions/{session_id}/revoke")
async def revoke(request: Request, session_id: str, api: SignedInApi) -> Response:
    current = api.session.auth is not None and api.session.auth.api_session_id == session_id
    await api.delete(f"/v1/auth/sessions/{session_id}")
    if current:   # this very browser: its session is over
        store_of(request).drop(api.session)
        return RedirectResponse("/app/sign-in", status_code=303)
    api.session.flash("That session has ended: the device is signed out.", "success")
    return RedirectResponse("/app/settings/sessions", status_code=303)


# ---------------------------------------------------------------- profile

PROFILE_FIELDS = ("legal_name", "date_of_birth", "address_line_1", "address_line_2", "postcode", "city", "country",
                  "phone", "email", "current_password")


def _profile_form(profile: dict[str, Any]) -> dict[str, str]:
    lines = list(profile.get("address_lines") or []) + ["", ""]
    return {"legal_name": profile.get("legal_name") or "", "date_of_birth": profile.get("date_of_birth") or "",
            "address_line_1": lines[0], "address_line_2": lines[1], "postcode": profile.get("postcode") or "",
            "city": profile.get("city") or "", "country": profile.get("country") or "",
            "phone": profile.get("phone") or "", "email": profile.get("email") or ""}


@router.get("/profile", response_class=HTMLResponse)
async def profile_page(request: Request, api: SignedInApi) -> HTMLResponse:
    profile = await api.get("/v1/me/profile")
    return render(request, "customer/profile.html", profile=profile, form=_profile_form(profile))


@router.post("/profile", response_class=HTMLResponse)
async def update_profile(request: Request, api: SignedInApi, legal_name: Annotated[str, Form()] = "",
                         date_of_birth: Annotated[str, Form()] = "", address_line_1: Annotated[str, Form()] = "",
                         address_line_2: Annotated[str, Form()] = "", postcode: Annotated[str, Form()] = "",
                         city: Annotated[str, Form()] = "", country: Annotated[str, Form()] = "",
                         phone: Annotated[str, Form()] = "", email: Annotated[str, Form()] = "",
                         current_password: Annotated[str, Form()] = "") -> Response:
    profile = await api.get("/v1/me/profile")
    form = {"legal_name": legal_name, "date_of_birth": date_of_birth, "address_line_1": address_line_1,
            "address_line_2": address_line_2, "postcode": postcode, "city": city, "country": country.upper(),
            "phone": phone, "email": email}
    change: dict[str, Any] = {}
    for name in ("legal_name", "date_of_birth", "postcode", "city", "country"):
        if form[name].strip() and form[name].strip() != (profile.get(name) or ""):
            change[name] = form[name].strip()
    lines = [line.strip() for line in (address_line_1, address_line_2) if line.strip()]
    if lines != list(profile.get("address_lines") or []):
        change["address_lines"] = lines
    if phone.strip() and phone.strip() != (profile.get("phone") or ""):
        change["phone"] = phone.strip()
    if email.strip() and email.strip() != profile.get("email"):
        change["email"] = email.strip()
        change["current_password"] = current_password
    if not change:
        api.session.flash("Nothing to change.", "info")
        return RedirectResponse("/app/settings/profile", status_code=303)
    try:
        updated = await api.patch("/v1/me/profile", change)
    except ApiError as error:
        if error.status >= 500:
            raise
        return render(request, "customer/profile.html", 422, profile=profile, form=form,
                      errors=field_errors(error, PROFILE_FIELDS, default="legal_name"))
    waiting = [pending["channel"] for pending in updated.get("pending", [])]
    api.session.flash("Your profile is saved." + (" We sent a code to confirm your new "
                                                  + " and ".join(waiting) + "." if waiting else ""), "success")
    return RedirectResponse("/app/settings/profile", status_code=303)


@router.post("/profile/verify", response_class=HTMLResponse)
async def verify_contact(request: Request, api: SignedInApi, code: Annotated[str, Form()] = "") -> Response:
    if not code.strip():
        profile = await api.get("/v1/me/profile")
        return render(request, "customer/profile.html", 422, profile=profile, form=_profile_form(profile),
                      errors={"code": ["Enter the code we sent you."]})
    try:
        updated = await api.post("/v1/me/profile/verify", {"code": code.strip()})
    except ApiError as error:
        if error.status >= 500:
            raise
        profile = await api.get("/v1/me/profile")
        return render(request, "customer/profile.html", 422, profile=profile, form=_profile_form(profile),
                      errors={"code": error.messages()})
    if updated.get("email"):
        api.session.email = updated["email"]
    api.session.flash("Thank you: your new contact detail is confirmed.", "success")
    return RedirectResponse("/app/settings/profile", status_code=303)
