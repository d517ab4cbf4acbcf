"""The live feed of every posting (staff): the page shows the newest ledger events (GET /v1/audit, the read
model of the whole log), then an SSE stream adds each new one as it arrives. The BFF polls the API for the stream
(it has no Kafka of its own): every POLL_S, the events newer than the last one sent, oldest first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from web.admin.common import page
from web.client import ApiError, SignInRequired
from web.deps import StaffApi
from web.sse import sse
from web.templating import templates

router = APIRouter()

MOVEMENTS = ["AccountOpened", "FundsDeposited", "FundsWithdrawn", "TransferDebited", "TransferCredited",
             "TransferCompleted", "TransferReversed", "FundsHeld", "CommandRejected"]
POLL_S = 1.0
STREAM_FOR_S = 300.0     # then the stream ends and the browser's EventSource reconnects (a fresh token check)
PAGE_SIZE = 30


async def newest(api: Any, since: str | None = None) -> list[dict[str, Any]]:
    found = await api.get("/v1/audit", type=MOVEMENTS, limit=PAGE_SIZE, **({"from": since} if since else {}))
    items: list[dict[str, Any]] = found["items"]
    return items


@router.get("/feed", response_class=HTMLResponse)
async def feed(request: Request, api: StaffApi) -> Response:
    events = await newest(api)
    return page(request, api, "feed.html", events=events, since=events[0]["occurred_at"] if events else "")


def moment(text: str | None) -> datetime | None:
    """An API timestamp as a moment (its text form drops zero microseconds, so strings do not sort)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def later(one: datetime | None, other: datetime | None) -> bool:
    return other is None or (one is not None and one > other)


@router.get("/feed/stream")
async def stream(request: Request, api: StaffApi, since: str = "") -> Response:
    row = templates.get_template("admin/_feed_row.html")

    async def events() -> AsyncIterator[str]:
        sent: set[str] = set()
        shown = moment(since)        # the page has the events up to this one (`from` is inclusive)
        last = since or None
        ends = time.monotonic() + STREAM_FOR_S
        yield "retry: 2000\n\n"
        while time.monotonic() < ends and not await request.is_disconnected():
            try:
                fresh = [e for e in await newest(api, last) if e["event_id"] not in sent
                         and later(moment(e["occurred_at"]), shown)]
            except (ApiError, SignInRequired):
                yield sse("ended", "")
                return
            for event in reversed(fresh):   # oldest first: each is put on top of the list
                sent.add(event["event_id"])
                if later(moment(event["occurred_at"]), moment(last)):
                    last = event["occurred_at"]
                yield sse("posting", row.render(event=event))
            yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
