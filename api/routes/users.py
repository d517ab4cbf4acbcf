"""User administration (admins; analysts may read): search, staff accounts, roles, activation, password resets.

Every change is on the audit trail. A role change, a deactivation or a reset ends the user's sessions at once,
so nobody keeps acting under a role or a password that is gone. Customers stay customers and staff stay staff
(a role change moves between staff roles only): a person who is both has two accounts.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.access_models import (CreateStaffRequest, PasswordResetRequest, RoleRequest, SessionsRevoked,
                               TemporaryPassword, UserPage, UserView)
from api.deps import Access, PlatformDep, utc_moment
from api.identity import EmailTaken, User, UserQuery
from api.problems import PROBLEM_JSON, Problem
from api.routes.auth import caller, user_view
from api.security import hash_password, temporary_password
from core.identity import STAFF_ROLES, Role

router = APIRouter(prefix="/v1/admin/users", tags=["admin: users"])

_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
_NOT_FOUND = {404: _PROBLEMS}


def _unknown_user(user_id: str) -> Problem:
    return Problem(404, "Unknown user", f"no user {user_id}", "unknown_user")


async def _user(access: Access, user_id: str) -> User:
    user = await access.users.by_id(user_id)
    if user is None:
        raise _unknown_user(user_id)
    return user


def _not_yourself(user: User, what: str) -> None:
    """An admin cannot lock themselves out (the last admin would leave the bank without one)."""
    if user.user_id == caller().user_id:
        raise Problem(409, "Not on your own account", f"you cannot {what} your own account; ask another admin",
                      "own_account")


def _encode_cursor(user: User) -> str:
    raw = json.dumps({"at": user.created_at.isoformat(), "id": user.user_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return utc_moment(datetime.fromisoformat(data["at"])), str(uuid.UUID(data["id"]))
    except (ValueError, KeyError, TypeError):
        raise Problem(400, "Invalid cursor", "cursor is not one this API returned", "invalid_cursor") from None


@router.get("", response_model=UserPage, name="list_users", summary="Search users, newest first")
async def list_users(platform: PlatformDep,
                     q: Annotated[str | None, Query(max_length=100, description="in the email or name")] = None,
                     role: Role | None = None, active: bool | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
                     ) -> UserPage:
    after = _decode_cursor(cursor) if cursor else None
    users = await platform.access.users.search(UserQuery(text=q, role=role, active=active), after, limit + 1)
    more = len(users) > limit
    users = users[:limit]
    return UserPage(items=[user_view(u) for u in users], next_cursor=_encode_cursor(users[-1]) if more else None)


@router.get("/{user_id}", response_model=UserView, name="get_user", summary="One user", responses=_NOT_FOUND)
async def get_user(user_id: str, platform: PlatformDep) -> UserView:
    return user_view(await _user(platform.access, user_id))


@router.post("", status_code=201, response_model=TemporaryPassword, name="create_user",
             summary="Create a staff account: a temporary password to hand over, changed at first login",
             responses={409: _PROBLEMS})
async def create_user(body: CreateStaffRequest, platform: PlatformDep) -> TemporaryPassword:
    access = platform.access
    email, name = body.email.strip(), body.name.strip()
    if not name:
        raise Problem(422, "Invalid request", "name: must not be blank", "blank")
    password = temporary_password(email, name)
    try:
        user = await access.users.create(email=email, name=name, password_hash=await hash_password(password),
                                         role=body.role, must_change_password=True)
    except EmailTaken:
        raise Problem(409, "Email already registered", "an account with this email exists", "email_taken") from None
    await access.audit.record("user_created", subject_user_id=user.user_id, details={"role": user.role})
    return TemporaryPassword(user=user_view(user), temporary_password=password)


@router.put("/{user_id}/role", response_model=UserView, name="set_role",
            summary="Assign a staff role (the user's sessions end: they log in again under the new role)",
            responses=_NOT_FOUND | {409: _PROBLEMS})
async def set_role(user_id: str, body: RoleRequest, platform: PlatformDep) -> UserView:
    access = platform.access
    user = await _user(access, user_id)
    _not_yourself(user, "change the role of")
    if user.role not in STAFF_ROLES:
        raise Problem(409, "Role change not allowed", "customers cannot be given a staff role: staff get an account "
                      "of their own (POST /v1/admin/users)", "role_change_not_allowed")
    updated = await access.users.set_role(user.user_id, body.role)
    assert updated is not None
    if updated.role != user.role:
        await access.store.revoke_all(user.user_id)
    await access.audit.record("role_changed", subject_user_id=user.user_id,
                              details={"from": user.role, "to": updated.role})
    return user_view(updated)


async def _set_active(platform: PlatformDep, user_id: str, active: bool) -> UserView:
    access = platform.access
    user = await _user(access, user_id)
    if not active:
        _not_yourself(user, "deactivate")
    updated = await access.users.set_active(user.user_id, active)
    assert updated is not None
    if not active:
        await access.store.revoke_all(user.user_id)
    await access.audit.record("user_activated" if active else "user_deactivated", subject_user_id=user.user_id)
    return user_view(updated)


@router.post("/{user_id}/activate", response_model=UserView, name="activate_user", summary="Let a user log in again",
             responses=_NOT_FOUND)
async def activate_user(user_id: str, platform: PlatformDep) -> UserView:
    return await _set_active(platform, user_id, True)


@router.post("/{user_id}/deactivate", response_model=UserView, name="deactivate_user",
             summary="Stop a user from logging in (their sessions end at once)", responses=_NOT_FOUND | {409: _PROBLEMS})
async def deactivate_user(user_id: str, platform: PlatformDep) -> UserView:
    return await _set_active(platform, user_id, False)


@router.post("/{user_id}/password-reset", response_model=TemporaryPassword, name="reset_password",
             summary="Reset a password: a one-time temporary password to hand over; the user must change it at "
                     "next login (their sessions end, a lock-out is lifted)", responses=_NOT_FOUND | {409: _PROBLEMS})
async def reset_password(user_id: str, platform: PlatformDep, body: PasswordResetRequest | None = None) -> TemporaryPassword:
    access, body = platform.access, body or PasswordResetRequest()
    user = await _user(access, user_id)
    _not_yourself(user, "reset the password of")
    password = temporary_password(user.email, user.name)
    updated = await access.users.set_password(user.user_id, await hash_password(password), must_change=True)
    if body.reset_mfa:
        updated = await access.users.reset_mfa(user.user_id)
    assert updated is not None
    await access.store.revoke_all(user.user_id)
    await access.store.unlock(user.email)
    await access.audit.record("password_reset", subject_user_id=user.user_id,
                              details={"mfa_reset": str(body.reset_mfa).lower()})
    return TemporaryPassword(user=user_view(updated), temporary_password=password)


@router.delete("/{user_id}/sessions", response_model=SessionsRevoked, name="revoke_user_sessions",
               summary="End every session of a user at once", responses=_NOT_FOUND)
async def revoke_user_sessions(user_id: str, platform: PlatformDep) -> SessionsRevoked:
    access = platform.access
    user = await _user(access, user_id)
    revoked = await access.store.revoke_all(user.user_id)
    await access.audit.record("session_revoked", subject_user_id=user.user_id, details={"sessions": str(len(revoked))})
    return SessionsRevoked(revoked=len(revoked))
