"""The audit trail of people's actions (MongoDB, folded from bank.audit) and maintenance mode (a flag in Redis).

Maintenance mode pauses commands, not queries: api/authz.py answers every command route 503 with Retry-After
while the flag is set, in the same Redis round trip that checks the session.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.access_models import (AuditActor, AuditTrailEntry, AuditTrailPage, MaintenanceRequest, MaintenanceState)
from api.audit import TrailQuery
from api.deps import PlatformDep, utc_moment
from api.problems import Problem
from api.routes.auth import caller

router = APIRouter(prefix="/v1/admin", tags=["admin: operations"])

Since = Annotated[datetime | date | None, Query(alias="from", description="inclusive, ISO 8601 date or datetime")]
Until = Annotated[datetime | date | None, Query(alias="to", description="exclusive, ISO 8601 date or datetime")]


def _encode_cursor(doc: dict[str, Any]) -> str:
    raw = json.dumps({"at": utc_moment(doc["occurred_at"]).isoformat(), "id": doc["_id"]})  # type: ignore[union-attr]
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return utc_moment(datetime.fromisoformat(data["at"])), str(data["id"])  # type: ignore[return-value]
    except (ValueError, KeyError, TypeError):
        raise Problem(400, "Invalid cursor", "cursor is not one this API returned", "invalid_cursor") from None


def _entry(doc: dict[str, Any]) -> AuditTrailEntry:
    actor = doc.get("actor") or {}
    return AuditTrailEntry(event_id=doc["_id"], occurred_at=utc_moment(doc["occurred_at"]), action=doc["action"],
                           outcome=doc["outcome"], reason=doc.get("reason"),
                           actor=AuditActor(user_id=actor.get("user_id"), role=actor.get("role"),
                                            session_id=actor.get("session_id")),
                           subject_user_id=doc.get("subject_user_id"), ip=doc.get("ip"),
                           user_agent=doc.get("user_agent"), trace_id=doc.get("trace_id"),
                           details=doc.get("details") or {}, partition=doc["partition"], offset=doc["offset"])


@router.get("/audit", response_model=AuditTrailPage, name="search_audit_trail",
            summary="Who did what: authentication events and submitted commands, newest first (MongoDB)")
async def search_audit_trail(
        platform: PlatformDep, response: Response,
        user_id: Annotated[str | None, Query(max_length=64, description="as the actor or the subject")] = None,
        action: Annotated[list[str] | None, Query(description="e.g. login_failed; repeat to match several")] = None,
        outcome: Annotated[str | None, Query(pattern="^(success|failure|denied)$")] = None,
        ip: Annotated[str | None, Query(max_length=64)] = None,
        since: Since = None, until: Until = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> AuditTrailPage:
    query = TrailQuery(user_id=user_id, actions=tuple(action or ()), outcome=outcome, ip=ip, since=utc_moment(since),
                       until=utc_moment(until))
    docs = await platform.access.trail.search(query, _decode_cursor(cursor) if cursor else None, limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    response.headers["Bank-Read-Model"] = "mongo"
    return AuditTrailPage(items=[_entry(d) for d in docs], next_cursor=_encode_cursor(docs[-1]) if more else None)


def _state(raw: dict[str, Any] | None) -> MaintenanceState:
    if raw is None:
        return MaintenanceState(active=False)
    return MaintenanceState(active=True, message=raw.get("message"), retry_after=raw.get("retry_after"),
                            since=raw.get("since"), by=raw.get("by"))


@router.get("/maintenance", response_model=MaintenanceState, name="get_maintenance",
            summary="Whether commands are paused")
async def get_maintenance(platform: PlatformDep) -> MaintenanceState:
    return _state(await platform.access.store.maintenance())


@router.put("/maintenance", response_model=MaintenanceState, name="start_maintenance",
            summary="Pause commands (503 with Retry-After); queries keep working")
async def start_maintenance(platform: PlatformDep, body: MaintenanceRequest | None = None) -> MaintenanceState:
    body = body or MaintenanceRequest()
    state = {"message": body.message, "retry_after": body.retry_after, "since": datetime.now(UTC).isoformat(),
             "by": caller().user_id}
    await platform.access.store.start_maintenance(state)
    await platform.access.audit.record("maintenance_started", details={"message": body.message or "",
                                                                       "retry_after": str(body.retry_after)})
    return _state(state)


@router.delete("/maintenance", response_model=MaintenanceState, name="end_maintenance",
               summary="Resume commands")
async def end_maintenance(platform: PlatformDep) -> MaintenanceState:
    if await platform.access.store.end_maintenance():
        await platform.access.audit.record("maintenance_ended")
    return MaintenanceState(active=False)
