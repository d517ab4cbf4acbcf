"""Identity verification for compliance (analysts and admins): the KYC queue (pending reviews oldest first, or by
status, or the customers screening flagged), a case (profile, screening, documents to open), and the decisions:
verify, reject with a reason, or ask the customer for more documents (the reason is shown to them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.admin.common import page
from web.client import ApiError
from web.deps import StaffApi

router = APIRouter()

STATUSES = [("pending", "Pending review"), ("not_started", "Not started"), ("verified", "Verified"),
            ("rejected", "Rejected"), ("", "Every status")]
DECISIONS = {"verify": "verified", "reject": "rejected", "request-more": "asked for more documents"}
KIND_NAMES = {"identity_document": "Identity document", "proof_of_address": "Proof of address"}


@router.get("/kyc", response_class=HTMLResponse)
async def queue(request: Request, api: StaffApi, status: str = "pending", flagged: bool = False) -> Response:
    found = await api.get("/v1/admin/kyc", status=status, flagged="true" if flagged else None)
    return page(request, api, "kyc.html", items=found["items"], statuses=STATUSES, status=status, flagged=flagged)


async def _case_page(request: Request, api: StaffApi, customer_id: str, status_code: int = 200,
                     errors: dict[str, list[str]] | None = None, reason: str = "") -> Response:
    case = await api.get(f"/v1/admin/kyc/{customer_id}")
    return page(request, api, "kyc_case.html", status_code, case=case, kind_names=KIND_NAMES, errors=errors or {},
                form={"reason": reason})


@router.get("/kyc/{customer_id}", response_class=HTMLResponse)
async def case(request: Request, api: StaffApi, customer_id: str) -> Response:
    return await _case_page(request, api, customer_id)


@router.get("/kyc/{customer_id}/documents/{document_id}")
async def document(api: StaffApi, customer_id: str, document_id: str) -> Response:
    """The uploaded file, passed on as the API serves it (an attachment: never rendered inline)."""
    found = await api.get_raw(f"/v1/admin/kyc/{customer_id}/documents/{document_id}")
    return Response(found.content, media_type=found.headers.get("content-type", "application/octet-stream"),
                    headers={"Content-Disposition": found.headers.get("content-disposition", "attachment"),
                             "X-Content-Type-Options": "nosniff"})


@router.post("/kyc/{customer_id}/{decision}", response_class=HTMLResponse)
async def decide(request: Request, api: StaffApi, customer_id: str, decision: str,
                 reason: Annotated[str, Form()] = "") -> Response:
    if decision not in DECISIONS:
        return await _case_page(request, api, customer_id, 404)
    body = {"reason": reason.strip()} if reason.strip() else {}
    try:
        await api.post(f"/v1/admin/kyc/{customer_id}/{decision}", body)
    except ApiError as error:
        if error.status in (403, 404) or error.status >= 500:
            raise
        return await _case_page(request, api, customer_id, 422, {"reason": error.messages()}, reason)
    api.session.flash(f"The customer is {DECISIONS[decision]}.", "success")
    return RedirectResponse(f"/admin/kyc/{customer_id}", status_code=303)
