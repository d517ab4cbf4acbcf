"""Point in time: an account's balance, available balance and status as they were at a moment or a log position,
folded from the ledger log with core.ledger.apply (core/pointintime.py) rather than read from a read model.

It reads the log from its start up to the cutoff on every request: meant for the occasional question of a
customer, an auditor or an analyst, not for a hot path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.authz import unknown_account
from api.deps import PlatformDep, ViewDep
from api.ledger_history import AsOf, check_within_log, cutoff_of, read_ledger_until
from api.problems import PROBLEM_JSON, Problem
from core.money import format_amount
from core.pointintime import account_as_of, describe

router = APIRouter(prefix="/v1", tags=["point in time"])

_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown account, or not yet open at that point", "content": {PROBLEM_JSON: {}}},
    422: {"description": "as_of is not a moment or a position, in the future or past the log's end",
          "content": {PROBLEM_JSON: {}}},
}


class BalanceAsOf(BaseModel):
    account_id: str
    customer_id: str
    as_of: str = Field(description="the cutoff the answer folds the log up to")
    currency: str
    balance: str
    available_balance: str = Field(description="balance + overdraft limit - amounts held for review")
    held: str = Field(description="debits held for review (reserved)")
    overdraft_limit: str
    status: Literal["open", "frozen", "closed"]
    version: int = Field(description="the account's sequence: how many of its events changed it by then")


@router.get("/accounts/{account_id}/balance", response_model=BalanceAsOf, responses=_ANSWERS,
            summary="An account's balance and status as they were at a moment or a log position")
async def account_balance(account_id: str, platform: PlatformDep, view: ViewDep, as_of: AsOf = None) -> BalanceAsOf:
    now = datetime.now(UTC)
    cutoff = cutoff_of(as_of, now)
    if account_id not in view.accounts:
        raise unknown_account(account_id)
    await check_within_log(cutoff, now, view)
    state = account_as_of(await read_ledger_until(platform.settings.kafka, cutoff), account_id, cutoff)
    if state is None:
        raise Problem(404, "Not open yet", f"account {account_id} was not open yet at {describe(cutoff)}",
                      "not_open_yet")

    def money(minor: int) -> str:
        return format_amount(minor, state.currency)

    return BalanceAsOf(account_id=account_id, customer_id=state.customer_id, as_of=describe(cutoff),
                       currency=state.currency, balance=money(state.balance),
                       available_balance=money(state.available_balance), held=money(state.held_debits),
                       overdraft_limit=money(state.overdraft_limit), status=state.status, version=state.sequence)
