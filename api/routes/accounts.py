"""Account queries."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ViewDep
from api.models import AccountView
from api.presenters import account_view
from api.problems import PROBLEM_JSON, Problem

router = APIRouter(prefix="/v1", tags=["queries"])


@router.get("/accounts/{account_id}", response_model=AccountView, responses={404: {"content": {PROBLEM_JSON: {}}}})
async def get_account(account_id: str, view: ViewDep) -> AccountView:
    state = view.accounts.get(account_id)
    if state is None:
        raise Problem(404, "Unknown account", f"account {account_id} does not exist", "unknown_account")
    return account_view(state)
