"""The audit trail of people's actions (analysts and admins): sign-ins and their failures, submitted commands,
staff changes, reviews; searched by user, action, outcome, address and time (GET /v1/admin/audit), and exported
as CSV. The API pages the trail; the export follows its cursors (up to EXPORT_LIMIT rows) and writes them out."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from web.admin.common import page
from web.deps import StaffApi

router = APIRouter()

OUTCOMES = [("", "Any outcome"), ("success", "Success"), ("failure", "Failure"), ("denied", "Denied")]
EXPORT_LIMIT = 10_000
COLUMNS = ("occurred_at", "action", "outcome", "reason", "actor_user_id", "actor_role", "subject_user_id", "ip",
           "user_agent", "details", "event_id")


def filters(user_id: str, action: str, outcome: str, ip: str, since: str, until: str) -> dict[str, Any]:
    actions = [a.strip() for a in action.split(",") if a.strip()]
    return {"user_id": user_id.strip(), "action": actions or None, "outcome": outcome, "ip": ip.strip(),
            "from": since.strip(), "to": until.strip()}


@router.get("/audit", response_class=HTMLResponse)
async def audit(request: Request, api: StaffApi, user_id: str = "", action: str = "", outcome: str = "",
                ip: str = "", since: str = "", until: str = "", cursor: str = "") -> Response:
    where = filters(user_id, action, outcome, ip, since, until)
    found = await api.get("/v1/admin/audit", limit=50, cursor=cursor, **where)
    query = {"user_id": user_id, "action": action, "outcome": outcome, "ip": ip, "since": since, "until": until}
    return page(request, api, "audit.html", entries=found["items"], next_cursor=found.get("next_cursor"),
                query=query, outcomes=OUTCOMES)


def row(entry: dict[str, Any]) -> list[str]:
    actor = entry.get("actor") or {}
    details = "; ".join(f"{key}={value}" for key, value in sorted((entry.get("details") or {}).items()))
    return [entry["occurred_at"], entry["action"], entry["outcome"], entry.get("reason") or "",
            actor.get("user_id") or "", actor.get("role") or "", entry.get("subject_user_id") or "",
            entry.get("ip") or "", entry.get("user_agent") or "", details, entry["event_id"]]


@router.get("/audit.csv")
async def audit_csv(request: Request, api: StaffApi, user_id: str = "", action: str = "", outcome: str = "",
                    ip: str = "", since: str = "", until: str = "") -> Response:
    where = filters(user_id, action, outcome, ip, since, until)
    first = await api.get("/v1/admin/audit", limit=500, **where)   # errors (403, 422) before the download starts

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        page_, written = first, 0
        while True:
            for entry in page_["items"][: EXPORT_LIMIT - written]:
                writer.writerow(row(entry))
                written += 1
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if not page_.get("next_cursor") or written >= EXPORT_LIMIT:
                return
            page_ = await api.get("/v1/admin/audit", limit=500, cursor=page_["next_cursor"], **where)

    name = f"audit-{date.today().isoformat()}.csv"
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
