"""Request and response bodies of identity and access: registration, tokens, MFA, sessions, user administration,
the audit trail and maintenance mode. Passwords are accepted here and never returned, except a temporary one
from an admin's reset or a new staff account (the one response that must carry it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from core.identity import MAX_PASSWORD_LENGTH, Role

Email = Annotated[StrictStr, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                                   examples=["ada@example.com"])]
Name = Annotated[StrictStr, Field(min_length=1, max_length=100, examples=["Ada Lovelace"])]
# Long enough for any password the policy accepts and a clear policy message; longer is refused unread.
Password = Annotated[StrictStr, Field(min_length=1, max_length=4 * MAX_PASSWORD_LENGTH)]
StaffRole = Literal["teller", "analyst", "admin"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Body):
    email: Email
    password: Password = Field(description="at least 12 characters, not a common password, not your email "
                                           "or name")
    name: Name


class UserView(BaseModel):
    user_id: str
    email: str
    name: str
    role: Role
    customer_id: str | None = Field(description="customers: the id their accounts are opened under")
    active: bool
    mfa_enabled: bool
    recovery_codes_left: int
    must_change_password: bool
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_token: str = Field(description="opaque, single use: POST /v1/auth/refresh returns the next one")
    session_id: str
    user_id: str
    role: Role
    customer_id: str | None
    mfa_enrollment_required: bool = Field(description="staff without MFA: only /v1/auth/* works until enrolled")
    password_change_required: bool = Field(description="temporary password: only /v1/auth/* works until changed")


class RefreshRequest(_Body):
    refresh_token: Annotated[StrictStr, Field(min_length=1, max_length=200)]


class PasswordChange(_Body):
    current_password: Password = Field(description="re-authentication: an access token alone cannot change it")
    new_password: Password


class MfaSetupRequest(_Body):
    current_password: Password = Field(description="re-authentication: an access token alone cannot enrol a "
                                                   "second factor")


class PasswordChanged(BaseModel):
    password_changed_at: datetime
    other_sessions_revoked: int


class MfaSetup(BaseModel):
    otpauth_uri: str = Field(description="scan it into an authenticator app (it holds the secret: shown once)")


class MfaCode(_Body):
    code: Annotated[StrictStr, Field(min_length=6, max_length=12, examples=["123456"])]


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="one-time codes for when the authenticator is lost: shown once")


class SessionView(BaseModel):
    session_id: str
    device: str
    user_agent: str
    ip: str = Field(description="where the session logged in from")
    last_ip: str
    created_at: datetime
    last_seen_at: datetime
    current: bool


class SessionList(BaseModel):
    items: list[SessionView]


# ---------------------------------------------------------------- administration


class CreateStaffRequest(_Body):
    email: Email
    name: Name
    role: StaffRole


class TemporaryPassword(BaseModel):
    user: UserView
    temporary_password: str = Field(description="give it to the user in person; they must change it at first "
                                                 "login (shown once)")


class RoleRequest(_Body):
    role: StaffRole


class PasswordResetRequest(_Body):
    reset_mfa: bool = Field(False, description="also remove their second factor (a lost authenticator): they "
                                               "enrol again at next login")


class UserPage(BaseModel):
    items: list[UserView]
    next_cursor: str | None


class SessionsRevoked(BaseModel):
    revoked: int


class AuditActor(BaseModel):
    user_id: str | None
    role: str | None
    session_id: str | None


class AuditTrailEntry(BaseModel):
    event_id: str
    occurred_at: datetime
    action: str
    outcome: str
    reason: str | None
    actor: AuditActor
    subject_user_id: str | None
    ip: str | None
    user_agent: str | None
    trace_id: str | None
    details: dict[str, str]
    partition: int
    offset: int


class AuditTrailPage(BaseModel):
    items: list[AuditTrailEntry]
    next_cursor: str | None


class MaintenanceRequest(_Body):
    message: Annotated[StrictStr, Field(max_length=200)] | None = Field(
        None, examples=["database upgrade until 02:00 UTC"])
    retry_after: int = Field(300, ge=1, le=86400, description="seconds clients are told to wait (Retry-After)")


class MaintenanceState(BaseModel):
    active: bool
    message: str | None = None
    retry_after: int | None = None
    since: datetime | None = None
    by: str | None = Field(None, description="the admin's user id")
