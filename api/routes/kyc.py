"""Identity verification (issue 18 points 3 and 6): customers upload documents, compliance reviews them.

Customers: `GET /v1/me/kyc` (status, tier, documents) and `POST /v1/me/kyc/documents` (an identity document or a
proof of address: PDF, PNG or JPEG, base64 in JSON, at most BANK_KYC_MAX_DOCUMENT_BYTES; the declared type must be
what the file's first bytes say). Documents are kept in PostgreSQL (`kyc_documents`), never on a topic.

Compliance (analysts, admins): `GET /v1/admin/kyc` (the queue: pending reviews oldest first, and customers whose
name matched the sanctions list), `GET /v1/admin/kyc/{customer_id}` (the case, the profile, the documents),
`GET .../documents/{document_id}` (the file), and `POST .../verify`, `.../reject` (a reason), `.../request-more`
(what is missing; the case goes back to the customer). `GET /v1/admin/reports/kyc` (and `.csv`): customers by
status and the age of pending reviews. Every decision is on the audit trail.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictStr

from api.access_models import _Body
from api.csv_export import csv_line, csv_response
from api.customers import CustomerStore, Document, KycCase
from api.deps import Platform, PlatformDep
from api.kyc_limits import apply_tier
from api.openapi import CSV
from api.problems import PROBLEM_JSON, Problem
from api.profile import ProfileStore
from api.routes.auth import _current_user, caller
from core import kyc
from core.kyc import Decision, DocumentKind, KycStatus, Tier

UPLOAD_PATH = "/v1/me/kyc/documents"
router = APIRouter(tags=["kyc"])
_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
CustomerPath = Annotated[str, Path(max_length=100)]


class DocumentUpload(_Body):
    kind: DocumentKind
    content_type: Annotated[StrictStr, Field(max_length=100, examples=["application/pdf"],
                                             description="application/pdf, image/png or image/jpeg")]
    content_base64: Annotated[StrictStr, Field(min_length=1, description="the file, base64-encoded")]


class DocumentView(BaseModel):
    document_id: str
    kind: DocumentKind
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_at: datetime


class MyKyc(BaseModel):
    customer_id: str
    status: KycStatus
    tier: Tier
    requested: str | None = Field(description="what the bank asked for, when it asked for more documents")
    documents: list[DocumentView]


class CaseSummary(BaseModel):
    customer_id: str
    status: KycStatus
    tier: Tier
    flagged: bool = Field(description="the legal name matched the sanctions list at the last screening")
    submitted_at: datetime | None
    pending_seconds: int | None = Field(description="how long a pending review has waited")
    updated_at: datetime


class CaseView(CaseSummary):
    reason: str | None
    decided_at: datetime | None
    decided_by: str | None
    screening: list[dict[str, Any]]
    screened_at: datetime | None
    legal_name: str | None
    date_of_birth: str | None
    address_lines: list[str]
    postcode: str | None
    city: str | None
    country: str | None
    documents: list[DocumentView]


class KycQueue(BaseModel):
    items: list[CaseSummary]


class DecisionRequest(_Body):
    reason: Annotated[StrictStr, Field(min_length=1, max_length=500)] | None = None


class KycReport(BaseModel):
    generated_at: datetime
    by_status: dict[str, int] = Field(description="customers by KYC status (not_started, pending, verified, rejected)")
    flagged: int = Field(description="customers whose name matched the sanctions list")
    pending: int
    pending_by_age: dict[str, int] = Field(description="pending reviews by how long they have waited")
    oldest_pending_seconds: int | None


def _document_view(document: Document) -> DocumentView:
    return DocumentView(document_id=document.document_id, kind=document.kind, content_type=document.content_type,
                        size_bytes=document.size_bytes, sha256=document.sha256, uploaded_at=document.uploaded_at)


def _waited(case: KycCase, now: datetime) -> int | None:
    if case.status != "pending" or case.submitted_at is None:
        return None
    return max(0, int((now - case.submitted_at).total_seconds()))


def _summary(case: KycCase, now: datetime) -> CaseSummary:
    return CaseSummary(customer_id=case.customer_id, status=case.status, tier=kyc.tier(case.status),
                       flagged=bool(case.screening), submitted_at=case.submitted_at,
                       pending_seconds=_waited(case, now), updated_at=case.updated_at)


def _own_customer_id() -> str:
    customer_id = caller().customer_id
    assert customer_id is not None, "api/authz.py admits customers only"
    return customer_id


# ---------------------------------------------------------------- the customer's side


@router.get("/v1/me/kyc", response_model=MyKyc, name="get_my_kyc", summary="Your identity verification")
async def get_my_kyc(platform: PlatformDep) -> MyKyc:
    customer_id, store = _own_customer_id(), CustomerStore(platform.pg)
    case = await store.case(customer_id) or KycCase.empty(customer_id, datetime.now(UTC))
    return MyKyc(customer_id=customer_id, status=case.status, tier=kyc.tier(case.status),
                 requested=case.reason if case.status == "not_started" else None,
                 documents=[_document_view(d) for d in await store.documents(customer_id)])


@router.post(UPLOAD_PATH, status_code=201, response_model=DocumentView, name="upload_kyc_document",
             summary="Upload an identity document or a proof of address (PDF, PNG or JPEG, base64)",
             description="The review is pending from the first document on. 422 `unsupported_document_type`, "
                         "`document_type_mismatch` (the file is not what `content_type` says), `empty_document`, "
                         "`document_too_large`, `invalid_base64`; 413 for a body past the limit.",
             responses={413: _PROBLEMS, 422: _PROBLEMS})
async def upload_kyc_document(body: DocumentUpload, platform: PlatformDep) -> DocumentView:
    customer_id, store = _own_customer_id(), CustomerStore(platform.pg)
    user = await _current_user(platform.access)
    try:
        content = base64.b64decode(body.content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(422, "Invalid document", "content_base64: not base64", "invalid_base64") from None
    try:
        sha256 = kyc.check_document(content, body.content_type, platform.settings.kyc_max_document_bytes)
    except kyc.KycError as error:
        raise Problem(422, "Invalid document", error.detail, error.reason) from None
    status = kyc.after_upload(await store.status(customer_id))
    document = await store.add_document(customer_id, body.kind, body.content_type, content, sha256, user.user_id,
                                        status)
    await platform.access.audit.record("kyc_document_uploaded", details={
        "customer_id": customer_id, "document_id": document.document_id, "kind": body.kind,
        "size_bytes": str(document.size_bytes), "status": status})
    return _document_view(document)


# ---------------------------------------------------------------- compliance


@router.get("/v1/admin/kyc", response_model=KycQueue, name="kyc_queue",
            summary="The KYC queue: pending reviews (oldest first) and customers flagged by sanctions screening")
async def kyc_queue(platform: PlatformDep, status: KycStatus | None = None,
                    flagged: Annotated[bool, Query(description="only customers whose name matched the list")] = False,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100) -> KycQueue:
    cases = await CustomerStore(platform.pg).queue(status, flagged, limit)
    now = datetime.now(UTC)
    return KycQueue(items=[_summary(c, now) for c in cases])


def _unknown(customer_id: str) -> Problem:
    return Problem(404, "Unknown customer", f"no customer {customer_id}", "unknown_customer")


async def _case(platform: Platform, customer_id: str) -> KycCase:
    store = CustomerStore(platform.pg)
    if not await store.exists(customer_id):
        raise _unknown(customer_id)
    return await store.case(customer_id) or KycCase.empty(customer_id, datetime.now(UTC))


@router.get("/v1/admin/kyc/{customer_id}", response_model=CaseView, name="get_kyc_case",
            summary="A customer's KYC case: status, screening, profile and documents", responses={404: _PROBLEMS})
async def get_kyc_case(customer_id: CustomerPath, platform: PlatformDep) -> CaseView:
    case, store = await _case(platform, customer_id), CustomerStore(platform.pg)
    user_id = await store.user_of(customer_id)
    profile = await ProfileStore(platform.pg).get(user_id) if user_id else None
    user = await platform.access.users.by_id(user_id) if user_id else None
    summary = _summary(case, datetime.now(UTC))
    return CaseView(**summary.model_dump(), reason=case.reason, decided_at=case.decided_at,
                    decided_by=case.decided_by, screening=case.screening, screened_at=case.screened_at,
                    legal_name=(profile.legal_name if profile else None) or (user.name if user else None),
                    date_of_birth=profile.date_of_birth.isoformat() if profile and profile.date_of_birth else None,
                    address_lines=profile.address_lines if profile else [],
                    postcode=profile.postcode if profile else None, city=profile.city if profile else None,
                    country=profile.country if profile else None,
                    documents=[_document_view(d) for d in await store.documents(customer_id)])


@router.get("/v1/admin/kyc/{customer_id}/documents/{document_id}", name="get_kyc_document",
            summary="One uploaded document, as the file", response_class=Response,
            responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}}
                                         for t in kyc.CONTENT_TYPES}}, 404: _PROBLEMS})
async def get_kyc_document(customer_id: CustomerPath, document_id: Annotated[str, Path(max_length=100)],
                           platform: PlatformDep) -> Response:
    found = await CustomerStore(platform.pg).document_content(customer_id, document_id)
    if found is None:
        raise Problem(404, "Unknown document", f"no document {document_id} of customer {customer_id}",
                      "unknown_document")
    document, content = found
    await platform.access.audit.record("kyc_document_viewed", details={"customer_id": customer_id,
                                                                       "document_id": document_id})
    return Response(content, media_type=document.content_type,
                    headers={"Content-Disposition": f'attachment; filename="{document.kind}-{document_id}"',
                             "X-Content-Type-Options": "nosniff"})


async def _decide(platform: Platform, customer_id: str, decision: Decision, reason: str | None) -> CaseView:
    case = await _case(platform, customer_id)
    try:
        target = kyc.decide(case.status, decision)
    except kyc.KycError as error:
        raise Problem(409, "Invalid KYC decision", error.detail, error.reason, kyc_status=case.status) from None
    decided = await CustomerStore(platform.pg).decide(customer_id, case.status, target, reason, caller().user_id)
    if decided is None:
        raise Problem(409, "Decided meanwhile", "another reviewer decided this case first", "invalid_transition")
    await platform.access.audit.record(f"kyc_{decision}", subject_user_id=await CustomerStore(platform.pg).user_of(
        customer_id), details={"customer_id": customer_id, "from": case.status, "to": target})
    await apply_tier(platform, customer_id, target)   # the ledger enforces the tier on every account
    return await get_kyc_case(customer_id, platform)


def _reason_required(body: DecisionRequest | None) -> str:
    if body is None or body.reason is None or not body.reason.strip():
        raise Problem(422, "Invalid request", "reason: required", "missing",
                      errors=[{"loc": ["body", "reason"], "type": "missing", "msg": "required"}])
    return body.reason.strip()


_DECISION_RESPONSES: dict[int | str, dict[str, Any]] = {404: _PROBLEMS, 409: _PROBLEMS, 422: _PROBLEMS}


@router.post("/v1/admin/kyc/{customer_id}/verify", response_model=CaseView, name="verify_kyc",
             summary="Verify a pending case: the customer is in the verified tier", responses=_DECISION_RESPONSES)
async def verify_kyc(customer_id: CustomerPath, platform: PlatformDep, body: DecisionRequest | None = None) -> CaseView:
    return await _decide(platform, customer_id, "verify", body.reason if body else None)


@router.post("/v1/admin/kyc/{customer_id}/reject", response_model=CaseView, name="reject_kyc",
             summary="Reject a case, with a reason (kept for compliance; the customer sees the status only)",
             responses=_DECISION_RESPONSES)
async def reject_kyc(customer_id: CustomerPath, platform: PlatformDep, body: DecisionRequest | None = None) -> CaseView:
    return await _decide(platform, customer_id, "reject", _reason_required(body))


@router.post("/v1/admin/kyc/{customer_id}/request-more", response_model=CaseView, name="request_kyc_documents",
             summary="Ask the customer for more documents (the reason is shown to them); the case goes back to them",
             responses=_DECISION_RESPONSES)
async def request_kyc_documents(customer_id: CustomerPath, platform: PlatformDep,
                                body: DecisionRequest | None = None) -> CaseView:
    return await _decide(platform, customer_id, "request_more", _reason_required(body))


# ---------------------------------------------------------------- the report

AGE_BUCKETS = (("under_1d", 86400), ("1d_to_7d", 7 * 86400), ("7d_to_30d", 30 * 86400), ("over_30d", None))


async def _report(platform: Platform) -> KycReport:
    counts, submitted, flagged = await CustomerStore(platform.pg).report()
    now = datetime.now(UTC)
    ages = [max(0, int((now - moment).total_seconds())) for moment in submitted]
    buckets = dict.fromkeys((name for name, _ in AGE_BUCKETS), 0)
    for age in ages:
        buckets[next(name for name, bound in AGE_BUCKETS if bound is None or age < bound)] += 1
    return KycReport(generated_at=now, by_status={s: counts.get(s, 0) for s in kyc.KYC_STATUSES}, flagged=flagged,
                     pending=len(ages), pending_by_age=buckets, oldest_pending_seconds=max(ages) if ages else None)


@router.get("/v1/admin/reports/kyc", response_model=KycReport, name="kyc_report",
            summary="Customers by KYC status, and how long pending reviews have waited")
async def kyc_report(platform: PlatformDep) -> KycReport:
    return await _report(platform)


@router.get("/v1/admin/reports/kyc.csv", response_class=StreamingResponse, responses=CSV, name="kyc_report_csv",
            summary="The KYC report as CSV: one line per measure")
async def kyc_report_csv(platform: PlatformDep) -> StreamingResponse:
    report = await _report(platform)

    async def lines() -> AsyncIterator[str]:
        yield csv_line(("measure", "key", "count"))
        for status, count in report.by_status.items():
            yield csv_line(("status", status, count))
        for bucket, count in report.pending_by_age.items():
            yield csv_line(("pending_age", bucket, count))
        yield csv_line(("flagged", "sanctions", report.flagged))

    return csv_response(lines(), f"kyc-{report.generated_at.date().isoformat()}.csv", {})
