"""The panel's front page and the system page: readiness of every part (GET /readyz), read-model freshness,
the close of business (how far savings interest is accrued, GET /v1/admin/cob), maintenance mode (admins switch
it), and business time where the stack lets it move (BANK_CLOCK_CONTROL)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web import formatting
from web.admin.common import REVIEWERS, page, role_of
from web.client import ApiError, checked
from web.deps import StaffApi

router = APIRouter()

CHECK_LABELS = {"ledger_view": "Ledger view (API)", "postgres": "PostgreSQL", "redis": "Redis", "mongo": "MongoDB",
                "workers": "Ledger workers", "projection_workers": "Projection workers",
                "read_models": "Read models"}
_LAG = re.compile(r"(\w+) (\d+)")
THROUGHPUT_SAMPLE = 500
THROUGHPUT_MINUTES = 10
GRAFANA_PORT = 3000      # docker compose's Grafana, beside the API


async def readiness(api: Any) -> dict[str, Any]:
    """GET /readyz (public): 200 ready or 503 with the failing checks; both carry every check."""
    response = await api.client.call("GET", "/readyz", api.browser)
    body: dict[str, Any] = response.json() if response.headers.get("content-type", "").startswith(
        "application/json") else {"status": "unknown", "checks": {}}
    return body


def read_model_lags(checks: dict[str, Any]) -> list[tuple[str, int]]:
    """`events behind the log: postgres 0, redis 3, ...` as (model, events behind) pairs."""
    detail = str((checks.get("read_models") or {}).get("detail") or "")
    _, _, listed = detail.partition(":")
    return [(name, int(count)) for name, count in _LAG.findall(listed)]


async def close_of_business(api: Any) -> dict[str, Any] | None:
    """GET /v1/admin/cob; None while the API is still reading the savings topics (its 503)."""
    try:
        return dict(await api.get("/v1/admin/cob"))
    except ApiError as error:
        if error.status in (403, 404, 503):
            return None
        raise


def cob_state(status: dict[str, Any]) -> tuple[str, str]:
    """The badge and the words of the close of business: done through yesterday, or how many accounts it has
    still to accrue and from which day."""
    behind = int(status["accounts_behind"])
    if not behind:
        return "ok", f"Closed through {formatting.when(status['closing_through'], with_time=False)}"
    return "warning", (f"{behind} account{'s' if behind != 1 else ''} still to close, from "
                       f"{formatting.when(status['oldest_open_date'], with_time=False)}")


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, api: StaffApi) -> Response:
    role = role_of(api)
    ready = await readiness(api)
    held = maintenance = None
    if role in REVIEWERS:
        held = (await api.get("/v1/admin/cases", status=["held"], limit=100))["items"]
        maintenance = await api.get("/v1/admin/maintenance")
    cob = await close_of_business(api)
    return page(request, api, "overview.html", ready=ready, held=held, maintenance=maintenance, cob=cob,
                cob_state=cob_state(cob) if cob else None)


def throughput(events: list[dict[str, Any]], minutes: int = THROUGHPUT_MINUTES) -> list[dict[str, Any]]:
    """Ledger events per minute over the last `minutes` before the newest one (a count, from the sample)."""
    moments = [m for m in (_moment(e["occurred_at"]) for e in events) if m is not None]
    if not moments:
        return []
    end = max(moments).replace(second=0, microsecond=0) + timedelta(minutes=1)
    buckets = [end - timedelta(minutes=minutes - n) for n in range(minutes)]
    counts = [sum(1 for m in moments if start <= m < start + timedelta(minutes=1)) for start in buckets]
    widest = max(counts) or 1
    return [{"minute": start.strftime("%H:%M"), "events": count, "width": -(-count * 10 // widest)}
            for start, count in zip(buckets, counts, strict=True)]


def _moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@router.get("/health", response_class=HTMLResponse)
async def health(request: Request, api: StaffApi) -> Response:
    role = role_of(api)
    ready = await readiness(api)
    recent = (await api.get("/v1/audit", limit=THROUGHPUT_SAMPLE))["items"]
    checks = ready.get("checks", {})
    maintenance = await api.get("/v1/admin/maintenance") if role in REVIEWERS else None
    clock = None
    if role == "admin":
        response = await api.request("GET", "/v1/admin/clock")
        clock = checked(response) if response.status_code == 200 else None
    cob = await close_of_business(api)
    return page(request, api, "health.html", ready=ready, checks=checks, labels=CHECK_LABELS,
                lags=read_model_lags(checks), maintenance=maintenance, clock=clock, throughput=throughput(recent),
                cob=cob, cob_state=cob_state(cob) if cob else None,
                grafana=f"{request.url.scheme}://{request.url.hostname}:{GRAFANA_PORT}/")


@router.post("/maintenance")
async def maintenance(request: Request, api: StaffApi, action: Annotated[str, Form()] = "",
                      message: Annotated[str, Form()] = "") -> Response:
    try:
        if action == "on":
            body = {"message": message.strip()} if message.strip() else {}
            await api.put("/v1/admin/maintenance", body)
            api.session.flash("Maintenance mode is on: customers' payments are paused.", "success")
        else:
            await api.delete("/v1/admin/maintenance")
            api.session.flash("Maintenance mode is off: payments are flowing again.", "success")
    except ApiError as error:
        if error.status != 403:
            raise
        api.session.flash("Only an admin can switch maintenance mode.", "error")
    return RedirectResponse("/admin/health", status_code=303)


@router.post("/clock")
async def move_clock(request: Request, api: StaffApi, advance: Annotated[str, Form()] = "") -> Response:
    try:
        await api.put("/v1/admin/clock", {"advance": advance.strip()})
        api.session.flash(f"Business time moved forward by {advance.strip()}.", "success")
    except ApiError as error:
        api.session.flash(f"Business time was not moved: {error.detail}", "error")
    return RedirectResponse("/admin/health", status_code=303)
