"""The bank's books, for staff: the trial balance and one ledger account's entries, as they are or were at a
moment or a log position. Folded from the ledger log with core/books.py (the legs every money-moving event
implies) over the same events the point-in-time balance folds (core.pointintime.events_as_of).

Like GET /v1/accounts/{id}/balance?as_of= it reads the log from its start on every request: for the
occasional question of an accountant or an auditor, not for a hot path.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.deps import Platform, PlatformDep, ViewDep, utc_moment
from api.ledger_history import AsOf, check_within_log, cutoff_of, read_ledger_until
from api.ledger_view import LedgerView
from api.models import SUPPORTED_CURRENCIES
from api.problems import PROBLEM_JSON, Problem
from core import books
from core.ledger import AccountState
from core.money import CURRENCY_DIGITS, format_amount
from core.pointintime import Cutoff, LoggedEvent, describe, whole_log_cutoff

router = APIRouter(prefix="/v1/admin/books", tags=["books"])

MAX_PAGE = 500
CurrencyFilter = Annotated[str | None, Query(pattern=r"^[A-Z]{3}$", description="ISO-4217 code; default: every "
                                             "currency with entries", examples=["EUR"],
                                             json_schema_extra=SUPPORTED_CURRENCIES)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
LedgerAccountId = Annotated[str, Path(max_length=200, description="`transit`, `cash:vault`, `cash:<staff id>`, "
                                      "`customer:<account id>`, ... (the chart of accounts: core/books.py)",
                                      examples=["transit"])]
Cursor = Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")]
_AS_OF_ANSWERS: dict[int | str, dict[str, Any]] = {
    422: {"description": "unknown currency; as_of not a moment or a position, in the future or past the log's end",
          "content": {PROBLEM_JSON: {}}},
    503: {"description": "the ledger log cannot be read now", "content": {PROBLEM_JSON: {}}},
}
_ENTRY_ANSWERS: dict[int | str, dict[str, Any]] = _AS_OF_ANSWERS | {
    400: {"description": "a cursor this API did not return", "content": {PROBLEM_JSON: {}}},
    404: {"description": "no such ledger account", "content": {PROBLEM_JSON: {}}},
}

Side = Literal["debit", "credit"]


class LedgerAccountLine(BaseModel):
    ledger_account_id: str = Field(examples=["transit", "cash:vault", "customer:acc-1"])
    kind: str = Field(description="its line of the chart of accounts")
    type: Literal["asset", "liability", "equity", "income", "expense"]
    normal_side: Side
    constraint: str = Field(description="what its balance must respect")
    debits: str
    credits: str
    balance: str = Field(description="debits - credits: positive on the debit side")
    normal_balance: str = Field(description="the balance read on the account's normal side")


class ConstraintBroken(BaseModel):
    ledger_account_id: str = Field(description="`cash` for the bank's cash as a whole (vault and drawers)")
    rule: str
    normal_balance: str


class CurrencyTrialBalance(BaseModel):
    currency: str
    accounts: list[LedgerAccountLine]
    total_debits: str
    total_credits: str
    total: str = Field(description="debits - credits over every account: zero when the books balance")
    balanced: bool
    constraints_broken: list[ConstraintBroken]


class TrialBalanceReport(BaseModel):
    as_of: str = Field(description="the cutoff the answer folds the log up to")
    events: int = Field(description="events folded")
    currencies: list[CurrencyTrialBalance]


class LedgerEntry(BaseModel):
    side: Side
    amount: str
    currency: str
    balance_after: str = Field(description="the ledger account's balance (debits - credits) in this currency after "
                                           "this entry")
    event_type: str
    event_id: str
    account_id: str = Field(description="the bank account the event is keyed by")
    command_id: str
    occurred_at: datetime
    position: str = Field(description="the event's place in the log, partition:offset")


class LedgerEntryPage(BaseModel):
    ledger_account_id: str
    kind: str
    as_of: str
    items: list[LedgerEntry] = Field(description="oldest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (later) page; null at the end")


@router.get("/trial-balance", response_model=TrialBalanceReport, responses=_AS_OF_ANSWERS,
            summary="The trial balance: every ledger account's balance, per currency, now or as it was")
async def trial_balance(platform: PlatformDep, view: ViewDep, currency: CurrencyFilter = None,
                        as_of: AsOf = None) -> TrialBalanceReport:
    _check_currency(currency)
    cutoff, log = await _log(platform, view, as_of)
    cutoff = whole_log_cutoff(log, cutoff)   # the cut the answer is of, every partition named
    folded = books.books_as_of(log, cutoff)
    currencies = [currency] if currency else folded.currencies
    return TrialBalanceReport(as_of=describe(cutoff), events=folded.events,
                              currencies=[_trial(folded.trial_balance(of)) for of in currencies])


@router.get("/accounts/{ledger_account_id}/entries", response_model=LedgerEntryPage, responses=_ENTRY_ANSWERS,
            summary="One ledger account's entries, oldest first, with its balance after each")
async def ledger_account_entries(ledger_account_id: LedgerAccountId, platform: PlatformDep, view: ViewDep,
                                 currency: CurrencyFilter = None, as_of: AsOf = None, limit: Limit = 100,
                                 cursor: Cursor = None) -> LedgerEntryPage:
    kind = _kind(ledger_account_id, view.accounts)
    _check_currency(currency)
    after = _decode_cursor(cursor) if cursor else None
    cutoff, log = await _log(platform, view, as_of)
    cutoff = whole_log_cutoff(log, cutoff)
    entries = [entry for entry in books.entries_of(log, cutoff, ledger_account_id, currency)
               if after is None or entry.key > after]
    page = entries[:limit]
    return LedgerEntryPage(ledger_account_id=ledger_account_id, kind=kind.kind, as_of=describe(cutoff),
                           items=[_entry(entry) for entry in page],
                           next_cursor=_encode_cursor(page[-1]) if len(entries) > limit else None)


# ---------------------------------------------------------------- reading and checking


async def _log(platform: Platform, view: LedgerView, as_of: str | None) -> tuple[Cutoff, list[LoggedEvent]]:
    now = datetime.now(UTC)
    cutoff = cutoff_of(as_of, now)
    await check_within_log(cutoff, now, view)
    try:
        return cutoff, await read_ledger_until(platform.settings.kafka, cutoff)
    except KafkaError:
        raise Problem(503, "Broker unavailable", "cannot read the ledger log; retry shortly",
                      "broker_unavailable") from None


def _check_currency(currency: str | None) -> None:
    if currency is not None and currency not in CURRENCY_DIGITS:
        raise Problem(422, "Unknown currency", f"currency: {currency!r} is not a supported ISO-4217 code",
                      "unknown_currency")


def _kind(ledger_account_id: str, accounts: Mapping[str, AccountState]) -> books.AccountKind:
    """The chart line of the id; 404 for an id that names no ledger account, or a customer account nobody has."""
    try:
        kind = books.kind_of(ledger_account_id)
    except books.UnknownLedgerAccount as error:
        raise Problem(404, "Unknown ledger account", str(error), "unknown_ledger_account") from None
    account_id = ledger_account_id.partition(":")[2]
    if kind.kind == books.CUSTOMER and account_id not in accounts:
        raise Problem(404, "Unknown ledger account", f"no account {account_id}", "unknown_ledger_account")
    return kind


def _encode_cursor(entry: books.Entry) -> str:
    at, partition, offset, leg = entry.key
    raw = json.dumps({"at": at.isoformat(), "p": partition, "o": offset, "l": leg})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int, int, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return utc_moment(datetime.fromisoformat(data["at"])), int(data["p"]), int(data["o"]), int(data["l"])
    except (ValueError, KeyError, TypeError, OverflowError):   # OverflowError: int() of a JSON 1e400
        raise Problem(400, "Invalid cursor", "cursor is not one this API returned", "invalid_cursor") from None


# ---------------------------------------------------------------- as JSON


def _trial(trial: books.TrialBalance) -> CurrencyTrialBalance:
    def money(minor: int) -> str:
        return format_amount(minor, trial.currency)

    return CurrencyTrialBalance(
        currency=trial.currency,
        accounts=[LedgerAccountLine(ledger_account_id=row.ledger_account_id, kind=row.kind.kind, type=row.kind.type,
                                    normal_side=row.kind.normal_side, constraint=row.kind.rule,
                                    debits=money(row.debits), credits=money(row.credits), balance=money(row.balance),
                                    normal_balance=money(books.normal_balance(row.kind, row.balance)))
                  for row in trial.rows],
        total_debits=money(trial.debits), total_credits=money(trial.credits), total=money(trial.total),
        balanced=trial.total == 0,
        constraints_broken=[ConstraintBroken(ledger_account_id=v.ledger_account_id, rule=v.rule,
                                             normal_balance=money(v.balance)) for v in trial.violations])


def _entry(entry: books.Entry) -> LedgerEntry:
    leg = entry.leg
    return LedgerEntry(side=leg.side, amount=format_amount(leg.amount, leg.currency), currency=leg.currency,
                       balance_after=format_amount(entry.balance_after, leg.currency), event_type=entry.event_type,
                       event_id=entry.event_id, account_id=entry.account_id, command_id=entry.command_id,
                       occurred_at=entry.occurred_at, position=f"{entry.partition}:{entry.offset}")
