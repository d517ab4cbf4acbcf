"""Sessions, rate limits, lock-outs and the maintenance flag, in Redis (keys under `bank:auth:`).

A session is a hash `bank:auth:session:<sid>` (user, role, second factor, device, IP, created, last seen, the
hash of its current refresh token) that lives `session_ttl` after its last refresh. Every authenticated request
checks, in one round trip (a Lua script), that its session still exists (and marks it seen), counts itself
against the rate limits and reads the maintenance flag: deleting the hash revokes the session's access tokens
at once. Refresh tokens rotate on every use; the hashes of rotated ones are kept, so presenting one again is
recognised as theft and revokes the whole session.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from redis.asyncio import Redis

from core.identity import Principal, device_from_user_agent, normalise_email
from api.security import new_refresh_token, refresh_token_hash, session_of_refresh_token

PREFIX = "bank:auth:"
MAINTENANCE_KEY = "bank:maintenance"
_FIELDS = ("user_id", "role", "customer_id", "mfa", "pwchange")

# Check (and touch) a session, count the request against each limit, read the maintenance flag: one round trip.
# KEYS: session (or "" for none), maintenance flag, counters...; ARGV: now, ip, window seconds.
_REQUEST = """
local out = {false, redis.call('GET', KEYS[2])}
if KEYS[1] ~= '' then
  local s = redis.call('HMGET', KEYS[1], 'user_id', 'role', 'customer_id', 'mfa', 'pwchange')
  if s[1] then
    redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[1], 'last_ip', ARGV[2])
    out[1] = s
  end
end
for i = 3, #KEYS do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('EXPIRE', KEYS[i], ARGV[3]) end
  out[#out + 1] = n
  out[#out + 1] = redis.call('TTL', KEYS[i])
end
return out
"""

# Rotate a refresh token if it is the session's current one. KEYS: session, used-token set;
# ARGV: presented hash, new hash, session ttl. Returns ok | reused | invalid | missing.
_ROTATE = """
local current = redis.call('HGET', KEYS[1], 'refresh')
if not current then return 'missing' end
if current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'refresh', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return 'ok'
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 'reused' end
return 'invalid'
"""

# Set fields of a session only if it still exists (HSET alone would resurrect a revoked one).
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], unpack(ARGV)) return 1 end
return 0
"""

# Start a password (or second-factor) attempt on an account, before anything is verified: refused while the
# account is locked; otherwise counted at once, so parallel guesses cannot all be verified while a count lags
# behind. An attempt past the threshold locks the account. KEYS: attempts, lock; ARGV: window, threshold, lock
# seconds. Returns {the lock's remaining seconds (0: go ahead), the attempt's number in the window}.
_ATTEMPT = """
local locked = redis.call('TTL', KEYS[2])
if locked > 0 then return {locked, 0} end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return {tonumber(ARGV[3]), n}
end
return {0, n}
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Limit:
    """A fixed-window counter: `key` may be hit `limit` times per window."""

    key: str
    limit: int
    scope: str          # what is limited, for the message: "requests from this IP", "login attempts", ...


@dataclass(frozen=True, slots=True)
class Exceeded:
    limit: Limit
    retry_after: int     # seconds until the window ends


@dataclass(frozen=True, slots=True)
class RequestCheck:
    principal: Principal | None         # None: the session is gone (revoked, expired, logged out)
    exceeded: Exceeded | None
    maintenance: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """A password attempt, counted before it is verified."""

    locked_for: int      # seconds the account stays locked: the attempt is refused unverified (0: go ahead)
    number: int          # its place among the attempts of the lock-out window (the threshold-th locks on failure)


@dataclass(frozen=True, slots=True)
class Rotation:
    outcome: Literal["ok", "reused", "invalid", "missing"]
    session_id: str | None
    refresh_token: str | None = None
    principal: Principal | None = None


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class AuthStore:
    """Everything of identity and access that lives in Redis."""

    def __init__(self, redis: Redis, session_ttl: timedelta, window: timedelta) -> None:
        self._redis = redis
        self._session_ttl = int(session_ttl.total_seconds())
        self._window = max(1, int(window.total_seconds()))
        self._request = redis.register_script(_REQUEST)
        self._rotate = redis.register_script(_ROTATE)
        self._attempt = redis.register_script(_ATTEMPT)
        self._update = redis.register_script(_UPDATE)

    # ---- keys

    @staticmethod
    def session_key(session_id: str) -> str:
        return f"{PREFIX}session:{session_id}"

    @staticmethod
    def _used_key(session_id: str) -> str:
        return f"{PREFIX}session:{session_id}:used-refresh"

    @staticmethod
    def _user_key(user_id: str) -> str:
        return f"{PREFIX}user-sessions:{user_id}"

    @staticmethod
    def counter(bucket: str, identity: str) -> str:
        return f"{PREFIX}rl:{bucket}:{identity}"

    @staticmethod
    def _account_key(kind: str, email: str) -> str:
        # Hashed: no email addresses in the keyspace. Keyed by the email as typed, normalised as the users table
        # compares it (so no spelling of one address gets attempts of its own), not by user: unknown and known
        # emails lock alike and lock-outs reveal nothing about who has an account.
        return f"{PREFIX}{kind}:{hashlib.sha256(normalise_email(email).encode()).hexdigest()[:32]}"

    # ---- the per-request check

    async def check(self, session_id: str | None, ip: str, limits: list[Limit]) -> RequestCheck:
        keys = [self.session_key(session_id) if session_id else "", MAINTENANCE_KEY, *(x.key for x in limits)]
        result = await self._request(keys=keys, args=[_now(), ip, self._window])
        principal = None
        if session_id and result[0]:
            user_id, role, customer_id, mfa, pwchange = (_text(v) for v in result[0])
            if user_id and role:
                principal = Principal(user_id=user_id, role=role, session_id=session_id,  # type: ignore[arg-type]
                                      customer_id=customer_id or None, mfa=mfa == "1",
                                      must_change_password=pwchange == "1")
        exceeded = None
        for i, limit in enumerate(limits):
            count, ttl = int(result[2 + 2 * i]), int(result[3 + 2 * i])
            if count > limit.limit and exceeded is None:
                exceeded = Exceeded(limit, max(1, ttl))
        flag = _text(result[1])
        return RequestCheck(principal, exceeded, json.loads(flag) if flag else None)

    # ---- sessions

    async def create_session(self, *, user_id: str, role: str, customer_id: str | None, mfa: bool,
                             must_change_password: bool, ip: str, user_agent: str | None) -> tuple[str, str]:
        """A new session; returns its id and its first refresh token."""
        session_id = secrets.token_urlsafe(16)
        refresh = new_refresh_token(session_id)
        now = _now()
        fields = {"user_id": user_id, "role": role, "customer_id": customer_id or "", "mfa": "1" if mfa else "0",
                  "pwchange": "1" if must_change_password else "0", "created_at": now, "last_seen_at": now,
                  "ip": ip, "last_ip": ip, "user_agent": (user_agent or "")[:300],
                  "device": device_from_user_agent(user_agent), "refresh": refresh_token_hash(refresh)}
        key, users = self.session_key(session_id), self._user_key(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self._session_ttl)
            pipe.sadd(users, session_id)
            pipe.expire(users, self._session_ttl)
            await pipe.execute()
        return session_id, refresh

    async def rotate_refresh(self, token: str) -> Rotation:
        session_id = session_of_refresh_token(token)
        if session_id is None:
            return Rotation("invalid", None)
        new = new_refresh_token(session_id)
        outcome = _text(await self._rotate(keys=[self.session_key(session_id), self._used_key(session_id)],
                                           args=[refresh_token_hash(token), refresh_token_hash(new),
                                                 self._session_ttl]))
        if outcome != "ok":
            return Rotation(outcome, session_id)  # type: ignore[arg-type]
        fields = await self.session(session_id)
        if fields is None:   # revoked between the two calls
            return Rotation("missing", session_id)
        await self._redis.expire(self._user_key(fields["user_id"]), self._session_ttl)
        principal = Principal(user_id=fields["user_id"], role=fields["role"], session_id=session_id,  # type: ignore
                              customer_id=fields["customer_id"] or None, mfa=fields["mfa"] == "1",
                              must_change_password=fields["pwchange"] == "1")
        return Rotation("ok", session_id, new, principal)

    async def session(self, session_id: str) -> dict[str, str] | None:
        raw = await self._redis.hgetall(self.session_key(session_id))
        return {_text(k) or "": _text(v) or "" for k, v in raw.items()} if raw else None

    async def sessions_of(self, user_id: str) -> list[dict[str, str]]:
        """The user's live sessions (expired ones are dropped from the index on the way)."""
        ids = sorted(_text(s) or "" for s in await self._redis.smembers(self._user_key(user_id)))
        found = []
        for session_id in ids:
            fields = await self.session(session_id)
            if fields is None or fields.get("user_id") != user_id:
                await self._redis.srem(self._user_key(user_id), session_id)
                continue
            found.append(fields | {"session_id": session_id})
        return found

    async def revoke(self, session_id: str) -> str | None:
        """Delete a session at once; returns its user id (None if it did not exist)."""
        fields = await self.session(session_id)
        if fields is None:
            return None
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.session_key(session_id), self._used_key(session_id))
            pipe.srem(self._user_key(fields["user_id"]), session_id)
            await pipe.execute()
        return fields["user_id"]

    async def revoke_all(self, user_id: str, keep: str | None = None) -> list[str]:
        """Revoke every session of a user (except `keep`); returns the ids revoked."""
        revoked = []
        for session_id in [_text(s) or "" for s in await self._redis.smembers(self._user_key(user_id))]:
            if session_id != keep and await self.revoke(session_id):
                revoked.append(session_id)
            elif session_id != keep:
                await self._redis.srem(self._user_key(user_id), session_id)
        return revoked

    async def update_session(self, session_id: str, **fields: str) -> None:
        """Change fields of a live session (never re-creates a revoked one)."""
        await self._update(keys=[self.session_key(session_id)], args=[x for kv in fields.items() for x in kv])

    # ---- rate limits outside a session, lock-outs

    async def hit(self, ip: str, limits: list[Limit]) -> Exceeded | None:
        return (await self.check(None, ip, limits)).exceeded

    async def begin_attempt(self, email: str, threshold: int, window: timedelta, duration: timedelta) -> Attempt:
        """Count a password attempt on the account of this email before it is verified (see _ATTEMPT)."""
        locked, number = await self._attempt(
            keys=[self._account_key("attempts", email), self._account_key("lock", email)],
            args=[int(window.total_seconds()), threshold, int(duration.total_seconds())])
        return Attempt(int(locked), int(number))

    async def attempt_failed(self, email: str, attempt: Attempt, threshold: int, duration: timedelta) -> int:
        """The attempt was wrong (it is counted already); returns the lock's seconds if it locked the account."""
        if attempt.number < threshold:
            return 0
        seconds = int(duration.total_seconds())
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._account_key("lock", email), "1", ex=seconds)
            pipe.delete(self._account_key("attempts", email))
            await pipe.execute()
        return seconds

    async def attempt_succeeded(self, email: str) -> None:
        await self._redis.delete(self._account_key("attempts", email))

    async def unlock(self, email: str) -> None:
        await self._redis.delete(self._account_key("attempts", email), self._account_key("lock", email))

    # ---- maintenance

    async def maintenance(self) -> dict[str, Any] | None:
        raw = await self._redis.get(MAINTENANCE_KEY)
        return json.loads(raw) if raw else None

    async def start_maintenance(self, state: dict[str, Any]) -> None:
        await self._redis.set(MAINTENANCE_KEY, json.dumps(state))

    async def end_maintenance(self) -> bool:
        return bool(await self._redis.delete(MAINTENANCE_KEY))
