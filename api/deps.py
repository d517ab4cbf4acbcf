"""The API's long-lived clients, created in the app's lifespan and handed to routes as dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock_time
from typing import Annotated, overload

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import Depends, Query, Request, Response

from api.account_numbers import AccountNumberAllocator
from api.audit import AuditLog, AuditTrail
from api.drawers import DrawerDesk
from api.bus import CommandBus
from api.identity import UserStore
from api.idempotency import IdempotencyStore
from api.ledger_view import LedgerView
from api.notifications import NotificationHub, NotificationStore
from api.payees import PayeeStore
from api.problems import Problem
from api.readmodels import Model, ReadModels
from api.security import Keyring
from api.sessions import AuthStore
from api.fx_rates import FxRateDesk
from api.loans import LoanDesk, SavingsDesk
from api.standing_orders import StandingOrderBook
from core.readmodel import Positions, PositionError, format_positions, lag, parse_positions, reached
from core.settings import Settings
from infra.clock import BusinessTime

# Where a command's events are in the log (on command responses), and how fresh a query's answer is.
POSITION_HEADER = "Bank-Position"
READ_MODEL_HEADER = "Bank-Read-Model"
READ_POSITION_HEADER = "Bank-Read-Position"
READ_LAG_HEADER = "Bank-Read-Lag"


@dataclass
class Access:
    """Identity and access: signing keys, users (PostgreSQL), sessions and limits (Redis), the audit trail."""

    keyring: Keyring
    users: UserStore
    store: AuthStore
    audit: AuditLog
    trail: AuditTrail


@dataclass
class Platform:
    settings: Settings
    pg: asyncpg.Pool
    bus: CommandBus
    view: LedgerView
    idempotency: IdempotencyStore
    numbers: AccountNumberAllocator
    reads: ReadModels
    access: Access
    time: BusinessTime   # business time (commands' issued_at); security timestamps stay on real time
    payees: PayeeStore
    standing_orders: StandingOrderBook   # bank.standing-orders folded (issue 16)
    drawers: DrawerDesk                  # tellers' cash drawers (issue 14)
    notifications: NotificationStore        # the inbox, preferences, failed deliveries (issue 19)
    notification_hub: NotificationHub       # wakes the SSE streams when the notifier writes an inbox row
    loans: LoanDesk                         # bank.loans folded: products, applications, decisions (issue 17)
    savings: SavingsDesk                    # bank.interest folded: savings products, enrolments, accruals
    fx_rates: FxRateDesk                    # bank.fx.rates folded: the currency-exchange rate table (issue 16)


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def` dependency in a thread
# pool, a thread hop on every request (a tenth of the API's time under load).
async def get_platform(request: Request) -> Platform:
    return request.app.state.platform


async def get_ready_view(platform: Annotated[Platform, Depends(get_platform)]) -> LedgerView:
    return ready_view(platform)


def ready_view(platform: Platform) -> LedgerView:
    """The ledger view, once it has read the log up to where it stood at start-up (and while it follows it)."""
    if (failure := platform.view.failure) is not None:
        raise not_ready("Not ready", f"the API no longer follows the ledger ({failure}); another instance can answer")
    if not platform.view.caught_up.is_set():
        raise not_ready()
    return platform.view


def not_ready(title: str = "Starting up",
              detail: str = "the API is still reading the ledger; retry in a moment") -> Problem:
    problem = Problem(503, title, detail, "not_ready")
    problem.headers = {"Retry-After": "1"}
    return problem


@overload
def utc_moment(moment: None) -> None: ...
@overload
def utc_moment(moment: datetime | date) -> datetime: ...
def utc_moment(moment: datetime | date | None) -> datetime | None:
    """A query's date or datetime as a UTC datetime: a bare date is midnight UTC, a datetime without a zone is taken
    as UTC, one with a zone is converted. 422 for a moment outside the years 1..9999 once in UTC (Python's range:
    `0001-01-01T00:00+01:00` is in year 0), which no database driver could take either."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        return datetime.combine(moment, clock_time.min, UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise Problem(422, "Date out of range", f"{moment.isoformat()} is outside the years 1 to 9999 in UTC",
                      "date_out_of_range") from None


PlatformDep = Annotated[Platform, Depends(get_platform)]
ViewDep = Annotated[LedgerView, Depends(get_ready_view)]


MinPosition = Annotated[str | None, Query(
    description="a position from a command response (`position` / Bank-Position header): wait until the read "
                "model reflects it (read your own writes)", examples=["0:12,3:40"],
    json_schema_extra={"pattern": r"^[0-9]{1,18}:[0-9]{1,18}(,[0-9]{1,18}:[0-9]{1,18})*$"})]


class Freshness:
    """Waits for a read model to reach the caller's `min_position`, and labels responses with how fresh
    the model is: its position in the event log and how many events it is behind the log's head."""

    def __init__(self, platform: Platform, min_position: str | None) -> None:
        self._platform = platform
        try:
            self.wanted: Positions = parse_positions(min_position) if min_position else {}
        except PositionError as error:
            raise Problem(400, "Invalid position", f"min_position: {error}", "invalid_position") from None

    async def ensure(self, model: Model) -> Positions:
        """The model's positions, once they reach what the caller asked for (503 if they do not in time)."""
        reads = self._platform.reads
        if not self.wanted:
            return await reads.positions(model)
        await self._within_log()
        timeout = self._platform.settings.read_your_writes_timeout.total_seconds()
        positions = await reads.wait_until(model, self.wanted, timeout)
        if positions is None:
            problem = Problem(503, "Read model behind", f"the {model} read model has not reached position "
                              f"{format_positions(self.wanted)} within {timeout:g}s; retry shortly",
                              "read_model_behind")
            problem.headers = {"Retry-After": "1"}
            raise problem
        return positions

    async def _within_log(self) -> None:
        """422 for a position past the end of the log: no read model will ever reach it, so waiting for one
        (and answering 503 after the timeout) would only tell the caller to retry in vain."""
        view = self._platform.view
        if reached(view.positions, self.wanted):
            return   # the usual case: this API has read that far already
        try:
            ends = await view.end_offsets()
        except KafkaError:
            return   # the broker cannot tell: wait as usual (503 if the model does not get there)
        beyond = {p: o for p, o in self.wanted.items() if o > ends.get(p, 0)}
        if beyond:
            raise Problem(422, "Position beyond the log", f"min_position: {format_positions(beyond)} is past the end "
                          f"of the event log ({format_positions(ends)}); pass a position a command response returned",
                          "position_beyond_log")

    def headers(self, model: Model, positions: Positions) -> dict[str, str]:
        return {READ_MODEL_HEADER: model, READ_POSITION_HEADER: format_positions(positions),
                READ_LAG_HEADER: str(lag(positions, self._platform.view.positions))}

    def label(self, response: Response, model: Model, positions: Positions) -> None:
        response.headers.update(self.headers(model, positions))


async def get_freshness(platform: Annotated[Platform, Depends(get_platform)], min_position: MinPosition = None) -> Freshness:
    return Freshness(platform, min_position)


FreshnessDep = Annotated[Freshness, Depends(get_freshness)]
