"""Who may act: roles, the password policy, recovery codes and devices. Pure: no I/O, no clock reads.

Hashing (argon2id), tokens and TOTP live in api/security.py; the users table in migrations/0004_identity.sql.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["customer", "teller", "analyst", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
STAFF_ROLES: frozenset[Role] = frozenset({"teller", "analyst", "admin"})

MIN_PASSWORD_LENGTH = 12
# argon2 hashes any length, but a megabyte "password" is a denial of service, not a secret.
MAX_PASSWORD_LENGTH = 128
MIN_DISTINCT_CHARACTERS = 5

# The most common passwords that meet the length rule, and the words people pad to reach it
# ("password1234", "Welcome2024!!"): a password that is one of these, or one of them plus digits and
# punctuation, is refused.
_COMMON = frozenset("""
password passw0rd p@ssword p@ssw0rd letmein welcome qwerty qwertyuiop qwertyuiopasdf asdfghjkl zxcvbnm
iloveyou admin administrator changeme secret monkey dragon football baseball sunshine princess starwars
master trustno1 whatever superman batman shadow michael jennifer hunter2 abc123 abcdef abcdefgh
abcdefghijkl 123456789012 1234567890 12345678 123456 111111111111 000000000000 1q2w3e4r5t6y 1qaz2wsx3edc
qazwsxedc qazwsxedcrfv zaq12wsx bankstream bank banking onlinebanking mybank summer winter spring autumn
correcthorsebatterystaple passwordpassword letmeinletmein
""".split())
_PADDING = re.compile(r"[\d\W_]+$")


class PasswordPolicyError(ValueError):
    """The password breaks the policy; `problems` says every rule it breaks, in words for the user."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def password_problems(password: str, email: str = "", name: str = "") -> list[str]:
    """Every rule of the policy the password breaks (empty: acceptable). Messages never echo the password."""
    problems: list[str] = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"the password must be at most {MAX_PASSWORD_LENGTH} characters long")
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        problems.append(f"the password must use at least {MIN_DISTINCT_CHARACTERS} different characters")
    folded = _fold(password)
    if folded in _COMMON or _PADDING.sub("", folded) in _COMMON or folded[::-1] in _COMMON:
        problems.append("the password is too common: choose one that is not on lists of popular passwords")
    if _contains_identity(folded, email, name):
        problems.append("the password must not contain your email address or your name")
    return problems


def check_password(password: str, email: str = "", name: str = "") -> None:
    problems = password_problems(password, email, name)
    if problems:
        raise PasswordPolicyError(problems)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def normalise_email(email: str) -> str:
    """The one form an email is compared in, everywhere: NFKC, full case folding, NFKC again (folding may
    un-normalise: 'İ' folds to 'i' and a combining dot). So 'STRASSE@x' and 'straße@x', the Kelvin sign and
    'K', fullwidth letters and their ASCII twins are one address. PostgreSQL stores this form (users.email_key)
    and compares it exactly: its lower() folds by the database's locale, which Python cannot match."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email.strip()).casefold())


def _contains_identity(folded: str, email: str, name: str) -> bool:
    """The whole email, its local part, or any part of the name of 3 letters or more."""
    parts = [_fold(email), _fold(email).split("@")[0]] + [p for p in re.split(r"[\s.\-_']+", _fold(name))]
    return any(len(p) >= 3 and p in folded for p in parts if p)


# ---------------------------------------------------------------- recovery codes

RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"   # no 0/o, 1/l/i: read aloud or typed from paper
_RECOVERY_FORMAT = re.compile(r"^[a-z0-9]{5}-?[a-z0-9]{5}$")


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """One-time codes of 10 characters (about 49 bits each), shown to the user once."""
    return ["-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(5)) for _ in range(2))
            for _ in range(count)]


def is_recovery_code(text: str) -> bool:
    return bool(_RECOVERY_FORMAT.match(text.strip().lower()))


def recovery_code_hash(code: str) -> str:
    """What is stored: codes are random, high-entropy and single-use, so a plain SHA-256 suffices (no salt
    or slow hash needed, unlike passwords people choose)."""
    normalised = code.strip().lower().replace("-", "")
    return hashlib.sha256(normalised.encode()).hexdigest()


# ---------------------------------------------------------------- devices

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"))
_SYSTEMS = (("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def device_from_user_agent(user_agent: str | None) -> str:
    """A short human description of the client ("Firefox on Linux", "python-httpx/0.28.1") for the session list."""
    if not user_agent:
        return "unknown device"
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return str(browser or system)
    return user_agent.split(" ")[0][:60]   # a library or app: its product token


# ---------------------------------------------------------------- who is asking


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request, as its session says (the session, not the token, is the
    authority on role and second factor, so a role change or an MFA enrolment applies at once)."""

    user_id: str
    role: Role
    session_id: str
    customer_id: str | None = None
    mfa: bool = False                   # this session was authenticated with a second factor
    must_change_password: bool = False  # logged in with an admin's temporary password

    @property
    def staff(self) -> bool:
        return self.role in STAFF_ROLES

    def needs_mfa_enrolment(self) -> bool:
        """Staff must have MFA: a staff session without it may only enrol (and use its own auth endpoints)."""
        return self.staff and not self.mfa


_PRINCIPAL: ContextVar[Principal | None] = ContextVar("bank_principal", default=None)


def set_current_principal(principal: Principal | None) -> None:
    """Set by the API's auth dependency for each request. Each request runs in its own task (its own copy of
    the context), so the value never leaks into another request."""
    _PRINCIPAL.set(principal)


def current_principal() -> Principal | None:
    return _PRINCIPAL.get()
