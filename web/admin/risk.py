"""The fraud and AML review queue (analysts and admins): cases with their evidence (the rules hit and why, the
score, the movement, the customer's recent activity and other cases) and the decision, approve or reject, with
the reviewer's comment. The API records who decided; a held transfer posts (or is released) as its outcome."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.admin.common import optional, page
from web.client import ApiError
from web.deps import StaffApi

router = APIRouter()

STATUS_OPTIONS = [("held", "Held (money waiting)"), ("open", "Open alerts"), ("", "Every case"),
                  ("approved", "Approved"), ("rejected", "Rejected"), ("blocked", "Blocked")]
SEVERITY_OPTIONS = [("", "Any severity"), ("critical", "Critical"), ("high", "High"), ("medium", "Medium"),
                    ("low", "Low")]


@router.get("/cases", response_class=HTMLResponse)
async def cases(request: Request, api: StaffApi, status: str = "held", severity: str = "", rule: str = "",
                cursor: str = "") -> Response:
    found = await api.get("/v1/admin/cases", status=[status] if status else None,
                          severity=[severity] if severity else None, rule=rule.strip(), limit=25, cursor=cursor)
    return page(request, api, "cases.html", cases=found["items"], next_cursor=found.get("next_cursor"),
                query={"status": status, "severity": severity, "rule": rule}, statuses=STATUS_OPTIONS,
                severities=SEVERITY_OPTIONS)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case(request: Request, api: StaffApi, case_id: str) -> Response:
    shown = await api.get(f"/v1/admin/cases/{case_id}")
    customer_id = shown["customer_id"]
    activity = await optional(api.get(f"/v1/customers/{customer_id}/timeline", limit=15))
    account = await optional(api.get(f"/v1/accounts/{shown['account_id']}"))
    others = await optional(api.get("/v1/admin/cases", customer_id=customer_id, limit=10))
    return page(request, api, "case.html", case=shown, account=account,
                activity=(activity or {}).get("items", []),
                other_cases=[c for c in (others or {}).get("items", []) if c["case_id"] != case_id],
                decision_key=str(uuid.uuid4()), errors={})


@router.post("/cases/{case_id}/{decision}", response_class=HTMLResponse)
async def decide(request: Request, api: StaffApi, case_id: str, decision: str,
                 comment: Annotated[str, Form()] = "") -> Response:
    if decision not in ("approve", "reject"):
        return RedirectResponse(f"/admin/cases/{case_id}", status_code=303)
    if not comment.strip():
        api.session.flash("Write why you decide so (it goes on the record with your name).", "error")
        return RedirectResponse(f"/admin/cases/{case_id}#decision", status_code=303)
    try:
        outcome = await api.post(f"/v1/admin/cases/{case_id}/{decision}", {"comment": comment.strip()},
                                 command=True)
    except ApiError as error:
        if error.status in (403, 503):
            raise
        api.session.flash(error.detail, "error")
        return RedirectResponse(f"/admin/cases/{case_id}", status_code=303)
    verb = "approved" if decision == "approve" else "rejected"
    status = (outcome or {}).get("status", "")
    api.session.flash(f"Case {case_id[:8]} {verb}" + (f": the movement is {status}." if status else "."), "success")
    return RedirectResponse("/admin/cases", status_code=303)
