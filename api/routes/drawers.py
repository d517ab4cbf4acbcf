"""Tellers' cash drawers (issue 14 point 4): open with a float from the vault, count, close with the over/short
posted to suspense, and read a drawer's state and book balance. Staff only: a teller works their own drawer
(another's is 403 `not_your_drawer`); an admin (a supervisor) may act on any. See core/drawers.py for the rules
and core/books.py for the legs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Platform, PlatformDep, ViewDep
from api.ledger_view import LedgerView
from api.models import Currency, DecimalString
from api.problems import PROBLEM_JSON, Problem
from api.routes.auth import caller
from core import drawers
from core.events import DrawerClosed, DrawerCounted
from core.money import MoneyError, format_amount, parse_amount

router = APIRouter(prefix="/v1/teller/drawers", tags=["teller: cash drawers"])

_PROBLEMS = {"content": {PROBLEM_JSON: {}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {403: _PROBLEMS, 409: _PROBLEMS, 422: _PROBLEMS}


class OpenDrawer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: Currency
    float_amount: DecimalString = Field("0", description="cash moved from the vault into the drawer")


class CountDrawer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    counted: DecimalString = Field(description="the cash in the drawer, as counted (in the drawer's currency)")


class DrawerCount(BaseModel):
    counted: str
    book_balance: str
    difference: str = Field(description="counted minus book balance: positive over, negative short")
    at: datetime


class DrawerView(BaseModel):
    staff_id: str
    status: str = Field(description="open, closed or never_opened")
    currency: str | None
    session: int
    float_amount: str | None
    opened_at: datetime | None
    book_balance: str | None = Field(description="the drawer's balance in the books now (its currency)")
    last_count: DrawerCount | None = Field(description="the last count, or the close, of this session")


def _staff(staff_id: str) -> str:
    principal = caller()
    if staff_id == "me":
        return principal.user_id
    if principal.role != "admin" and staff_id != principal.user_id:
        raise Problem(403, "Not your drawer", "a teller works their own drawer only (`me`)", "not_your_drawer")
    return staff_id


def _minor(text: str, currency: str, field: str) -> int:
    try:
        return parse_amount(text, currency, allow_zero=True)
    except MoneyError as error:
        raise Problem(422, "Invalid amount", f"{field}: {error.detail}", error.reason) from None


def _refused(error: drawers.DrawerError) -> Problem:
    status = 422 if error.reason == "invalid_amount" else 409
    return Problem(status, "Drawer", error.detail, error.reason)


def _count(event: DrawerCounted | DrawerClosed | None) -> DrawerCount | None:
    if event is None:
        return None
    return DrawerCount(counted=format_amount(event.counted, event.currency),
                       book_balance=format_amount(event.book_balance, event.currency),
                       difference=format_amount(event.difference, event.currency), at=event.occurred_at)


async def _view(platform: Platform, view: LedgerView, staff_id: str) -> DrawerView:
    drawer = view.drawers.get(staff_id)
    if drawer is None:
        return DrawerView(staff_id=staff_id, status="never_opened", currency=None, session=0, float_amount=None,
                          opened_at=None, book_balance=None, last_count=None)
    balance = await platform.drawers.book_balance(staff_id, drawer.currency)
    return DrawerView(staff_id=staff_id, status=drawer.status, currency=drawer.currency, session=drawer.session,
                      float_amount=format_amount(drawer.float_amount, drawer.currency), opened_at=drawer.opened_at,
                      book_balance=format_amount(balance, drawer.currency), last_count=_count(drawer.last_count))


def _timeout(platform: Platform) -> float:
    return platform.settings.command_timeout.total_seconds()


@router.get("/{staff_id}", response_model=DrawerView, name="get_drawer", responses=_RESPONSES,
            summary="A teller's drawer: open or closed, its float, its balance in the books, the last count")
async def get_drawer(staff_id: str, platform: PlatformDep, view: ViewDep) -> DrawerView:
    return await _view(platform, view, _staff(staff_id))


@router.post("/{staff_id}/open", response_model=DrawerView, name="open_drawer", responses=_RESPONSES,
             summary="Open the drawer for the day with a float from the vault")
async def open_drawer(staff_id: str, body: OpenDrawer, platform: PlatformDep, view: ViewDep) -> DrawerView:
    staff_id = _staff(staff_id)
    amount = _minor(body.float_amount, body.currency, "float_amount")
    async with platform.drawers.locks[staff_id]:
        try:
            event = drawers.open_drawer(view.drawers.get(staff_id), staff_id, body.currency, amount,
                                        caller().user_id, datetime.now(UTC))
        except drawers.DrawerError as error:
            raise _refused(error) from None
        await platform.drawers.write(event, view, _timeout(platform))
    return await _view(platform, view, staff_id)


@router.post("/{staff_id}/count", response_model=DrawerView, name="count_drawer", responses=_RESPONSES,
             summary="Record a count of the open drawer against its balance in the books (nothing is posted)")
async def count_drawer(staff_id: str, body: CountDrawer, platform: PlatformDep, view: ViewDep) -> DrawerView:
    return await _counted(platform, view, _staff(staff_id), body, closing=False)


@router.post("/{staff_id}/close", response_model=DrawerView, name="close_drawer", responses=_RESPONSES,
             summary="Close the drawer: the over/short to suspense, the counted cash back to the vault")
async def close_drawer(staff_id: str, body: CountDrawer, platform: PlatformDep, view: ViewDep) -> DrawerView:
    return await _counted(platform, view, _staff(staff_id), body, closing=True)


async def _counted(platform: Platform, view: LedgerView, staff_id: str, body: CountDrawer,
                   closing: bool) -> DrawerView:
    async with platform.drawers.locks[staff_id]:
        drawer = view.drawers.get(staff_id)
        currency = drawer.currency if drawer is not None else "EUR"
        counted = _minor(body.counted, currency, "counted")
        decide = drawers.close_drawer if closing else drawers.count_drawer
        try:
            decide(drawer, staff_id, counted, 0, caller().user_id, datetime.now(UTC))   # checks before the fold
            balance = await platform.drawers.book_balance(staff_id, currency)
            event = decide(drawer, staff_id, counted, balance, caller().user_id, datetime.now(UTC))
        except drawers.DrawerError as error:
            raise _refused(error) from None
        await platform.drawers.write(event, view, _timeout(platform))
    return await _view(platform, view, staff_id)
