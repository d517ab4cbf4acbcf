"""The caller's own profile and contact details: GET/PATCH /v1/me/profile, POST /v1/me/profile/verify.

Name, date of birth and address change at once. A new email or phone is pending until the code sent to it
(through the outbox, migrations/0008_profile.sql) comes back to /verify; a new email also needs the current
password. Every change is on the audit trail with its before and after masked (core/profile.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, StrictStr

from api.access_models import Email, Password, _Body
from api.deps import Platform, PlatformDep
from api.identity import EmailTaken, User
from api.problems import PROBLEM_JSON, Problem
from api.profile import PROFILE_FIELDS, Channel, Pending, Profile, ProfileStore
from api.routes.auth import _current_user, _reauthenticate, screen_customer
from core.profile import (InvalidContact, check_country, check_date_of_birth, mask_email, mask_phone, mask_text,
                          normalise_phone)

router = APIRouter(prefix="/v1/me", tags=["profile"])
_PROBLEMS = {"content": {PROBLEM_JSON: {}}}

# No control characters: they have no place in a name or an address, and PostgreSQL refuses NUL in text.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Line = Annotated[StrictStr, Field(min_length=1, max_length=100, pattern=PRINTABLE)]
ContactEmail = Annotated[Email, Field(pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")]


class ProfileUpdate(_Body):
    """Only the fields sent change; null clears an optional one."""

    legal_name: Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=PRINTABLE)] | None = None
    date_of_birth: date | None = None
    address_lines: Annotated[list[Line], Field(max_length=4)] | None = None
    postcode: Annotated[StrictStr, Field(min_length=1, max_length=20, pattern=PRINTABLE)] | None = None
    city: Line | None = None
    country: Annotated[StrictStr, Field(description="ISO 3166-1 alpha-2", examples=["DE"])] | None = None
    phone: Annotated[StrictStr, Field(max_length=40, description="international (+49...) or national in the "
                                      "bank's default region; confirmed by a code sent to it")] | None = None
    email: ContactEmail | None = Field(default=None, description="confirmed by a code sent to it; needs current_password")
    current_password: Password | None = None


class PendingView(BaseModel):
    channel: Channel
    value: str
    expires_at: datetime


class ProfileView(BaseModel):
    user_id: str
    email: str
    legal_name: str | None
    date_of_birth: date | None
    address_lines: list[str]
    postcode: str | None
    city: str | None
    country: str | None
    phone: str | None
    pending: list[PendingView] = Field(description="contact changes waiting for their code")
    updated_at: datetime | None


class VerifyRequest(_Body):
    code: Annotated[StrictStr, Field(min_length=1, max_length=16)]


def _invalid(error: InvalidContact) -> Problem:
    field_name = error.detail.split(":", 1)[0]
    return Problem(422, "Invalid request", error.detail, error.reason,
                   errors=[{"loc": ["body", field_name], "type": error.reason, "msg": error.detail}])


def _email_taken() -> Problem:
    return Problem(409, "Email already registered", "another account uses this email", "email_taken")


async def _view(store: ProfileStore, user: User) -> ProfileView:
    profile = await store.get(user.user_id) or Profile()
    pending = [PendingView(channel=p.channel, value=p.new_value, expires_at=p.expires_at)
               for p in await store.pending(user.user_id)]
    return ProfileView(user_id=user.user_id, email=user.email, legal_name=profile.legal_name or user.name,
                       date_of_birth=profile.date_of_birth, address_lines=profile.address_lines,
                       postcode=profile.postcode, city=profile.city, country=profile.country, phone=profile.phone,
                       pending=pending, updated_at=profile.updated_at)


def _masked(name: str, value: Any) -> str:
    if name == "email":
        return str(mask_email(value))
    if name == "phone":
        return str(mask_phone(value))
    if name == "date_of_birth":
        return "****-**-**" if value else "None"
    if name == "address_lines":
        return "|".join(str(mask_text(line)) for line in value or [])
    if name == "country":
        return str(value)   # a country says little about a person, and a change of it matters to compliance
    return str(mask_text(value))


def _validated(body: ProfileUpdate, sent: set[str]) -> dict[str, Any]:
    """The profile fields sent (not email or phone), checked and normalised."""
    changes: dict[str, Any] = {name: getattr(body, name) for name in PROFILE_FIELDS if name in sent}
    try:
        if changes.get("date_of_birth") is not None:
            check_date_of_birth(changes["date_of_birth"], datetime.now(UTC).date())
        if changes.get("country") is not None:
            changes["country"] = check_country(changes["country"])
    except InvalidContact as error:
        raise _invalid(error) from None
    if "address_lines" in changes and changes["address_lines"] is None:
        changes["address_lines"] = []
    if changes.get("legal_name") is not None:
        changes["legal_name"] = changes["legal_name"].strip()
        if not changes["legal_name"]:
            raise Problem(422, "Invalid request", "legal_name: must not be blank", "blank")
    return changes


@router.get("/profile", response_model=ProfileView, name="get_profile", summary="Your profile and contact details")
async def get_profile(platform: PlatformDep) -> ProfileView:
    return await _view(ProfileStore(platform.pg), await _current_user(platform.access))


@router.patch("/profile", response_model=ProfileView, name="update_profile",
              summary="Change your profile; a new email or phone waits for the code sent to it",
              description="Name, date of birth and address change at once. A new `phone` (normalised to E.164) "
                          "or `email` is pending until POST /v1/me/profile/verify with the code sent to it; a new "
                          "email also needs `current_password` (403 `wrong_password`, counted like a failed login). "
                          "An email another account has is 409 `email_taken`.",
              responses={403: _PROBLEMS, 409: _PROBLEMS, 422: _PROBLEMS, 429: _PROBLEMS})
async def update_profile(body: ProfileUpdate, platform: PlatformDep) -> ProfileView:
    access, settings, store = platform.access, platform.settings, ProfileStore(platform.pg)
    user = await _current_user(access)
    sent = body.model_fields_set - {"current_password"}
    changes = _validated(body, sent)
    phone = _new_phone(body, sent, settings.phone_default_region)
    before = await store.get(user.user_id) or Profile()
    email = await _new_email(platform, user, body, sent)
    if "phone" in sent and phone is None and before.phone is not None:
        changes["phone"] = None   # removing a number needs no code: nothing is sent to it
    if changes:
        await store.update(user.user_id, changes)
        await access.audit.record("profile_changed", details=_audit_details(before, user, changes))
        if {"legal_name", "date_of_birth"} & set(changes):   # who the customer is changed: screen them again
            await screen_customer(platform, user, changes.get("legal_name") or before.legal_name or user.name,
                                  "profile_change")
    for channel, value, old in (("phone", phone, before.phone), ("email", email, user.email)):
        if value is not None:
            pending = await store.request_change(user.user_id, channel, value, settings.contact_code_ttl)
            await _record_request(platform, pending, old)
    return await _view(store, user)


def _new_phone(body: ProfileUpdate, sent: set[str], region: str) -> str | None:
    if "phone" not in sent or body.phone is None:
        return None
    try:
        return normalise_phone(body.phone, region)
    except InvalidContact as error:
        raise _invalid(error) from None


async def _new_email(platform: Platform, user: User, body: ProfileUpdate, sent: set[str]) -> str | None:
    if "email" not in sent or body.email is None or body.email.strip() == user.email:
        return None
    if body.current_password is None:
        raise Problem(422, "Invalid request", "current_password: a new email needs your current password",
                      "missing", errors=[{"loc": ["body", "current_password"], "type": "missing",
                                          "msg": "required to change the email"}])
    await _reauthenticate(platform.access, platform.settings, user, body.current_password, "contact_change_failed")
    email = body.email.strip()
    other = await platform.access.users.by_email(email)
    if other is not None and other.user_id != user.user_id:
        await platform.access.audit.record("contact_change_failed", "failure", reason="email_taken",
                                           details={"channel": "email", "after": mask_email(email)})
        raise _email_taken()
    return email


def _audit_details(before: Profile, user: User, changes: dict[str, Any]) -> dict[str, str]:
    details = {"fields": ",".join(sorted(changes))}
    for name, value in changes.items():
        old = getattr(before, name) if name != "legal_name" else (before.legal_name or user.name)
        details[f"{name}_before"] = _masked(name, old)
        details[f"{name}_after"] = _masked(name, value)
    return details


async def _record_request(platform: Platform, pending: Pending, old: str | None) -> None:
    mask = mask_email if pending.channel == "email" else mask_phone
    await platform.access.audit.record("contact_change_requested", details={
        "channel": pending.channel, "before": str(mask(old)), "after": str(mask(pending.new_value))})


@router.post("/profile/verify", response_model=ProfileView, name="verify_contact",
             summary="Confirm a new email or phone with the code sent to it",
             description="A code works once, until it expires; after too many wrong codes the pending change ends "
                         "(ask again with PATCH). 422 `invalid_code`, `code_expired`, `too_many_attempts`; "
                         "409 `no_pending_change`, or `email_taken` when another account took the email since.",
             responses={409: _PROBLEMS, 422: _PROBLEMS, 429: _PROBLEMS})
async def verify_contact(body: VerifyRequest, platform: PlatformDep) -> ProfileView:
    access, store = platform.access, ProfileStore(platform.pg)
    user = await _current_user(access)
    before = await store.get(user.user_id) or Profile()
    try:
        outcome = await store.verify(user.user_id, body.code, platform.settings.contact_code_max_attempts)
    except EmailTaken:
        raise _email_taken() from None
    if outcome.change is None:
        raise await _refused(platform, outcome.reason or "invalid_code", outcome.attempts_left)
    change = outcome.change
    old, mask = (user.email, mask_email) if change.channel == "email" else (before.phone, mask_phone)
    await access.audit.record("contact_change_verified", details={
        "channel": change.channel, "before": str(mask(old)), "after": str(mask(change.new_value))})
    return await _view(store, await _current_user(access))


async def _refused(platform: Platform, reason: str, attempts_left: int) -> Problem:
    await platform.access.audit.record("contact_change_failed", "failure", reason=reason)
    if reason == "no_pending_change":
        return Problem(409, "Nothing to verify", "no email or phone change is waiting for a code", reason)
    details = {"invalid_code": f"the code is wrong ({attempts_left} attempts left)",
               "code_expired": "the code has expired: ask for a new one with PATCH /v1/me/profile",
               "too_many_attempts": "too many wrong codes: ask for a new one with PATCH /v1/me/profile"}
    return Problem(422, "Invalid code", details.get(reason, reason), reason, attempts_left=attempts_left)
