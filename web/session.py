"""Browser sessions, kept on the server: the browser holds only a random session id in a cookie.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it) and Secure when the
request came over https. The API's tokens stay in this process's memory and never reach the browser, let alone
JavaScript. Sessions are in-process: one web process per API process (`bank up`, the compose service); a restart
signs everyone out, which is the safe failure. A session expires after `idle_timeout` without a request.

A session exists before sign-in too (it carries the CSRF token of the sign-in and register forms); signing in
gives it a new id (no session fixation), signing out drops it.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

COOKIE_NAME = "bank_session"
PENDING_MFA_TTL_S = 300.0    # how long the password step of a sign-in waits for its second factor


@dataclass
class Auth:
    """The API's answer to a sign-in or refresh: tokens and who they are for."""

    access_token: str
    refresh_token: str
    expires_at: float
    api_session_id: str
    user_id: str
    role: str
    customer_id: str | None
    password_change_required: bool = False
    mfa_enrollment_required: bool = False

    @classmethod
    def of(cls, body: dict[str, Any]) -> Auth:
        return cls(access_token=body["access_token"], refresh_token=body["refresh_token"],
                   expires_at=time.time() + float(body["expires_in"]), api_session_id=body["session_id"],
                   user_id=body["user_id"], role=body["role"], customer_id=body.get("customer_id"),
                   password_change_required=bool(body.get("password_change_required")),
                   mfa_enrollment_required=bool(body.get("mfa_enrollment_required")))

    @property
    def staff(self) -> bool:
        return self.role != "customer"


@dataclass
class PendingSignIn:
    """The first step of a sign-in that needs a second factor: kept here, never in the page."""

    email: str
    password: str
    next_url: str
    expires_at: float

    @property
    def expired(self) -> bool:
        return time.time() > self.expires_at


@dataclass
class WebSession:
    id: str
    csrf_token: str
    last_seen: float = field(default_factory=time.time)
    auth: Auth | None = None
    name: str = ""          # the signed-in user's name and email, for the header
    email: str = ""
    pending: PendingSignIn | None = None
    flashes: list[tuple[str, str]] = field(default_factory=list)   # (kind, message) shown once on the next page
    data: dict[str, Any] = field(default_factory=dict)              # per-page scratch (e.g. recovery codes once)
    positions: dict[int, int] = field(default_factory=dict)         # log positions of this session's commands

    def signed_in(self, token_response: dict[str, Any]) -> None:
        self.auth = Auth.of(token_response)
        self.pending = None

    def sign_out(self) -> None:
        self.auth, self.pending, self.name, self.email = None, None, "", ""
        self.data.clear()
        self.positions.clear()

    def flash(self, message: str, kind: str = "info") -> None:
        self.flashes.append((kind, message))

    def take_flashes(self) -> list[tuple[str, str]]:
        flashes, self.flashes = self.flashes, []
        return flashes

    def keep_reviewed(self, prefix: str, key: str, reviewed: dict[str, Any], keep: int) -> None:
        """What a review page showed, under its idempotency key, until it is confirmed; of the reviews never
        confirmed, only the newest `keep` are kept."""
        waiting = [name for name in self.data if name.startswith(prefix)]
        for stale in waiting[:max(0, len(waiting) - keep + 1)]:
            self.data.pop(stale, None)
        self.data[prefix + key] = reviewed


def new_token() -> str:
    return secrets.token_urlsafe(32)


class SessionStore:
    """In-process sessions by id, least recently used first, bounded in number and idle time."""

    def __init__(self, idle_timeout_s: float, max_sessions: int = 100_000) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, WebSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str | None) -> WebSession | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = time.time()
        if now - session.last_seen > self.idle_timeout_s:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        return session

    def create(self) -> WebSession:
        self._expire()
        session = WebSession(id=new_token(), csrf_token=new_token())
        self._sessions[session.id] = session
        return session

    def rotate(self, session: WebSession) -> WebSession:
        """The same session under a new id and CSRF token (at sign-in: an id planted before it is worthless)."""
        self._sessions.pop(session.id, None)
        session.id, session.csrf_token = new_token(), new_token()
        self._sessions[session.id] = session
        return session

    def drop(self, session: WebSession) -> None:
        self._sessions.pop(session.id, None)

    def _expire(self) -> None:
        now = time.time()
        while self._sessions:
            oldest_id, oldest = next(iter(self._sessions.items()))
            if now - oldest.last_seen <= self.idle_timeout_s and len(self._sessions) < self.max_sessions:
                break
            del self._sessions[oldest_id]
