"""Identity verification (KYC): where the customer stands (status and what it allows), what the bank asked for,
the documents they sent, and an upload form (an identity document or a proof of address: PDF, PNG or JPEG).

The file goes to the API as it came (base64 in JSON, POST /v1/me/kyc/documents), which checks its type against its
first bytes and its size; its refusals are shown next to the file field.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.client import Api, ApiError
from web.deps import CustomerApi
from web.templating import render

router = APIRouter(prefix="/verification")

KINDS = [("identity_document", "Identity document (passport or ID card)"),
         ("proof_of_address", "Proof of address (a recent bill or bank statement)")]
KIND_NAMES = dict(KINDS)
STATUS_TEXT = {
    "not_started": ("", "Not verified yet", "Send an identity document and a proof of address: until we have "
                    "checked them you can hold one account and receive a limited amount."),
    "pending": ("warning", "We are checking your documents", "This usually takes a working day. You can send "
                "more documents meanwhile."),
    "verified": ("ok", "Verified", "Your identity is verified: every limit of your accounts applies."),
    "rejected": ("bad", "Not verified", "We could not verify your identity with the documents sent. Send new ones "
                 "or contact us."),
}
READ_LIMIT = 16 * 1024 * 1024   # read no more than this of an upload; the API's own limit is lower and says so


async def _page(request: Request, api: Api, status: int = 200, kind: str = "identity_document",
                errors: dict[str, list[str]] | None = None) -> HTMLResponse:
    mine = await api.get("/v1/me/kyc")
    return render(request, "customer/verification.html", status, kyc=mine, kinds=KINDS, kind_names=KIND_NAMES,
                  status_text=STATUS_TEXT, form={"kind": kind}, errors=errors or {})


@router.get("", response_class=HTMLResponse)
async def verification(request: Request, api: CustomerApi) -> HTMLResponse:
    return await _page(request, api)


@router.post("/documents", response_class=HTMLResponse)
async def upload(request: Request, api: CustomerApi, kind: Annotated[str, Form()] = "identity_document",
                 document: Annotated[UploadFile | None, File()] = None) -> Response:
    content = await document.read(READ_LIMIT) if document is not None else b""
    if not content:
        return await _page(request, api, 422, kind, {"document": ["Choose the file to send."]})
    body = {"kind": kind, "content_type": (document.content_type if document else "") or "application/octet-stream",
            "content_base64": base64.b64encode(content).decode("ascii")}
    try:
        await api.post("/v1/me/kyc/documents", body)
    except ApiError as error:
        if error.status >= 500:
            raise
        field = "kind" if error.field() == "kind" else "document"
        return await _page(request, api, 422, kind, {field: error.messages()})
    api.session.flash(f"Thank you: your {KIND_NAMES.get(kind, 'document').split(' (')[0].lower()} is sent. "
                      "We will check it shortly.", "success")
    return RedirectResponse("/app/verification", status_code=303)
