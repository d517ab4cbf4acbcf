"""Notifications (issue 19): the caller's inbox (`GET /v1/notifications`, mark read), its live stream over
Server-Sent Events (`GET /v1/notifications/stream`), their preferences (`GET/PUT /v1/me/notification-preferences`)
and, for staff, the deliveries that failed (`GET /v1/admin/notifications/failed`, `POST .../{id}/retry`).

The notifier (streams/notifications/) writes the inbox; these routes only read it and mark it read. A stream's
event ids are the user's inbox sequence: a client that reconnects with `Last-Event-ID` (browsers' EventSource
does it by itself) gets every notification after it, once, in order. A stream ends after
BANK_NOTIFICATION_STREAM_MAX (clients reconnect, authenticated again, so a revoked session stops receiving).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field, StrictStr
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.access_models import _Body
from api.deps import Platform, PlatformDep, ready_view
from api.ledger_view import LedgerView
from api.notifications import Notification
from api.problems import PROBLEM_JSON, Problem
from api.routes.auth import caller
from core.notifications import (DEFAULT_CHANNELS, MANDATORY_CHANNELS, SECURITY_TYPES, STAFF_TYPES, Preferences,
                                PreferenceError, parse_preferences, preferences_json)

router = APIRouter(tags=["notifications"])
_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
STREAM_POLL_S = 2.0          # a stream looks even without a wake-up (a lost LISTEN connection delays, never loses)
ChannelName = Literal["in_app", "email", "sms"]
Amount = Annotated[StrictStr, Field(description="a decimal string in the account's currency", examples=["100.00"])]


class NotificationView(BaseModel):
    notification_id: str
    seq: int = Field(description="the caller's inbox sequence: the stream's event id")
    type: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read: bool


class Inbox(BaseModel):
    notifications: list[NotificationView] = Field(description="newest first")
    unread_count: int
    next_before: int | None = Field(description="pass as ?before= for the next (older) page; null: no more")


class Marked(BaseModel):
    marked: int


class MarkAll(_Body):
    up_to: int | None = Field(default=None, ge=0, description="only up to this seq (what the client has shown)")


class ThresholdIn(_Body):
    account_id: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    debit_above: Amount | None = Field(default=None, description="notify any debit above this")
    balance_below: Amount | None = Field(default=None, description="notify when a debit takes the balance below this")


class QuietHoursIn(_Body):
    start: Annotated[StrictStr, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["22:00"])]
    end: Annotated[StrictStr, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["07:00"])]
    timezone: Annotated[StrictStr, Field(max_length=64, examples=["Europe/Berlin"])] = "UTC"


class PreferencesIn(_Body):
    """The whole preferences (PUT replaces them): a type left out gets its default channels."""

    channels: dict[StrictStr, list[ChannelName]] = Field(default_factory=dict)
    thresholds: Annotated[list[ThresholdIn], Field(max_length=50)] = Field(default_factory=list)
    quiet_hours: QuietHoursIn | None = Field(default=None, description="SMS wait until they end (business time)")


class ThresholdView(BaseModel):
    account_id: str
    currency: str
    debit_above: str | None
    balance_below: str | None


class QuietHoursView(BaseModel):
    start: str
    end: str
    timezone: str


class PreferencesView(BaseModel):
    channels: dict[str, list[str]] = Field(description="per notification type, the channels it goes on")
    thresholds: list[ThresholdView]
    quiet_hours: QuietHoursView | None
    defaults: dict[str, list[str]] = Field(description="the channels of each type for who has not chosen")
    security_types: list[str] = Field(description="cannot be turned off: always in-app and by email")
    mandatory_channels: list[str]


class FailedDelivery(BaseModel):
    notification_id: str
    user_id: str | None
    channel: str
    type: str
    attempts: int
    last_error: str | None
    created_at: datetime


class FailedList(BaseModel):
    failed: list[FailedDelivery]


def _view(n: Notification) -> NotificationView:
    return NotificationView(notification_id=n.notification_id, seq=n.seq, type=n.kind, title=n.title, body=n.body,
                            data=n.data, created_at=n.created_at, read=n.read_at is not None)


def _types_for(staff: bool) -> list[str]:
    return [kind for kind in DEFAULT_CHANNELS if staff or kind not in STAFF_TYPES]


def _prefs_view(prefs: Preferences, staff: bool) -> PreferencesView:
    shown = preferences_json(prefs)
    kinds = _types_for(staff)
    return PreferencesView(
        channels={kind: list(prefs.channels_for(kind)) for kind in kinds}, thresholds=shown["thresholds"],
        quiet_hours=shown["quiet_hours"], defaults={kind: list(DEFAULT_CHANNELS[kind]) for kind in kinds},
        security_types=sorted(SECURITY_TYPES), mandatory_channels=list(MANDATORY_CHANNELS))


def _staff() -> bool:
    return caller().role != "customer"


@router.get("/v1/notifications", response_model=Inbox, name="list_notifications",
            summary="The caller's in-app notifications, newest first, with the unread count")
async def list_notifications(platform: PlatformDep, limit: Annotated[int, Query(ge=1, le=100)] = 50,
                             before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                             unread_only: bool = False) -> Inbox:
    items, unread = await platform.notifications.inbox(caller().user_id, limit, before, unread_only)
    return Inbox(notifications=[_view(n) for n in items], unread_count=unread,
                 next_before=items[-1].seq if len(items) == limit else None)


@router.post("/v1/notifications/{notification_id}/read", status_code=204, name="mark_notification_read",
             summary="Mark one notification read", responses={404: _PROBLEMS})
async def mark_notification_read(notification_id: str, platform: PlatformDep) -> Response:
    if not await platform.notifications.mark_read(caller().user_id, notification_id):
        raise Problem(404, "Unknown notification", f"no notification {notification_id}", "unknown_notification")
    return Response(status_code=204)


@router.post("/v1/notifications/read", response_model=Marked, name="mark_all_notifications_read",
             summary="Mark every notification read (or those up to a seq)")
async def mark_all_notifications_read(platform: PlatformDep, body: MarkAll | None = None) -> Marked:
    return Marked(marked=await platform.notifications.mark_all_read(caller().user_id, body.up_to if body else None))


@router.get("/v1/notifications/stream", name="notification_stream", response_class=Response,
            summary="The caller's notifications as they arrive (Server-Sent Events)",
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: notification`, `id:` the seq, `data:` a NotificationView"},
                       422: _PROBLEMS})
async def notification_stream(
    request: Request, platform: PlatformDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", description="resume after this seq")] = None,
    since: Annotated[int | None, Query(ge=0, le=2**62, description="resume after this seq (for clients that "
                                       "cannot send Last-Event-ID); 0: the whole inbox. Default: only new ones")] = None,
    follow: Annotated[bool, Query(description="false: send what is there after the seq, then end")] = True,
) -> Response:
    user_id = caller().user_id   # read now: the generator runs outside the request's context
    start = _resume_point(last_event_id, since)
    if start is None:
        start = await platform.notifications.last_seq(user_id)
    await platform.notification_hub.ensure()
    events = _events(platform, request, user_id, start, follow)
    return EventSourceResponse(events, ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _resume_point(last_event_id: str | None, since: int | None) -> int | None:
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isdigit() or len(text) > 18:
            raise Problem(422, "Invalid request", "Last-Event-ID: the seq of the last event received",
                          "invalid_last_event_id")
        return int(text)
    return since


async def _events(platform: Platform, request: Request, user_id: str, seq: int, follow: bool) -> Any:
    store, hub = platform.notifications, platform.notification_hub
    loop = asyncio.get_running_loop()
    ends = loop.time() + platform.settings.notification_stream_max.total_seconds()
    with hub.subscribed(user_id) as woken:
        while True:
            woken.clear()   # before reading: a wake-up during the read makes the next wait return at once
            batch = await store.after(user_id, seq)
            for notification in batch:
                yield ServerSentEvent(data=_view(notification).model_dump_json(), id=str(notification.seq),
                                      event="notification")
                seq = notification.seq
            if batch and len(batch) >= 200:
                continue
            if not follow or loop.time() >= ends or await request.is_disconnected():
                return
            try:
                await asyncio.wait_for(woken.wait(), min(STREAM_POLL_S, max(0.0, ends - loop.time())))
            except TimeoutError:
                pass


@router.get("/v1/me/notification-preferences", response_model=PreferencesView, name="get_notification_preferences",
            summary="The caller's notification preferences (defaults until they choose)")
async def get_notification_preferences(platform: PlatformDep) -> PreferencesView:
    staff = _staff()
    return _prefs_view(await platform.notifications.preferences(caller().user_id, staff), staff)


@router.put("/v1/me/notification-preferences", response_model=PreferencesView, name="put_notification_preferences",
            summary="Replace the caller's notification preferences", responses={422: _PROBLEMS})
async def put_notification_preferences(body: PreferencesIn, platform: PlatformDep) -> PreferencesView:
    principal, staff = caller(), _staff()
    # the ledger view knows whose accounts are whose (503 while it catches up, as for every account route)
    currencies = _own_currencies(ready_view(platform), principal.customer_id) if body.thresholds else {}
    try:
        prefs = parse_preferences(body.model_dump(), currencies, staff=staff)
    except PreferenceError as error:
        raise Problem(422, "Invalid preferences", error.detail, error.reason,
                      errors=[{"loc": ["body", *error.field_name.split(".")], "type": error.reason,
                               "msg": error.detail}]) from None
    await platform.notifications.save_preferences(principal.user_id, prefs)
    return _prefs_view(prefs, staff)


def _own_currencies(view: LedgerView, customer_id: str | None) -> dict[str, str]:
    """The accounts a threshold may name: the caller's own (staff have none)."""
    if customer_id is None:
        return {}
    return {a.account_id: a.currency for a in list(view.accounts.values()) if a.customer_id == customer_id}


@router.get("/v1/admin/notifications/failed", response_model=FailedList, name="failed_notifications",
            summary="Emails and SMS given up on after their last retry (staff)")
async def failed_notifications(platform: PlatformDep, channel: Literal["email", "sms"] | None = None,
                               limit: Annotated[int, Query(ge=1, le=500)] = 100) -> FailedList:
    rows = await platform.notifications.failed(channel, limit)
    return FailedList(failed=[FailedDelivery(type=r.pop("kind"), **r) for r in rows])


@router.post("/v1/admin/notifications/{notification_id}/retry", status_code=204, name="retry_notification",
             summary="Queue a failed email or SMS again (admins)", responses={404: _PROBLEMS})
async def retry_notification(notification_id: str, platform: PlatformDep) -> Response:
    if not await platform.notifications.retry(notification_id):
        raise Problem(404, "Unknown failed notification", f"no failed delivery {notification_id}",
                      "unknown_notification")
    return Response(status_code=204)
