"""Staff endpoints for fraud and AML: the case queue, reviewers' decisions, and the regulatory reports.

Reads come from the PostgreSQL read model (cases, transactions) with the same freshness headers as every
query. A decision is a ReviewCase command on the same path as customers' commands (idempotency claim, the
bus, `?wait=true`). The reviewer is the authenticated caller (api/authz.py lets analysts and admins decide):
their user id goes into the ReviewCase command and so into the ledger's CaseReviewed event.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from api.csv_export import csv_line, csv_response
from api.deps import POSITION_HEADER, FreshnessDep, PlatformDep, ViewDep, utc_moment
from api.ledger_view import LedgerView
from api.models import (CaseDecision, CasePage, CaseView, CommandAccepted, CommandOutcome, CtrEntry, CtrReport, ReviewRequest,
                        SUPPORTED_CURRENCIES, SarCandidate, SarCandidates)
from api.presenters import case_view, command_status, ctr_entry, sar_candidate
from api.openapi import CSV
from api.problems import PROBLEM_JSON, Problem
from api.readmodels import POLL_S, CaseFilter
from api.routes.auth import caller
from api.routes.commands import Wait, submit
from core import commands as c
from core.events import RiskCase
from core.money import CURRENCY_DIGITS, MoneyError, currency_digits, parse_amount
from core.readmodel import DECIDED_STATUS, REVIEWABLE_STATUSES, CaseStatus, format_positions, parse_positions
from core.risk.rules import Severity

router = APIRouter(prefix="/v1/admin", tags=["admin"])

MAX_PAGE = 500
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "unknown case", "content": {PROBLEM_JSON: {}}}}
_DECISION_RESPONSES: dict[int | str, dict[str, Any]] = _NOT_FOUND | {
    200: {"model": CaseDecision, "description": "decided (with wait=true)"},
    202: {"model": CommandAccepted | CommandOutcome, "description": "the decision is on the command log; outcome "
          "pending"},
    409: {"description": "the case is blocked or already decided", "content": {PROBLEM_JSON: {}}},
}

Statuses = Annotated[list[CaseStatus] | None, Query(alias="status", description="repeat to match several")]
Severities = Annotated[list[Severity] | None, Query(alias="severity", description="repeat to match several")]
RuleId = Annotated[str | None, Query(alias="rule", max_length=64, description="a rule id the case hit",
                                     examples=["structuring-cash-24h"])]
Identifier = Annotated[str | None, Query(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Day = Annotated[date, Query(alias="date", description="the UTC day, YYYY-MM-DD", examples=["2026-11-24"])]
CurrencyFilter = Annotated[str | None, Query(pattern=r"^[A-Z]{3}$", description="ISO-4217 code", examples=["EUR"],
                                             json_schema_extra=SUPPORTED_CURRENCIES)]
Since = Annotated[datetime | date, Query(alias="from", description="inclusive, ISO 8601 date or datetime")]
Until = Annotated[datetime | date, Query(alias="to", description="exclusive, ISO 8601 date or datetime")]

_CTR_COLUMNS = tuple(CtrEntry.model_fields)
_SAR_COLUMNS = tuple(SarCandidate.model_fields)


def _unknown_case(case_id: str) -> Problem:
    return Problem(404, "Unknown case", f"no risk case {case_id}", "unknown_case")


# ---------------------------------------------------------------- the case queue


def _encode_cursor(row: Any) -> str:
    raw = json.dumps({"at": row["created_at"].isoformat(), "id": row["case_id"]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return utc_moment(datetime.fromisoformat(data["at"])), str(data["id"])
    except (ValueError, KeyError, TypeError):
        raise Problem(400, "Invalid cursor", "cursor is not one this API returned", "invalid_cursor") from None


@router.get("/cases", response_model=CasePage, summary="Risk cases, newest first (PostgreSQL)")
async def list_cases(platform: PlatformDep, fresh: FreshnessDep, response: Response, status: Statuses = None,
                     rule: RuleId = None, severity: Severities = None, account_id: Identifier = None,
                     customer_id: Identifier = None, limit: Limit = 50, cursor: Cursor = None) -> CasePage:
    positions = await fresh.ensure("postgres")
    where = CaseFilter(statuses=list(status or []), severities=list(severity or []), rule_id=rule,
                       account_id=account_id, customer_id=customer_id)
    rows = await platform.reads.cases(where, _decode_cursor(cursor) if cursor else None, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    fresh.label(response, "postgres", positions)
    return CasePage(items=[case_view(r) for r in rows], next_cursor=_encode_cursor(rows[-1]) if more else None)


@router.get("/cases/{case_id}", response_model=CaseView, responses=_NOT_FOUND, summary="One risk case")
async def get_case(case_id: str, platform: PlatformDep, fresh: FreshnessDep, response: Response) -> CaseView:
    positions = await fresh.ensure("postgres")
    row = await platform.reads.case(case_id)
    if row is None:
        raise _unknown_case(case_id)
    fresh.label(response, "postgres", positions)
    return case_view(row)


# ---------------------------------------------------------------- decisions


def review_key(case_id: str) -> str:
    """The Idempotency-Key of a case's decision: one per case, so a retried or concurrent second decision is
    the same command (same body) or a 409 (another one). It holds a character above U+00FF, which no HTTP
    header can carry (they are latin-1): a customer, who knows the case id (it is their own command's id),
    cannot claim this key first with a command of theirs and so lock the reviewers out."""
    return f"case-review\u2192{case_id}"


# Keys are their caller's, but a case's decision key is the reviewers' together: a second reviewer's decision
# must meet the first one's (a 409), not make a second decision.
REVIEW_KEY_SCOPE = "bank:case-reviews"


def _check_decidable(row: Any, decision: str, reviewer: str, body: ReviewRequest) -> None:
    """409 unless the case waits for a decision. The very same decision again passes: it is a retry, which
    the idempotency key turns into the same command and the same outcome."""
    status = row["status"]
    if status in REVIEWABLE_STATUSES:
        return
    if status == "blocked":
        raise Problem(409, "Case is blocked", f"case {row['case_id']} was blocked: the ledger rejected the "
                      f"movement, there is nothing to decide", "case_blocked", case_status=status)
    if (status, row["reviewer"], row["comment"]) != (DECIDED_STATUS[decision], reviewer, body.comment):
        raise _already_decided(row["case_id"], f"{status} by {row['reviewer']}", status)


def _check_not_own(view: LedgerView, row: Any, reviewer: str) -> None:
    """Maker-checker: nobody decides the case of a movement they submitted (the ledger refuses it too, for a
    hold; refusing here first keeps the case's one decision for another reviewer)."""
    outcome = view.outcomes.get(row["correlation_id"])
    events = (outcome.events or []) if outcome is not None else []
    if any(isinstance(event, RiskCase) and event.command_id == row["case_id"] and event.submitted_by == reviewer
           for event in events):
        raise Problem(403, "Own movement", f"you submitted the movement of case {row['case_id']}: another "
                      f"reviewer must decide it (maker-checker)", "own_movement")


def _already_decided(case_id: str, detail: str, status: str | None = None) -> Problem:
    return Problem(409, "Case already decided", f"case {case_id} was already decided ({detail})",
                   "case_already_decided", **({"case_status": status} if status else {}))


async def _movement(view: LedgerView, correlation_id: str, timeout_s: float) -> Any:
    """The held movement's outcome once the decision's posting or rejection has reached the ledger view (it
    follows CaseReviewed on the same partition), or as it stands after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = view.outcomes.get(correlation_id)
        if (outcome is not None and outcome.status != "held") or time.monotonic() > deadline:
            return outcome
        await asyncio.sleep(POLL_S)


async def _with_movement(view: LedgerView, decided: JSONResponse, row: Any, decision: str,
                         timeout_s: float) -> JSONResponse:
    """The decision's outcome plus, for a hold, the movement's, with a position covering both: a reviewer
    who reads with it sees the posting (or its absence) as well as the decision."""
    body = json.loads(decided.body)
    positions = parse_positions(body.get("position") or "")
    movement = None
    if row["action"] == "hold":
        outcome = await _movement(view, row["correlation_id"], timeout_s)
        if outcome is not None:
            movement = command_status(outcome).model_dump(mode="json")
        for partition, offset in view.outcome_positions.get(row["correlation_id"], {}).items():
            positions[partition] = max(positions.get(partition, 0), offset)
    position = format_positions(positions)
    body |= {"position": position, "case_id": row["case_id"], "decision": decision, "movement": movement}
    return JSONResponse(body, status_code=decided.status_code, headers={POSITION_HEADER: position})


async def _decide(case_id: str, decision: str, body: ReviewRequest, request: Request, platform: PlatformDep,
                  view: ViewDep, wait: bool) -> Any:
    row = await platform.reads.case(case_id)
    if row is None:
        raise _unknown_case(case_id)
    reviewer = caller().user_id
    _check_not_own(view, row, reviewer)
    _check_decidable(row, decision, reviewer, body)

    def build(command_id: str) -> c.Command:
        return c.ReviewCase(command_id=command_id, account_id=row["account_id"], issued_at=platform.time.now(),
                            correlation_id=command_id, case_id=case_id, decision=decision, reviewer=reviewer,
                            comment=body.comment)

    try:
        response = await submit(request, platform, view, body.model_dump() | {"reviewer": reviewer},
                                review_key(case_id), wait, build, row["customer_id"], key_scope=REVIEW_KEY_SCOPE)
    except Problem as problem:
        if problem.reason == "idempotency_key_reused":   # another decision got there first
            raise _already_decided(case_id, "another decision was submitted") from None
        raise
    if not wait or response.status_code != 200:
        return response   # 202: on the log, outcome pending
    return await _with_movement(view, response, row, decision, platform.settings.command_timeout.total_seconds())


def _decision_route(decision: str, summary: str) -> None:
    @router.post(f"/cases/{{case_id}}/{decision}", status_code=202, responses=_DECISION_RESPONSES, summary=summary,
                 name=f"{decision}_case")
    async def decide(case_id: str, body: ReviewRequest, request: Request, platform: PlatformDep, view: ViewDep,
                     wait: Wait = False) -> Any:
        return await _decide(case_id, decision, body, request, platform, view, wait)


_decision_route("approve", "Approve a case: a held movement posts; an alert is closed")
_decision_route("reject", "Reject a case: a held movement is released and rejected; an alert is closed")


# ---------------------------------------------------------------- reports


def _ctr_thresholds(threshold: str, currency: str | None) -> dict[str, int]:
    """The threshold in minor units of each currency (or of the one asked for)."""
    if currency is not None:
        try:
            currency_digits(currency)
        except MoneyError as error:
            raise Problem(422, "Unknown currency", error.detail, error.reason) from None
    try:
        return {ccy: parse_amount(threshold, ccy) for ccy in ([currency] if currency else CURRENCY_DIGITS)}
    except MoneyError as error:
        raise Problem(500, "CTR threshold misconfigured", f"BANK_CTR_THRESHOLD: {error.detail}",
                      "ctr_threshold_invalid") from None


async def _ctr_entries(platform: PlatformDep, day: date, currency: str | None) -> list[CtrEntry]:
    thresholds = _ctr_thresholds(platform.settings.ctr_threshold, currency)
    start = utc_moment(day)
    if day == date.max:   # the day after it is not a date Python (or the report's window) can hold
        raise Problem(422, "Date out of range", f"{day.isoformat()} is the last day Python can represent; the "
                      "report needs the day after it", "date_out_of_range")
    rows = await platform.reads.cash_totals(start, start + timedelta(days=1), thresholds)
    return [ctr_entry(r) for r in rows]


@router.get("/reports/ctr", response_model=CtrReport,
            summary="Currency transaction report: each customer's cash in or out of a UTC day at the threshold")
async def ctr_report(day: Day, platform: PlatformDep, fresh: FreshnessDep, response: Response,
                     currency: CurrencyFilter = None) -> CtrReport:
    positions = await fresh.ensure("postgres")
    items = await _ctr_entries(platform, day, currency)
    fresh.label(response, "postgres", positions)
    return CtrReport(date=day, currency=currency, threshold=platform.settings.ctr_threshold, items=items)


@router.get("/reports/ctr.csv", response_class=StreamingResponse, responses=CSV,
            summary="The currency transaction report as CSV")
async def ctr_report_csv(day: Day, platform: PlatformDep, fresh: FreshnessDep,
                         currency: CurrencyFilter = None) -> StreamingResponse:
    positions = await fresh.ensure("postgres")
    items = await _ctr_entries(platform, day, currency)

    async def lines() -> AsyncIterator[str]:
        yield csv_line(_CTR_COLUMNS)
        for item in items:
            yield csv_line(getattr(item, column) for column in _CTR_COLUMNS)

    return csv_response(lines(), f"ctr-{day.isoformat()}.csv", fresh.headers("postgres", positions))


def _period(since: datetime | date, until: datetime | date) -> tuple[datetime, datetime]:
    start, end = utc_moment(since), utc_moment(until)
    if start >= end:
        raise Problem(422, "Invalid period", "`from` must be before `to`", "invalid_period")
    return start, end


@router.get("/reports/sar-candidates", response_model=SarCandidates,
            summary="Cases with anti-money-laundering hits created in [from, to): material for SARs")
async def sar_candidates(since: Since, until: Until, platform: PlatformDep, fresh: FreshnessDep,
                         response: Response) -> SarCandidates:
    start, end = _period(since, until)
    positions = await fresh.ensure("postgres")
    items = [sar_candidate(r) async for r in platform.reads.stream_sar_candidates(start, end)]
    fresh.label(response, "postgres", positions)
    return SarCandidates(period_start=start, period_end=end, items=items)


@router.get("/reports/sar-candidates.csv", response_class=StreamingResponse, responses=CSV,
            summary="The SAR candidates as CSV, streamed")
async def sar_candidates_csv(since: Since, until: Until, platform: PlatformDep,
                             fresh: FreshnessDep) -> StreamingResponse:
    start, end = _period(since, until)
    positions = await fresh.ensure("postgres")

    async def lines() -> AsyncIterator[str]:
        yield csv_line(_SAR_COLUMNS)
        async for row in platform.reads.stream_sar_candidates(start, end):
            view = sar_candidate(row).model_dump(mode="json")
            yield csv_line(view[column] for column in _SAR_COLUMNS)

    name = f"sar-candidates-{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}.csv"
    return csv_response(lines(), name, fresh.headers("postgres", positions))
