"""Customer 360 (staff): find a customer (by name or email: analysts and admins, who may search users; by
customer id: every staff member), then one page with their profile, accounts, recent activity, payees, risk cases
and the audit trail of their sign-ins. Each part is what the API lets this role read; the rest is left out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.admin.common import REVIEWERS, optional, page, role_of
from web.deps import StaffApi

router = APIRouter()

PROFILE_SCAN = 500


@router.get("/customers", response_class=HTMLResponse)
async def customers(request: Request, api: StaffApi, q: str = "", customer_id: str = "") -> Response:
    if customer_id.strip():
        return RedirectResponse(f"/admin/customers/{customer_id.strip()}", status_code=303)
    found = None
    if role_of(api) in REVIEWERS:
        found = (await api.get("/v1/admin/users", role="customer", q=q.strip(), limit=25))["items"]
    return page(request, api, "customers.html", customers=found, query={"q": q})


async def profile_of(api: Any, customer_id: str, user_id: str) -> dict[str, Any] | None:
    """The customer's user record: by its id when the link gave it, else among the newest customers (the API's
    user search has no customer id filter)."""
    if user_id:
        user = await optional(api.get(f"/v1/admin/users/{user_id}"))
        if user is not None and user.get("customer_id") == customer_id:
            return dict(user)
    users = await api.get("/v1/admin/users", role="customer", limit=PROFILE_SCAN)
    return next((u for u in users["items"] if u.get("customer_id") == customer_id), None)


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
async def customer(request: Request, api: StaffApi, customer_id: str, user_id: str = "") -> Response:
    accounts = (await api.get(f"/v1/customers/{customer_id}/accounts"))["accounts"]
    activity = await optional(api.get(f"/v1/customers/{customer_id}/timeline", limit=25))
    payees = await optional(api.get("/v1/payees", customer_id=customer_id))
    cases = await optional(api.get("/v1/admin/cases", customer_id=customer_id, limit=25))
    profile = trail = None
    if role_of(api) in REVIEWERS:
        profile = await profile_of(api, customer_id, user_id)
        if profile is not None:
            trail = await optional(api.get("/v1/admin/audit", user_id=profile["user_id"], limit=25))
    return page(request, api, "customer.html", customer_id=customer_id, accounts=accounts, profile=profile,
                activity=(activity or {}).get("items", []), payees=(payees or {}).get("payees", []),
                cases=(cases or {}).get("items") if cases is not None else None,
                trail=(trail or {}).get("items") if trail is not None else None)
