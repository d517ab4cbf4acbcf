"""Compliance reports and sign-in patterns (analysts and admins).

- The currency transaction report of a day (GET /v1/admin/reports/ctr), the SAR candidates of a period
  (/v1/admin/reports/sar-candidates) and the KYC report (/v1/admin/reports/kyc: customers by status, pending reviews
  by age), each downloadable as the API's own CSV.
- Sign-in patterns: sign-ins and failures per day, people and devices, counted from the audit trail
  (GET /v1/admin/audit, the newest SIGN_IN_SAMPLE entries); counting is all the BFF does, no money is involved.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from web.admin.common import page
from web.client import ApiError
from web.deps import StaffApi

router = APIRouter()

SIGN_IN_ACTIONS = ["login", "login_failed", "mfa_failed"]
SIGN_IN_SAMPLE = 2000
DAYS_SHOWN = 14


def _day(text: str, default: date) -> str:
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        return default.isoformat()


@router.get("/reports", response_class=HTMLResponse)
async def reports(request: Request, api: StaffApi, day: str = "", since: str = "", until: str = "") -> Response:
    today = datetime.now(UTC).date()
    day = _day(day, today)
    since, until = _day(since, today - timedelta(days=30)), _day(until, today + timedelta(days=1))
    errors: dict[str, list[str]] = {}
    ctr = await api.get("/v1/admin/reports/ctr", date=day)
    sar = None
    try:
        sar = await api.get("/v1/admin/reports/sar-candidates", **{"from": since, "to": until})
    except ApiError as error:
        if error.status != 422:
            raise
        errors["until"] = [error.detail]
    kyc_report = await api.get("/v1/admin/reports/kyc")
    return page(request, api, "reports.html", ctr=ctr, sar=sar, kyc=kyc_report,
                query={"day": day, "since": since, "until": until}, errors=errors)


@router.get("/reports/{name}.csv")
async def report_csv(request: Request, api: StaffApi, name: str, day: str = "", since: str = "",
                     until: str = "") -> Response:
    if name == "ctr":
        response = await api.get_raw("/v1/admin/reports/ctr.csv", date=day)
    elif name == "kyc":
        response = await api.get_raw("/v1/admin/reports/kyc.csv")
    else:
        response = await api.get_raw("/v1/admin/reports/sar-candidates.csv", **{"from": since, "to": until})
    return Response(response.content, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": response.headers.get("content-disposition",
                                                                         f'attachment; filename="{name}.csv"')})


async def sign_in_entries(api: Any) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while len(entries) < SIGN_IN_SAMPLE:
        found = await api.get("/v1/admin/audit", action=SIGN_IN_ACTIONS, limit=500, cursor=cursor)
        entries += found["items"]
        cursor = found.get("next_cursor")
        if not cursor:
            break
    return entries[:SIGN_IN_SAMPLE]


def patterns(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Per day (newest first): sign-ins, failures, people, devices (user agents) never seen before in the sample."""
    days: dict[str, Counter[str]] = defaultdict(Counter)
    people: dict[str, set[str]] = defaultdict(set)
    first_seen: dict[tuple[str, str], str] = {}
    for entry in sorted(entries, key=lambda e: e["occurred_at"]):
        day = entry["occurred_at"][:10]
        user = (entry.get("actor") or {}).get("user_id") or entry.get("subject_user_id") or ""
        if entry["action"] == "login" and entry["outcome"] == "success":
            days[day]["sign_ins"] += 1
            people[day].add(user)
            device = (user, entry.get("user_agent") or "")
            if device not in first_seen:
                first_seen[device] = day
                days[day]["new_devices"] += 1
        else:
            days[day]["failures"] += 1
    rows = [{"day": day, "sign_ins": counts["sign_ins"], "failures": counts["failures"],
             "people": len(people[day]), "new_devices": counts["new_devices"]}
            for day, counts in sorted(days.items(), reverse=True)[:DAYS_SHOWN]]
    widest = max([max(r["sign_ins"], r["failures"]) for r in rows] or [0])
    for row in rows:   # bar widths in tenths (CSS classes: the CSP allows no inline style)
        row["sign_in_width"] = -(-row["sign_ins"] * 10 // widest) if widest else 0
        row["failure_width"] = -(-row["failures"] * 10 // widest) if widest else 0
    failed_reasons = Counter(e.get("reason") or e["action"] for e in entries if e["outcome"] != "success")
    return {"rows": rows, "reasons": failed_reasons.most_common(6), "sampled": len(entries)}


@router.get("/sign-ins", response_class=HTMLResponse)
async def sign_ins(request: Request, api: StaffApi) -> Response:
    return page(request, api, "sign_ins.html", **patterns(await sign_in_entries(api)))
