"""Self-service credentials (issue 18 point 5): a forgotten password by an emailed single-use link, MFA disabled
or re-enrolled with the current password and a code, and the caller's recent sign-ins.

The forgotten-password request always answers 202 with the same body, whether the email has an account or not
(no enumeration). A token is 256 random bits, kept hashed (migrations/0011_kyc.sql `password_resets`), works once,
for BANK_PASSWORD_RESET_TTL; asking again kills the previous one. The email is a row in the outbox, the same one
the profile's codes use: the notification senders deliver it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, StrictStr

from api.access_models import MfaSetup, Password, _Body
from api.audit import TrailQuery
from api.customers import CustomerStore
from api.deps import Access, PlatformDep
from api.identity import User
from api.problems import PROBLEM_JSON, Problem
from api.routes.auth import _current_user, _reauthenticate, caller, weak_password
from api.routes.profile import ContactEmail
from api.security import hash_password, new_totp_secret, totp_step, totp_uri
from core.identity import device_from_user_agent, is_recovery_code, password_problems, recovery_code_hash
from core.kyc import new_reset_token

router = APIRouter(prefix="/v1/auth", tags=["auth"])
_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
SIGN_IN_ACTIONS = ("login", "login_failed")


class ForgotPassword(_Body):
    email: ContactEmail   # no control characters: PostgreSQL refuses NUL in text


class ResetPassword(_Body):
    token: Annotated[StrictStr, Field(min_length=16, max_length=200, description="from the emailed link")]
    new_password: Password


class Accepted(BaseModel):
    detail: str


class MfaChange(_Body):
    current_password: Password = Field(description="re-authentication")
    code: Annotated[StrictStr, Field(min_length=6, max_length=24, description="a code from the authenticator app "
                                     "now enrolled, or a recovery code")]


class MfaDisabled(BaseModel):
    mfa_enabled: bool


class SignIn(BaseModel):
    at: datetime
    success: bool
    reason: str | None = Field(description="why a failed one failed (invalid_credentials, mfa_required, ...)")
    device: str
    ip: str | None


class SignIns(BaseModel):
    items: list[SignIn]


_SENT = "if an account has this email, a link to choose a new password is on its way"


@router.post("/password/forgot", status_code=202, response_model=Accepted, name="forgot_password",
             summary="Forgotten password: email a single-use link (the answer is the same for any email)",
             responses={422: _PROBLEMS, 429: _PROBLEMS})
async def forgot_password(body: ForgotPassword, platform: PlatformDep) -> Accepted:
    access, settings = platform.access, platform.settings
    user = await access.users.by_email(body.email.strip())
    if user is None or not user.active:
        return Accepted(detail=_SENT)   # nothing recorded: people type all sorts into this field
    token = new_reset_token()
    link = f"{settings.password_reset_url}?{urlencode({'token': token})}"
    minutes = int(settings.password_reset_ttl.total_seconds() // 60)
    text = (f"Someone (we hope you) asked to reset the password of your bankstream account. Choose a new one "
            f"here: {link} . The link works once, for {minutes} minutes. If it was not you, ignore this message: "
            f"your password stays as it is.")
    await CustomerStore(platform.pg).issue_reset(user.user_id, token, settings.password_reset_ttl, user.email, text)
    await access.audit.record("password_reset_requested", subject_user_id=user.user_id)
    return Accepted(detail=_SENT)


@router.post("/password/reset", response_model=Accepted, name="reset_forgotten_password",
             summary="Choose a new password with the emailed token (once; every session ends)",
             description="422 `invalid_token` for a token that is unknown, used or expired (the same answer for "
                         "all three); 422 `weak_password` leaves the token usable.",
             responses={422: _PROBLEMS, 429: _PROBLEMS})
async def reset_forgotten_password(body: ResetPassword, platform: PlatformDep) -> Accepted:
    access, store = platform.access, CustomerStore(platform.pg)
    user = await _holder(access, store, body.token)
    if problems := password_problems(body.new_password, user.email, user.name):
        raise weak_password(problems)
    if await store.use_reset(body.token) is None:   # consumed by a concurrent request meanwhile
        raise _invalid_token()
    await access.users.set_password(user.user_id, await hash_password(body.new_password), must_change=False)
    revoked = await access.store.revoke_all(user.user_id)
    await access.store.unlock(user.email)
    await access.audit.record("password_reset_by_email", subject_user_id=user.user_id,
                              details={"sessions_revoked": str(len(revoked))})
    return Accepted(detail="your password is changed: log in with it")


def _invalid_token() -> Problem:
    return Problem(422, "Invalid token", "this link is unknown, used or expired: ask for a new one",
                   "invalid_token")


async def _holder(access: Access, store: CustomerStore, token: str) -> User:
    """The user a live token belongs to, without consuming it (a weak new password must not waste the link)."""
    user_id = await store.reset_holder(token)
    user = await access.users.by_id(user_id) if user_id else None
    if user is None or not user.active:
        await access.audit.record("password_reset_by_email", "failure", reason="invalid_token")
        raise _invalid_token()
    return user


# ---------------------------------------------------------------- MFA


async def _prove_factor(access: Access, user: User, code: str) -> None:
    """A code of the factor now enrolled (TOTP, not replayed) or a recovery code (consumed)."""
    if is_recovery_code(code):
        if await access.users.use_recovery_code(user.user_id, recovery_code_hash(code)):
            return
    else:
        step = totp_step(user.mfa_secret or "", code)
        if step is not None and await access.users.use_totp_step(user.user_id, step):
            return
    await access.audit.record("mfa_failed", "failure", reason="invalid_otp", details={"during": "mfa_change"})
    raise Problem(422, "Invalid code", "the code is wrong, expired or already used", "invalid_otp")


async def _mfa_user(platform: PlatformDep, body: MfaChange, action: str) -> User:
    access = platform.access
    user = await _current_user(access)
    if not user.mfa_enabled:
        raise Problem(409, "MFA not enabled", "two-factor authentication is not on for this account", "mfa_not_enabled")
    await _reauthenticate(access, platform.settings, user, body.current_password, action)
    await _prove_factor(access, user, body.code)
    return user


@router.post("/mfa/disable", response_model=MfaDisabled, name="mfa_disable",
             summary="Turn two-factor authentication off, with your password and a code",
             description="Staff must keep a second factor (409 `mfa_required`): they re-enrol instead.",
             responses={403: _PROBLEMS, 409: _PROBLEMS, 422: _PROBLEMS, 429: _PROBLEMS})
async def mfa_disable(body: MfaChange, platform: PlatformDep) -> MfaDisabled:
    if caller().staff:
        raise Problem(409, "MFA required", "staff accounts must keep two-factor authentication; re-enrol a new "
                      "authenticator with POST /v1/auth/mfa/reenrol", "mfa_required")
    user = await _mfa_user(platform, body, "mfa_disabled")
    await platform.access.users.reset_mfa(user.user_id)
    await platform.access.audit.record("mfa_disabled")
    return MfaDisabled(mfa_enabled=False)


@router.post("/mfa/reenrol", response_model=MfaSetup, name="mfa_reenrol",
             summary="Replace your authenticator: with your password and a code, a new secret to confirm",
             description="The old factor stops at once and the answer carries the new `otpauth://` URI; "
                         "POST /v1/auth/mfa/verify with a code of the new one turns MFA on again with new "
                         "recovery codes.",
             responses={403: _PROBLEMS, 409: _PROBLEMS, 422: _PROBLEMS, 429: _PROBLEMS})
async def mfa_reenrol(body: MfaChange, platform: PlatformDep) -> MfaSetup:
    access = platform.access
    user = await _mfa_user(platform, body, "mfa_reenrolled")
    await access.users.reset_mfa(user.user_id)
    secret = new_totp_secret()
    await access.users.set_pending_mfa(user.user_id, secret)
    await access.audit.record("mfa_reenrolment_started")
    return MfaSetup(otpauth_uri=totp_uri(secret, user.email))


# ---------------------------------------------------------------- sign-ins


def _sign_in(document: dict[str, Any]) -> SignIn:
    return SignIn(at=document["occurred_at"], success=document.get("action") == "login",
                  reason=document.get("reason"), device=device_from_user_agent(document.get("user_agent")),
                  ip=document.get("ip"))


@router.get("/sign-ins", response_model=SignIns, name="list_sign_ins",
            summary="Your recent sign-ins, newest first: time, device, IP, success",
            description="From the audit trail (eventually consistent: a sign-in shows within moments).")
async def list_sign_ins(platform: PlatformDep,
                        limit: Annotated[int, Query(ge=1, le=100)] = 20) -> SignIns:
    query = TrailQuery(user_id=caller().user_id, actions=SIGN_IN_ACTIONS)
    documents = await platform.access.trail.search(query, None, limit)
    return SignIns(items=[_sign_in(d) for d in documents])

