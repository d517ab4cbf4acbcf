"""Staff alerts (analysts and admins): their own notifications, live, in the admin panel: fraud cases and held
movements reach them here as they happen (the notifier's staff_alert), so the review queue does not depend on
someone refreshing a page. The same inbox as the customer app's, on the API's same endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, Response

from web.admin.common import layout_context
from web.customer.notifications import inbox_page, live, mark_all, mark_one
from web.deps import StaffApi

router = APIRouter(prefix="/alerts")
BASE = "/admin/alerts"


@router.get("", response_class=HTMLResponse)
async def alerts(request: Request, api: StaffApi,
                 before: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> Response:
    return await inbox_page(request, api, before, BASE, "admin/layout.html", "/app/notifications/preferences",
                            **layout_context(request, api))


@router.post("/read")
async def mark_all_read(api: StaffApi, up_to: Annotated[int | None, Form(ge=0)] = None) -> Response:
    return await mark_all(api, up_to, BASE)


@router.post("/{notification_id}/read")
async def mark_read(notification_id: str, api: StaffApi) -> Response:
    return await mark_one(api, notification_id, BASE)


@router.get("/stream")
async def stream(request: Request, api: StaffApi, since: Annotated[int, Query(ge=0, le=2**62)] = 0,
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None) -> Response:
    return live(request, api, since, last_event_id, BASE)
