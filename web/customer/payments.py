"""The payment history: every payment to another bank and every standing-order payment, newest first, with its
confirmation number and where it stands; filters by status and kind, older pages, and the API's CSV export."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from web.customer.accounts import account_label, customer_accounts
from web.deps import CustomerApi
from web.templating import render

router = APIRouter(prefix="/payments")

PAGE_SIZE = 25
TYPES = [("", "All payments"), ("external", "To other banks"), ("standing_order", "Standing orders")]
STATUSES = [("", "Any state"), ("settled", "Arrived"), ("paid", "Paid"), ("sent", "On its way"),
            ("pending", "Being sent"), ("returned", "Returned"), ("failed", "Not paid"), ("skipped", "Skipped")]
STATUS_BADGES = {"settled": ("ok", "Arrived"), "paid": ("ok", "Paid"), "sent": ("", "On its way"),
                 "pending": ("", "Being sent"), "submitted": ("", "Being sent"), "retry_pending": ("warning",
                 "Trying again later today"), "returned": ("bad", "Returned"), "failed": ("bad", "Not paid"),
                 "skipped": ("warning", "Skipped"), "reversed": ("bad", "Returned")}


def _filters(kind: str | None, status: str | None) -> dict[str, str]:
    chosen = {"type": kind or "", "status": status or ""}
    return {key: value for key, value in chosen.items() if value}


@router.get("", response_class=HTMLResponse)
async def payments(request: Request, api: CustomerApi, kind: Annotated[str | None, Query(alias="type")] = None,
                   status: str | None = None, cursor: Annotated[str | None, Query(max_length=200)] = None
                   ) -> HTMLResponse:
    filters = _filters(kind, status)
    found = await api.get("/v1/payments", limit=PAGE_SIZE, cursor=cursor, **filters)
    labels = {a["account_id"]: account_label(a) for a in await customer_accounts(api)}
    query = urlencode(filters)
    older = f"/app/payments?{urlencode(filters | {'cursor': found['next_cursor']})}" if found["next_cursor"] else None
    return render(request, "customer/payments.html", items=found["items"], labels=labels, types=TYPES,
                  statuses=STATUSES, badges=STATUS_BADGES, form=filters, paged=cursor is not None, older=older,
                  csv_url="/app/payments.csv" + (f"?{query}" if query else ""))


@router.get(".csv")
async def payments_csv(api: CustomerApi, kind: Annotated[str | None, Query(alias="type")] = None,
                       status: str | None = None) -> Response:
    """The API's CSV export (its formula-safe cells), with the same filters."""
    response = await api.get_raw("/v1/payments.csv", **_filters(kind, status))
    return Response(response.content, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="payments.csv"'})
