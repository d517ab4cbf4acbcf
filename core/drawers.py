"""Tellers' cash drawers (issue 14 point 4): opened with a float from the vault, counted, closed. Pure.

A drawer is `cash:<staff id>` in the books (core/books.py): the cash a teller takes in and pays out at the counter
posts there. Its events are on bank.ledger.events, keyed by `drawer:<staff id>` (no bank account):

| event          | legs                                                                                    |
|----------------|-----------------------------------------------------------------------------------------|
| DrawerOpened   | debit the drawer, credit `cash:vault`: the float                                         |
| DrawerCounted  | none: a count during the day, recorded with its difference                               |
| DrawerClosed   | the over/short against `suspense` (short: debit suspense, credit the drawer; over: the   |
|                | reverse), then the counted cash back to the vault (debit `cash:vault`, credit the drawer) |

So a closed drawer is at zero in the books, every event's legs balance, and an over/short waits in suspense
until someone explains it. The book balance a count or close compares with is the drawer's balance in the books
when the teller counts; the event records it, and the difference, so the posting is what the teller was shown.

Rules: one drawer per staff member, in one currency at a time; it opens only when closed (409 drawer_open) and
counts or closes only when open (409 drawer_not_open). A teller's cash deposit or withdrawal needs their drawer
open in the movement's currency (`check_cash`; BANK_DRAWER_REQUIRED, on by default: a bank does not take cash
into a drawer nobody has opened); admins' back-office cash movements are not tied to a drawer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core import events as e
from core.commands import derive_id

DRAWER_PREFIX = "drawer:"


class DrawerError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True, slots=True)
class Drawer:
    staff_id: str
    status: str                # open | closed
    currency: str
    session: int               # 1 for the drawer's first opening, one more per opening
    sequence: int              # the drawer's events so far
    float_amount: int
    opened_at: datetime
    last_count: e.DrawerCounted | e.DrawerClosed | None = None


def drawer_key(staff_id: str) -> str:
    return f"{DRAWER_PREFIX}{staff_id}"


@dataclass
class Drawers:
    """Every drawer, folded from the ledger's drawer events (idempotent by sequence)."""

    drawers: dict[str, Drawer] = field(default_factory=dict)

    def apply(self, event: e.Event) -> None:
        if not isinstance(event, e.DRAWER_EVENTS):
            return
        staff_id: str = event.staff_id  # type: ignore[attr-defined]
        current = self.drawers.get(staff_id)
        if current is not None and event.sequence <= current.sequence:
            return
        if isinstance(event, e.DrawerOpened):
            self.drawers[staff_id] = Drawer(staff_id, "open", event.currency, (current.session if current else 0) + 1,
                                            event.sequence, event.float_amount, event.occurred_at)
        elif current is not None and isinstance(event, (e.DrawerCounted, e.DrawerClosed)):
            status = "closed" if isinstance(event, e.DrawerClosed) else current.status
            self.drawers[staff_id] = Drawer(staff_id, status, current.currency, current.session, event.sequence,
                                            current.float_amount, current.opened_at, event)

    def get(self, staff_id: str) -> Drawer | None:
        return self.drawers.get(staff_id)


@dataclass(frozen=True, slots=True)
class _Ids:
    event_id: str
    command_id: str
    account_id: str


def _ids(staff_id: str, session: int, kind: type[e.Event], extra: str = "") -> _Ids:
    """Derived from the drawer and its session, so two instances deciding the same step write one event."""
    command_id = derive_id("drawer", staff_id, str(session), kind.__name__, extra)
    return _Ids(e.event_id_for(command_id, kind), command_id, drawer_key(staff_id))


def open_drawer(drawer: Drawer | None, staff_id: str, currency: str, float_amount: int, by: str,
                now: datetime) -> e.DrawerOpened:
    if drawer is not None and drawer.status == "open":
        raise DrawerError("drawer_open", f"the drawer of {staff_id} is open already (in {drawer.currency}): close it "
                          f"first")
    if float_amount < 0:
        raise DrawerError("invalid_amount", "a float is not negative")
    session = (drawer.session if drawer else 0) + 1
    ids = _ids(staff_id, session, e.DrawerOpened)
    return e.DrawerOpened(event_id=ids.event_id, command_id=ids.command_id, correlation_id=ids.command_id,
                          account_id=ids.account_id, occurred_at=now,
                          sequence=(drawer.sequence if drawer else 0) + 1, staff_id=staff_id, currency=currency,
                          float_amount=float_amount, opened_by=by)


def _open(drawer: Drawer | None, staff_id: str) -> Drawer:
    if drawer is None or drawer.status != "open":
        raise DrawerError("drawer_not_open", f"the drawer of {staff_id} is not open")
    return drawer


def count_drawer(drawer: Drawer | None, staff_id: str, counted: int, book_balance: int, by: str,
                 now: datetime) -> e.DrawerCounted:
    current = _open(drawer, staff_id)
    if counted < 0:
        raise DrawerError("invalid_amount", "a count is not negative")
    ids = _ids(staff_id, current.session, e.DrawerCounted, str(current.sequence + 1))
    return e.DrawerCounted(event_id=ids.event_id, command_id=ids.command_id, correlation_id=ids.command_id,
                           account_id=ids.account_id, occurred_at=now, sequence=current.sequence + 1, staff_id=staff_id,
                           currency=current.currency, counted=counted, book_balance=book_balance,
                           difference=counted - book_balance, counted_by=by)


def close_drawer(drawer: Drawer | None, staff_id: str, counted: int, book_balance: int, by: str,
                 now: datetime) -> e.DrawerClosed:
    current = _open(drawer, staff_id)
    if counted < 0:
        raise DrawerError("invalid_amount", "a count is not negative")
    ids = _ids(staff_id, current.session, e.DrawerClosed)
    return e.DrawerClosed(event_id=ids.event_id, command_id=ids.command_id, correlation_id=ids.command_id,
                          account_id=ids.account_id, occurred_at=now,
                          sequence=current.sequence + 1, staff_id=staff_id, currency=current.currency,
                          counted=counted, book_balance=book_balance, difference=counted - book_balance,
                          closed_by=by)


def check_cash(drawer: Drawer | None, staff_id: str, currency: str) -> None:
    """A teller's cash movement in `currency` needs their drawer open in that currency."""
    current = _open(drawer, staff_id)
    if current.currency != currency:
        raise DrawerError("drawer_currency", f"the drawer of {staff_id} holds {current.currency}, not {currency}")
