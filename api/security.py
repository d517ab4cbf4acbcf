"""Credentials: argon2id password hashes, signed access tokens (JWT, kid header), opaque refresh tokens, TOTP.

Nothing here logs or returns a secret; callers decide what the one response that must carry one returns.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.identity import Role, password_problems
from core.settings import Settings, get_settings

ALGORITHM = "HS256"
MIN_KEY_LENGTH = 32
TOTP_ISSUER = "bankstream"


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2id at the settings' cost (BANK_PASSWORD_HASH_*), built once per process."""
    settings = get_settings()
    return PasswordHasher(memory_cost=settings.password_hash_memory_kib, time_cost=settings.password_hash_time_cost,
                          parallelism=settings.password_hash_parallelism)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so an unknown email takes as long as a wrong password."""
    return _hasher().hash(secrets.token_urlsafe(16))


# ---------------------------------------------------------------- passwords


async def hash_password(password: str) -> str:
    """argon2id; in a thread, so a hash (tens of milliseconds, 64 MiB) never stalls the event loop."""
    return await asyncio.to_thread(_hasher().hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, stored_hash, password)


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher().verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def temporary_password(email: str, name: str) -> str:
    """A random password that meets the policy, for an admin's reset or a new staff member (used once)."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    while True:
        candidate = "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))
        if not password_problems(candidate, email, name):
            return candidate


# ---------------------------------------------------------------- access tokens


class KeyringError(ValueError):
    """The signing keys in the settings are unusable; the message says how to fix them."""


class TokenError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail   # reason: token_expired | invalid_token


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    role: Role
    customer_id: str | None
    session_id: str
    expires_at: datetime


class Keyring:
    """HS256 keys by kid. The active key signs; every key verifies, so rotation never logs anyone out."""

    def __init__(self, keys: dict[str, str], active_kid: str | None, issuer: str, ttl: timedelta) -> None:
        if not keys:
            raise KeyringError("no signing keys: set BANK_JWT_KEYS to a JSON object of key id -> secret "
                               f"(at least {MIN_KEY_LENGTH} random characters) and BANK_JWT_ACTIVE_KID to one id")
        short = sorted(kid for kid, secret in keys.items() if len(secret) < MIN_KEY_LENGTH)
        if short:
            raise KeyringError(f"signing keys shorter than {MIN_KEY_LENGTH} characters: {', '.join(short)}")
        if active_kid is None and len(keys) == 1:
            active_kid = next(iter(keys))
        if active_kid not in keys:
            raise KeyringError(f"BANK_JWT_ACTIVE_KID {active_kid!r} is not one of BANK_JWT_KEYS' ids "
                               f"({', '.join(sorted(keys))})")
        self._keys, self.active_kid, self.issuer, self.ttl = dict(keys), active_kid, issuer, ttl

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        keys = {kid: secret.get_secret_value() for kid, secret in settings.jwt_keys.items()}
        return cls(keys, settings.jwt_active_kid, settings.jwt_issuer, settings.access_token_ttl)

    def issue(self, *, user_id: str, role: str, customer_id: str | None, session_id: str,
              now: datetime | None = None) -> tuple[str, datetime]:
        now = now or datetime.now(UTC)
        expires = now + self.ttl
        claims: dict[str, Any] = {"iss": self.issuer, "sub": user_id, "role": role, "sid": session_id,
                                  "iat": int(now.timestamp()), "exp": int(expires.timestamp())}
        if customer_id:
            claims["customer_id"] = customer_id
        token = jwt.encode(claims, self._keys[self.active_kid], algorithm=ALGORITHM,
                           headers={"kid": self.active_kid})
        return token, expires

    def verify(self, token: str) -> Claims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise TokenError("invalid_token", "the access token is malformed") from None
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("invalid_token", "the access token was signed with an unknown key; log in again")
        try:
            data = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=self.issuer,
                              options={"require": ["exp", "iat", "sub", "sid", "role"]})
        except jwt.ExpiredSignatureError:
            raise TokenError("token_expired", "the access token has expired; refresh it or log in again") from None
        except jwt.InvalidTokenError:
            raise TokenError("invalid_token", "the access token is invalid; log in again") from None
        return Claims(user_id=str(data["sub"]), role=data["role"], customer_id=data.get("customer_id"),
                      session_id=str(data["sid"]), expires_at=datetime.fromtimestamp(data["exp"], UTC))


# ---------------------------------------------------------------- refresh tokens


def new_refresh_token(session_id: str) -> str:
    """Opaque: the session id (to find it) and 256 random bits. Only its hash is stored."""
    return f"{session_id}.{secrets.token_urlsafe(32)}"


def refresh_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_of_refresh_token(token: str) -> str | None:
    session_id, dot, rest = token.partition(".")
    return session_id if dot and session_id and rest else None


# ---------------------------------------------------------------- TOTP


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def totp_step(secret: str, code: str, now: datetime | None = None) -> int | None:
    """The time step a 6-digit code belongs to, if it is the current one or a neighbour (clock drift of one
    step either way), else None. Callers refuse a step not after the last one used (no replay)."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = now or datetime.now(UTC)
    for drift in (0, -1, 1):
        if secrets.compare_digest(totp.at(now, counter_offset=drift), code):
            return int(totp.timecode(now)) + drift
    return None
