"""Notifications: the customer's inbox (live: new ones appear at the top as they arrive), marking them read, and
the preferences (which notifications go on which channel, thresholds per account, quiet hours for text messages).

Live updates come from the API's own stream (GET /v1/notifications/stream, Server-Sent Events): the BFF opens it
with the signed-in user's token and passes each notification on to the browser as a rendered list item. The
browser's EventSource resends the last seq it got (Last-Event-ID) when it reconnects, so nothing shows twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from web.client import Api, ApiError, SignInRequired
from web.customer.accounts import account_label, customer_accounts
from web.deps import CustomerApi, SignedInApi
from web.forms import field_errors
from web.csrf import FIELD as CSRF_FIELD
from web.sse import sse
from web.templating import render, templates

router = APIRouter(prefix="/notifications")

PAGE_SIZE = 20
TYPE_NAMES = {
    "transaction_posted": "Money in and out of your accounts",
    "transfer_returned": "A transfer came back",
    "payment_held": "A payment is being checked",
    "payment_released": "A checked payment went through",
    "payment_declined": "A payment was declined",
    "large_debit": "A debit above your amount (set below, per account)",
    "low_balance": "A balance below your amount (set below, per account)",
    "payee_added": "A payee was added",
    "standing_order_failed": "A standing order could not be paid",
    "loan_decided": "A decision on your loan application",
    "loan_disbursed": "A loan was paid into your account",
    "loan_instalment_due": "A loan instalment is due soon",
    "loan_repayment_failed": "A loan instalment could not be collected",
    "loan_overdue": "A loan instalment is overdue (a late fee was charged)",
    "new_device_sign_in": "A sign-in from a new device",
    "password_changed": "Your password was changed",
    "mfa_changed": "Two-step verification was changed",
    "staff_alert": "Fraud cases and held movements to review (staff)",
}
CHANNEL_NAMES = {"in_app": "In the app", "email": "Email", "sms": "Text message"}
PREFERENCE_FIELDS = ("channels", "thresholds", "quiet_hours", "start", "end", "timezone")


BASE = "/app/notifications"


async def inbox_page(request: Request, api: Api, before: int | None, base: str, layout: str,
                     preferences_url: str, **context: Any) -> HTMLResponse:
    """The inbox: the customer app's and the admin panel's (staff alerts) alike, at `base`."""
    found = await api.get("/v1/notifications", limit=PAGE_SIZE, before=before)
    items = found["notifications"]
    # The live stream adds what arrives after the newest one shown; an older page (before=) is not live.
    latest = max((n["seq"] for n in items), default=0) if before is None else None
    return render(request, "customer/notifications.html", notifications=items, unread=found["unread_count"],
                  next_before=found["next_before"], latest=latest, paged=before is not None, base=base,
                  layout=layout, preferences_url=preferences_url, **context)


async def mark_all(api: Api, up_to: int | None, base: str) -> Response:
    marked = await api.post("/v1/notifications/read", {"up_to": up_to} if up_to else {})
    count = marked["marked"]
    api.session.flash(f"{count} notification{'s' if count != 1 else ''} marked read." if count
                      else "Nothing was unread.", "success")
    return RedirectResponse(base, status_code=303)


async def mark_one(api: Api, notification_id: str, base: str) -> Response:
    await api.post(f"/v1/notifications/{notification_id}/read")
    return RedirectResponse(base, status_code=303)


def live(request: Request, api: Api, since: int, last_event_id: str | None, base: str) -> Response:
    """The API's stream of the signed-in person's notifications, each passed on as a rendered list item."""
    resume = int(last_event_id) if last_event_id and last_event_id.isdigit() else since
    item = templates.get_template("customer/_notification.html")

    async def events() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        try:
            async for event in api.events("/v1/notifications/stream", since=resume):
                if event.event != "notification" or await request.is_disconnected():
                    continue
                notification = json.loads(event.data)
                html = item.render(notification=notification, csrf_token=api.session.csrf_token, live=True,
                                   base=base, csrf_field=CSRF_FIELD)
                yield sse("notification", html, event.id)
        except (ApiError, SignInRequired):
            yield sse("ended", "")

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("", response_class=HTMLResponse)
async def inbox(request: Request, api: CustomerApi,
                before: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> HTMLResponse:
    return await inbox_page(request, api, before, BASE, "base.html", f"{BASE}/preferences")


async def _badge(api: Api) -> str:
    found = await api.get("/v1/notifications", limit=1, unread_only="true")
    count = int(found["unread_count"])
    return f'<span class="badge badge--ok">{count} new</span>' if count else ""


@router.get("/bell")
async def bell(request: Request, api: CustomerApi) -> Response:
    """The navigation's bell, live on every page: the unread count now, then again whenever a notification arrives
    (the API's stream from this moment on). When the API ends its stream the browser's EventSource reconnects and
    the count is read afresh, so a badge is never more than one notification behind."""
    async def events() -> AsyncIterator[str]:
        yield "retry: 5000\n\n"
        try:
            yield sse("bell", await _badge(api))
            async for event in api.events("/v1/notifications/stream"):
                if await request.is_disconnected():
                    return
                if event.event == "notification":
                    yield sse("bell", await _badge(api))
        except (ApiError, SignInRequired):
            yield sse("ended", "")

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.post("/read")
async def mark_all_read(api: CustomerApi, up_to: Annotated[int | None, Form(ge=0)] = None) -> Response:
    return await mark_all(api, up_to, BASE)


@router.post("/{notification_id}/read")
async def mark_read(notification_id: str, api: CustomerApi) -> Response:
    return await mark_one(api, notification_id, BASE)


@router.get("/stream")
async def stream(request: Request, api: CustomerApi, since: Annotated[int, Query(ge=0, le=2**62)] = 0,
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None) -> Response:
    return live(request, api, since, last_event_id, BASE)


# ---------------------------------------------------------------- preferences


async def _preferences_page(request: Request, api: Api, status: int = 200, prefs: dict[str, Any] | None = None,
                            errors: dict[str, list[str]] | None = None) -> HTMLResponse:
    prefs = prefs or await api.get("/v1/me/notification-preferences")
    accounts = await _own_accounts(api)
    thresholds = {t["account_id"]: t for t in prefs.get("thresholds", [])}
    return render(request, "customer/notification_preferences.html", status, prefs=prefs, accounts=accounts,
                  thresholds=thresholds, type_names=TYPE_NAMES, channel_names=CHANNEL_NAMES,
                  account_label=account_label, errors=errors or {})


async def _own_accounts(api: Api) -> list[dict[str, Any]]:
    """A customer's accounts (thresholds watch them); staff have none: their preferences are channels only."""
    auth = api.session.auth
    return await customer_accounts(api) if auth is not None and not auth.staff else []


@router.get("/preferences", response_class=HTMLResponse)
async def preferences(request: Request, api: SignedInApi) -> HTMLResponse:
    return await _preferences_page(request, api)


def preferences_body(form: dict[str, str], current: dict[str, Any], account_ids: list[str]) -> dict[str, Any]:
    """The whole preferences (the API's PUT replaces them) from the form: a ticked box is a channel on."""
    channels = {kind: [c for c in ("in_app", "email", "sms") if form.get(f"channel:{kind}:{c}") == "on"
                       or (kind in current["security_types"] and c in current["mandatory_channels"])]
                for kind in current["channels"]}
    thresholds = []
    for account_id in account_ids:
        debit_above = form.get(f"debit_above:{account_id}", "").strip()
        balance_below = form.get(f"balance_below:{account_id}", "").strip()
        if debit_above or balance_below:
            thresholds.append({"account_id": account_id, "debit_above": debit_above or None,
                               "balance_below": balance_below or None})
    quiet_hours = None
    if form.get("quiet_hours") == "on":
        quiet_hours = {"start": form.get("start", "").strip(), "end": form.get("end", "").strip(),
                       "timezone": form.get("timezone", "").strip() or "UTC"}
    return {"channels": channels, "thresholds": thresholds, "quiet_hours": quiet_hours}


def _as_shown(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """What the form sent, shown again with its errors (in the API's answer shape)."""
    return current | {"channels": body["channels"], "quiet_hours": body["quiet_hours"],
                      "thresholds": body["thresholds"]}


@router.post("/preferences", response_class=HTMLResponse)
async def save_preferences(request: Request, api: SignedInApi) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items()}
    current = await api.get("/v1/me/notification-preferences")
    account_ids = [a["account_id"] for a in await _own_accounts(api)]
    body = preferences_body(form, current, account_ids)
    try:
        await api.put("/v1/me/notification-preferences", body)
    except ApiError as error:
        if error.status >= 500:
            raise
        errors = field_errors(error, PREFERENCE_FIELDS, default="channels")
        return await _preferences_page(request, api, 422, _as_shown(body, current), errors)
    api.session.flash("Your notification preferences are saved.", "success")
    return RedirectResponse("/app/notifications/preferences", status_code=303)
