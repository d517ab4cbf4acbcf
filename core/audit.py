"""The audit trail of people's actions (bank.audit), and the actor who travels with commands into events.

Every authentication event (logins, second factors, logouts, refresh-token reuse, revocations, password and
role changes, activations, maintenance) and every command submitted through the API is one AuditRecorded
record on bank.audit, keyed by the actor's user id. It never holds a password, a token or a TOTP secret.

The actor of a command (user id, role, session id) rides the Kafka header ACTOR_HEADER from the API onto the
command, through the risk agent, and the ledger copies it onto the command's events (like the trace id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from core.identity import current_principal

ACTOR_HEADER = "bank.actor"

Outcome = Literal["success", "failure", "denied"]


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: str
    role: str
    session_id: str

    def header(self) -> bytes:
        return json.dumps({"user_id": self.user_id, "role": self.role, "session_id": self.session_id},
                          separators=(",", ":")).encode()


def current_actor() -> Actor | None:
    """The authenticated caller of the current request (set by the API's auth dependency), as an actor."""
    principal = current_principal()
    return Actor(principal.user_id, principal.role, principal.session_id) if principal else None


def actor_header() -> list[tuple[str, bytes]]:
    """The Kafka header naming the current actor (none outside an authenticated request)."""
    actor = current_actor()
    return [(ACTOR_HEADER, actor.header())] if actor else []


def parse_actor(raw: bytes | None) -> Actor | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return Actor(str(data["user_id"]), str(data["role"]), str(data["session_id"]))
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecorded:
    """One action of a person (or an attempt at one) on bank.audit."""

    event_id: str
    occurred_at: datetime
    action: str                       # login, login_failed, mfa_enrolled, command_submitted, ... (AUDIT_ACTIONS)
    outcome: str                      # success | failure | denied
    reason: str | None                # why it failed or was denied (invalid_password, account_locked, ...)
    actor_user_id: str | None         # who acted (none: an anonymous or unknown caller)
    actor_role: str | None
    actor_session_id: str | None
    subject_user_id: str | None       # whom it concerned, when not the actor (an admin's role change)
    ip: str | None
    user_agent: str | None
    trace_id: str | None
    details: dict[str, str] = field(default_factory=dict)   # never a secret: ids, types, roles, names
    schema_version: int = 1


AUDIT_ACTIONS = (
    "user_registered", "user_created", "login", "login_failed", "mfa_setup", "mfa_enrolled", "mfa_failed",
    "recovery_code_used", "token_refreshed", "refresh_token_reused", "logout", "session_revoked",
    "password_changed", "password_reset", "role_changed", "user_activated", "user_deactivated",
    "maintenance_started", "maintenance_ended", "command_submitted", "clock_moved",
    "fx_rates_set",
    "payee_added", "payee_changed", "payee_removed",
    "standing_order_created", "standing_order_edited", "standing_order_paused", "standing_order_resumed",
    "standing_order_cancelled",
    # profiles (api/routes/profile.py): before/after are masked
    "profile_changed", "contact_change_requested", "contact_change_verified", "contact_change_failed",
)

AUDIT_TYPES: dict[str, type] = {"AuditRecorded": AuditRecorded}


# ---------------------------------------------------------------- the MongoDB audit trail

# In the read models' database (core.readmodel.MONGO_DB), beside the ledger's generations: it is folded from
# bank.audit, not from the ledger, so ledger rebuilds never touch it.
AUDIT_TRAIL_COLLECTION = "audit_trail"
AUDIT_TRAIL_GROUP = "bankstream-audit-trail"   # the consumer group that folds bank.audit into it
AUDIT_TRAIL_INDEXES = (("occurred_at", "_id"), ("actor.user_id", "occurred_at", "_id"),
                       ("subject_user_id", "occurred_at", "_id"), ("action", "occurred_at", "_id"))


def audit_document(record: AuditRecorded, partition: int, offset: int) -> dict[str, object]:
    """The record as stored: keyed by its event id, so storing it twice changes nothing."""
    return {"_id": record.event_id, "occurred_at": record.occurred_at, "action": record.action,
            "outcome": record.outcome, "reason": record.reason,
            "actor": {"user_id": record.actor_user_id, "role": record.actor_role,
                      "session_id": record.actor_session_id},
            "subject_user_id": record.subject_user_id, "ip": record.ip, "user_agent": record.user_agent,
            "trace_id": record.trace_id, "details": dict(record.details), "partition": partition, "offset": offset}
