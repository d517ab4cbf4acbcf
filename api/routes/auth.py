"""Each user's own identity: registration, log-in (OAuth2 password flow), refresh, log-out, password, MFA, sessions.

Who may call what is api/authz.py's job; these handlers act for the caller it authenticated.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response

from api.access_models import (MfaCode, MfaSetup, MfaSetupRequest, PasswordChange, PasswordChanged, RecoveryCodes,
                               RefreshRequest, RegisterRequest, SessionList, SessionView, TokenResponse, UserView)
from api.authz import client_of, platform_of, too_many, unauthenticated
from api.customers import CustomerStore, sanctions_list, screen
from api.deps import Access, Platform, PlatformDep
from api.identity import EmailTaken, User, new_customer_id
from api.problems import PROBLEM_JSON, Problem
from api.security import hash_password, new_totp_secret, totp_step, totp_uri, verify_password
from api.sessions import Attempt, Limit
from core.identity import (Principal, current_principal, is_recovery_code, new_recovery_codes, password_problems,
                           recovery_code_hash)
from core.settings import Settings

router = APIRouter(prefix="/v1/auth", tags=["auth"])
log = logging.getLogger(__name__)

_PROBLEMS = {"content": {PROBLEM_JSON: {}}}


async def screen_customer(platform: Platform, user: User, legal_name: str, during: str) -> list[dict[str, Any]]:
    """Sanctions screening of a customer's legal name (at onboarding and on every change of name or date of
    birth), kept with their KYC case; a match is on the audit trail and puts the case in the KYC queue."""
    if user.customer_id is None:
        return []
    hits = screen(sanctions_list(platform.settings.sanctions_file), legal_name)
    await CustomerStore(platform.pg).record_screening(user.customer_id, hits)
    if hits:
        await platform.access.audit.record("sanctions_screening_hit", subject_user_id=user.user_id, details={
            "customer_id": user.customer_id, "during": during, "entries": ",".join(h["uid"] for h in hits)})
    return hits


def user_view(user: User) -> UserView:
    return UserView(user_id=user.user_id, email=user.email, name=user.name, role=user.role,
                    customer_id=user.customer_id, active=user.active, mfa_enabled=user.mfa_enabled,
                    recovery_codes_left=user.recovery_codes_left, must_change_password=user.must_change_password,
                    created_at=user.created_at, updated_at=user.updated_at,
                    password_changed_at=user.password_changed_at)


def caller() -> Principal:
    principal = current_principal()
    assert principal is not None, "api/authz.py authenticates every non-public route"
    return principal


def weak_password(problems: list[str]) -> Problem:
    return Problem(422, "Password too weak", "; ".join(problems), "weak_password", problems=problems)


async def _current_user(access: Access) -> User:
    user = await access.users.by_id(caller().user_id)
    if user is None or not user.active:   # deleted or deactivated since: its sessions are being revoked
        raise unauthenticated("this account is no longer active", "session_revoked")
    return user


# ---------------------------------------------------------------- registration


@router.post("/register", status_code=201, response_model=UserView, name="auth_register",
             summary="Register as a customer (your customer id is in the answer)",
             responses={409: _PROBLEMS, 422: _PROBLEMS})
async def register(body: RegisterRequest, platform: PlatformDep) -> UserView:
    email, name = body.email.strip(), body.name.strip()
    if not name:
        raise Problem(422, "Invalid request", "name: must not be blank", "blank")
    if problems := password_problems(body.password, email, name):
        raise weak_password(problems)
    access = platform.access
    try:
        user = await access.users.create(email=email, name=name, password_hash=await hash_password(body.password),
                                         role="customer", customer_id=new_customer_id())
    except EmailTaken:
        raise Problem(409, "Email already registered", "an account with this email exists: log in, or ask the bank "
                      "to reset its password", "email_taken") from None
    await access.audit.record("user_registered", subject_user_id=user.user_id,
                              details={"role": user.role, "customer_id": user.customer_id})
    await screen_customer(platform, user, name, "registration")
    return user_view(user)


# ---------------------------------------------------------------- tokens


Username = Annotated[str, Form(max_length=254, description="your email")]
PasswordField = Annotated[str, Form(max_length=512, json_schema_extra={"format": "password"})]
Otp = Annotated[str | None, Form(max_length=16, description="with MFA: the 6-digit code, or a recovery code")]
GrantType = Annotated[str | None, Form(pattern="^password$")]


@router.post("/token", response_model=TokenResponse, name="auth_token",
             summary="Log in: OAuth2 password flow (form fields username, password, and otp with MFA)",
             responses={401: _PROBLEMS, 403: _PROBLEMS, 429: _PROBLEMS})
async def token(request: Request, username: Username, password: PasswordField, otp: Otp = None,
                grant_type: GrantType = None) -> TokenResponse:
    platform = platform_of(request)
    access, settings = platform.access, platform.settings
    email = username.strip()
    attempt = await _begin_attempt(access, settings, email, "login_failed")
    user = await access.users.by_email(email)
    if not await verify_password(user.password_hash if user else None, password):
        # Unknown emails are not recorded: people type passwords into the username field.
        await access.audit.record("login_failed", "failure", reason="invalid_credentials",
                                  subject_user_id=user.user_id if user else None)
        await _failed(access, settings, email, attempt)
        raise unauthenticated("wrong email or password", "invalid_credentials")
    assert user is not None
    if not user.active:
        await access.audit.record("login_failed", "denied", reason="account_disabled", subject_user_id=user.user_id)
        raise Problem(403, "Account deactivated", "this account is deactivated: contact the bank", "account_disabled")
    if user.mfa_enabled:
        await _second_factor(request, access, settings, user, otp, attempt)
    await access.store.attempt_succeeded(email)
    return await _open_session(request, access, user)


def _locked(seconds: int) -> Problem:
    problem = Problem(429, "Account locked", f"too many failed logins: this account is locked for {seconds}s",
                      "account_locked", retry_after=seconds)
    problem.headers = {"Retry-After": str(seconds)}
    return problem


async def _begin_attempt(access: Access, settings: Settings, email: str, action: str) -> Attempt:
    """Count a password attempt before verifying it (429 while the account is locked, unverified): however
    many guesses arrive at once, no more than the lock-out threshold of them are ever checked."""
    attempt = await access.store.begin_attempt(email, settings.lockout_threshold, settings.lockout_window,
                                               settings.lockout_duration)
    if attempt.locked_for > 0:
        await access.audit.record(action, "denied", reason="account_locked")
        raise _locked(attempt.locked_for)
    return attempt


async def _failed(access: Access, settings: Settings, email: str, attempt: Attempt) -> None:
    """The attempt was wrong; 429 if it was the last the threshold allows (it locked the account)."""
    locked = await access.store.attempt_failed(email, attempt, settings.lockout_threshold, settings.lockout_duration)
    if locked:
        raise _locked(locked)


async def _reauthenticate(access: Access, settings: Settings, user: User, password: str, action: str) -> None:
    """The current password, for what must outlive a stolen access token (a new password, a second factor).
    Counted and locked out like logins, so a token cannot be used to guess it."""
    attempt = await _begin_attempt(access, settings, user.email, action)
    if not await verify_password(user.password_hash, password):
        await access.audit.record(action, "failure", reason="wrong_password")
        await _failed(access, settings, user.email, attempt)
        raise Problem(403, "Wrong password", "the current password is wrong", "wrong_password")
    await access.store.attempt_succeeded(user.email)


async def _second_factor(request: Request, access: Access, settings: Settings, user: User, otp: str | None,
                         attempt: Attempt) -> None:
    if not otp:
        await access.audit.record("login_failed", "failure", reason="mfa_required", subject_user_id=user.user_id)
        raise unauthenticated("this account uses two-factor authentication: send the code from your authenticator "
                              "app (or a recovery code) in the `otp` field", "mfa_required")
    limit = Limit(access.store.counter("mfa", user.user_id), settings.mfa_rate_limit_per_user,
                  "two-factor attempts of this user")
    if (exceeded := await access.store.hit(client_of(request).ip, [limit])) is not None:
        raise too_many(exceeded, settings.rate_limit_window.total_seconds())
    if is_recovery_code(otp):
        if await access.users.use_recovery_code(user.user_id, recovery_code_hash(otp)):
            await access.audit.record("recovery_code_used", subject_user_id=user.user_id,
                                      details={"left": str(user.recovery_codes_left - 1)})
            return
    else:
        step = totp_step(user.mfa_secret or "", otp)
        if step is not None and await access.users.use_totp_step(user.user_id, step):
            return
    await access.audit.record("mfa_failed", "failure", reason="invalid_otp", subject_user_id=user.user_id)
    await _failed(access, settings, user.email, attempt)
    raise unauthenticated("the code is wrong, expired or already used", "invalid_otp")


async def _open_session(request: Request, access: Access, user: User) -> TokenResponse:
    client = client_of(request)
    session_id, refresh = await access.store.create_session(
        user_id=user.user_id, role=user.role, customer_id=user.customer_id, mfa=user.mfa_enabled,
        must_change_password=user.must_change_password, ip=client.ip, user_agent=client.user_agent)
    principal = Principal(user_id=user.user_id, role=user.role, session_id=session_id, customer_id=user.customer_id,
                          mfa=user.mfa_enabled, must_change_password=user.must_change_password)
    await access.audit.record("login", actor=principal, details={"mfa": str(user.mfa_enabled).lower()})
    return _tokens(access, principal, refresh)


def _tokens(access: Access, principal: Principal, refresh: str) -> TokenResponse:
    access_token, expires = access.keyring.issue(user_id=principal.user_id, role=principal.role,
                                                 customer_id=principal.customer_id, session_id=principal.session_id)
    return TokenResponse(access_token=access_token, expires_in=int((expires - datetime.now(UTC)).total_seconds()),
                         refresh_token=refresh, session_id=principal.session_id, user_id=principal.user_id,
                         role=principal.role, customer_id=principal.customer_id,
                         mfa_enrollment_required=principal.needs_mfa_enrolment(),
                         password_change_required=principal.must_change_password)


@router.post("/refresh", response_model=TokenResponse, name="auth_refresh",
             summary="A new access token and the next refresh token (each refresh token works once)",
             responses={401: _PROBLEMS})
async def refresh(body: RefreshRequest, platform: PlatformDep) -> TokenResponse:
    access = platform.access
    rotation = await access.store.rotate_refresh(body.refresh_token)
    if rotation.outcome == "reused" and rotation.session_id:
        # A rotated token presented again: it was copied. Whoever holds the session now, it ends.
        fields = await access.store.session(rotation.session_id)
        await access.store.revoke(rotation.session_id)
        await access.audit.record("refresh_token_reused", "denied", reason="refresh_token_reused",
                                  subject_user_id=fields["user_id"] if fields else None,
                                  details={"session_id": rotation.session_id})
        raise unauthenticated("this refresh token was already used, so it may have been stolen: the session is "
                              "revoked; log in again", "refresh_token_reused")
    if rotation.outcome != "ok" or rotation.principal is None or rotation.refresh_token is None:
        raise unauthenticated("the refresh token is invalid or its session has ended; log in again",
                              "invalid_refresh_token")
    return _tokens(access, rotation.principal, rotation.refresh_token)


@router.post("/logout", status_code=204, name="auth_logout", summary="End this session (its tokens stop working)")
async def logout(platform: PlatformDep) -> Response:
    principal = caller()
    await platform.access.store.revoke(principal.session_id)
    await platform.access.audit.record("logout")
    return Response(status_code=204)


@router.get("/me", response_model=UserView, name="auth_me", summary="Who you are")
async def me(platform: PlatformDep) -> UserView:
    return user_view(await _current_user(platform.access))


# ---------------------------------------------------------------- password


@router.post("/password", response_model=PasswordChanged, name="change_password",
             summary="Change your password, giving the current one (your other sessions end)",
             description="`current_password` re-authenticates: an access token alone cannot change the password. "
                         "A wrong one is 403 `wrong_password` and counts towards the lock-out like a failed login "
                         "(429 `account_locked`).",
             responses={403: _PROBLEMS, 422: _PROBLEMS, 429: _PROBLEMS})
async def change_password(body: PasswordChange, platform: PlatformDep) -> PasswordChanged:
    access, principal = platform.access, caller()
    user = await _current_user(access)
    await _reauthenticate(access, platform.settings, user, body.current_password, "password_changed")
    problems = password_problems(body.new_password, user.email, user.name)
    if body.new_password == body.current_password:
        problems.append("the new password must differ from the current one")
    if problems:
        raise weak_password(problems)
    updated = await access.users.set_password(user.user_id, await hash_password(body.new_password), False)
    assert updated is not None
    revoked = await access.store.revoke_all(user.user_id, keep=principal.session_id)
    await access.store.update_session(principal.session_id, pwchange="0")
    await access.audit.record("password_changed", details={"other_sessions_revoked": str(len(revoked))})
    return PasswordChanged(password_changed_at=updated.password_changed_at, other_sessions_revoked=len(revoked))


# ---------------------------------------------------------------- MFA


@router.post("/mfa/setup", response_model=MfaSetup, name="mfa_setup",
             summary="Start enrolling an authenticator app (TOTP), giving your password: returns the otpauth URI",
             description="`current_password` re-authenticates: an access token alone cannot put a second factor "
                         "of its holder's on the account. A wrong one is 403 `wrong_password` and counts towards "
                         "the lock-out like a failed login (429 `account_locked`).",
             responses={403: _PROBLEMS, 409: _PROBLEMS, 422: _PROBLEMS, 429: _PROBLEMS})
async def mfa_setup(body: MfaSetupRequest, platform: PlatformDep) -> MfaSetup:
    access = platform.access
    user = await _current_user(access)
    if user.mfa_enabled:
        raise Problem(409, "MFA already enabled", "two-factor authentication is already on for this account",
                      "mfa_already_enabled")
    await _reauthenticate(access, platform.settings, user, body.current_password, "mfa_setup")
    secret = new_totp_secret()
    await access.users.set_pending_mfa(user.user_id, secret)
    await access.audit.record("mfa_setup")
    return MfaSetup(otpauth_uri=totp_uri(secret, user.email))


@router.post("/mfa/verify", response_model=RecoveryCodes, name="mfa_verify",
             summary="Finish enrolling with a code from the app: MFA is on; returns one-time recovery codes",
             responses={409: _PROBLEMS, 422: _PROBLEMS})
async def mfa_verify(body: MfaCode, platform: PlatformDep) -> RecoveryCodes:
    access, principal = platform.access, caller()
    user = await _current_user(access)
    if user.mfa_enabled:
        raise Problem(409, "MFA already enabled", "two-factor authentication is already on for this account",
                      "mfa_already_enabled")
    if not user.mfa_secret:
        raise Problem(409, "MFA not set up", "start with POST /v1/auth/mfa/setup", "mfa_not_set_up")
    step = totp_step(user.mfa_secret, body.code)
    if step is None:
        await access.audit.record("mfa_failed", "failure", reason="invalid_otp", details={"during": "enrolment"})
        raise Problem(422, "Invalid code", "the code does not match: check the app's clock and try the current code",
                      "invalid_otp")
    codes = new_recovery_codes()
    await access.users.enable_mfa(user.user_id, [recovery_code_hash(c) for c in codes], step)
    await access.store.update_session(principal.session_id, mfa="1")   # this session just proved the factor
    await access.audit.record("mfa_enrolled", details={"recovery_codes": str(len(codes))})
    return RecoveryCodes(recovery_codes=codes)


# ---------------------------------------------------------------- sessions


def session_view(fields: dict[str, str], current: str | None = None) -> SessionView:
    return SessionView(session_id=fields["session_id"], device=fields.get("device", ""),
                       user_agent=fields.get("user_agent", ""), ip=fields.get("ip", ""),
                       last_ip=fields.get("last_ip", ""), created_at=datetime.fromisoformat(fields["created_at"]),
                       last_seen_at=datetime.fromisoformat(fields["last_seen_at"]),
                       current=fields["session_id"] == current)


@router.get("/sessions", response_model=SessionList, name="list_sessions", summary="Your sessions, newest first")
async def list_sessions(platform: PlatformDep) -> SessionList:
    principal = caller()
    sessions = await platform.access.store.sessions_of(principal.user_id)
    views = [session_view(s, principal.session_id) for s in sessions]
    return SessionList(items=sorted(views, key=lambda v: v.created_at, reverse=True))


@router.delete("/sessions/{session_id}", status_code=204, name="revoke_session",
               summary="End one of your sessions at once (its access tokens stop working)",
               responses={404: _PROBLEMS})
async def revoke_session(session_id: str, platform: PlatformDep) -> Response:
    principal, access = caller(), platform.access
    fields = await access.store.session(session_id)
    if fields is None or fields.get("user_id") != principal.user_id:
        raise Problem(404, "Unknown session", f"you have no session {session_id}", "unknown_session")
    await access.store.revoke(session_id)
    await access.audit.record("session_revoked", details={"session_id": session_id})
    return Response(status_code=204)

