"""Users: search (analysts and admins), and for admins: create staff, roles, activate and deactivate, password
resets (a temporary password shown once; with an MFA reset for a lost authenticator: they enrol again at next
sign-in), ending every session of a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.admin.common import page
from web.client import ApiError
from web.deps import StaffApi
from web.forms import field_errors

router = APIRouter()

ROLE_OPTIONS = [("teller", "Teller"), ("analyst", "Analyst"), ("admin", "Admin")]
FILTER_ROLES = [("", "Any role"), ("customer", "Customer"), *ROLE_OPTIONS]
ACTIVE_OPTIONS = [("", "Active or not"), ("true", "Active"), ("false", "Deactivated")]


@router.get("/users", response_class=HTMLResponse)
async def users(request: Request, api: StaffApi, q: str = "", role: str = "", active: str = "",
                cursor: str = "") -> Response:
    found = await api.get("/v1/admin/users", q=q.strip(), role=role, active=active, limit=25, cursor=cursor)
    return page(request, api, "users.html", users=found["items"], next_cursor=found.get("next_cursor"),
                query={"q": q, "role": role, "active": active}, roles=FILTER_ROLES, actives=ACTIVE_OPTIONS,
                staff_roles=ROLE_OPTIONS, form={}, errors={})


@router.post("/users", response_class=HTMLResponse)
async def create_staff(request: Request, api: StaffApi, name: Annotated[str, Form()] = "",
                       email: Annotated[str, Form()] = "", role: Annotated[str, Form()] = "teller") -> Response:
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = ["Enter the person's name."]
    if not email.strip():
        errors["email"] = ["Enter their work email."]
    if not errors:
        try:
            created = await api.post("/v1/admin/users", {"name": name.strip(), "email": email.strip(), "role": role})
        except ApiError as error:
            if error.status == 403:
                raise
            errors = field_errors(error, ("name", "email", "role"), "email")
        else:
            api.session.data["temporary_password"] = (created["user"]["email"], created["temporary_password"])
            return RedirectResponse(f"/admin/users/{created['user']['user_id']}", status_code=303)
    found = await api.get("/v1/admin/users", limit=25)
    return page(request, api, "users.html", 422, users=found["items"], next_cursor=found.get("next_cursor"),
                query={}, roles=FILTER_ROLES, actives=ACTIVE_OPTIONS, staff_roles=ROLE_OPTIONS,
                form={"name": name, "email": email, "role": role}, errors=errors)


@router.get("/users/{user_id}", response_class=HTMLResponse)
async def user(request: Request, api: StaffApi, user_id: str) -> Response:
    shown = await api.get(f"/v1/admin/users/{user_id}")
    temporary = api.session.data.pop("temporary_password", None)
    if temporary is not None and temporary[0] != shown["email"]:
        temporary = None
    return page(request, api, "user.html", user=shown, temporary=temporary[1] if temporary else None,
                staff_roles=ROLE_OPTIONS)


ACTIONS: dict[str, tuple[str, str, dict[str, bool] | None, str]] = {
    "activate": ("POST", "/activate", None, "The user can sign in again."),
    "deactivate": ("POST", "/deactivate", None, "The user is deactivated: their sessions have ended."),
    "password-reset": ("POST", "/password-reset", None,
                       "The password is reset: hand over the temporary one below."),
    "mfa-reset": ("POST", "/password-reset", {"reset_mfa": True},
                  "Password and two-factor authentication are reset: hand over the temporary password below; "
                  "they enrol an authenticator again at sign-in."),
    "end-sessions": ("DELETE", "/sessions", None, "Every session of this user has ended."),
}


@router.post("/users/{user_id}/role")
async def set_role(request: Request, api: StaffApi, user_id: str, role: Annotated[str, Form()] = "") -> Response:
    try:
        await api.put(f"/v1/admin/users/{user_id}/role", {"role": role})
        api.session.flash(f"The role is now {role}; the user signs in again under it.", "success")
    except ApiError as error:
        api.session.flash(error.detail, "error")
    return RedirectResponse(f"/admin/users/{user_id}", status_code=303)


@router.post("/users/{user_id}/{action}")
async def user_action(request: Request, api: StaffApi, user_id: str, action: str) -> Response:
    if action not in ACTIONS:
        return RedirectResponse(f"/admin/users/{user_id}", status_code=303)
    method, suffix, body, done = ACTIONS[action]
    try:
        if method == "DELETE":
            await api.delete(f"/v1/admin/users/{user_id}{suffix}")
        else:
            answer = await api.post(f"/v1/admin/users/{user_id}{suffix}", body)
            if suffix == "/password-reset":
                api.session.data["temporary_password"] = (answer["user"]["email"], answer["temporary_password"])
        api.session.flash(done, "success")
    except ApiError as error:
        api.session.flash(error.detail, "error")
    return RedirectResponse(f"/admin/users/{user_id}", status_code=303)
