"""The API's long-lived clients, created in the app's lifespan and handed to routes as dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Query, Request, Response

from api.audit import AuditLog, AuditTrail
from api.bus import CommandBus
from api.identity import UserStore
from api.idempotency import IdempotencyStore
from api.ledger_view import LedgerView
from api.problems import Problem
from api.readmodels import Model, ReadModels
from api.security import Keyring
from api.sessions import AuthStore
from core.readmodel import Positions, PositionError, format_positions, lag, parse_positions
from core.settings import Settings

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
    reads: ReadModels
    access: Access


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def` dependency in a thread
# pool, a thread hop on every request (a tenth of the API's time under load).
async def get_platform(request: Request) -> Platform:
    return request.app.state.platform


async def get_ready_view(platform: Annotated[Platform, Depends(get_platform)]) -> LedgerView:
    """The ledger view, once it has read the log up to where it stood at start-up."""
    if not platform.view.caught_up.is_set():
        raise Problem(503, "Starting up", "the API is still reading the ledger; retry in a moment", "not_ready")
    return platform.view


PlatformDep = Annotated[Platform, Depends(get_platform)]
ViewDep = Annotated[LedgerView, Depends(get_ready_view)]


MinPosition = Annotated[str | None, Query(
    description="a position from a command response (`position` / Bank-Position header): wait until the read "
                "model reflects it (read your own writes)", examples=["0:12,3:40"])]


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
        timeout = self._platform.settings.read_your_writes_timeout.total_seconds()
        positions = await reads.wait_until(model, self.wanted, timeout)
        if positions is None:
            problem = Problem(503, "Read model behind", f"the {model} read model has not reached position "
                              f"{format_positions(self.wanted)} within {timeout:g}s; retry shortly",
                              "read_model_behind")
            problem.headers = {"Retry-After": "1"}
            raise problem
        return positions

    def headers(self, model: Model, positions: Positions) -> dict[str, str]:
        return {READ_MODEL_HEADER: model, READ_POSITION_HEADER: format_positions(positions),
                READ_LAG_HEADER: str(lag(positions, self._platform.view.positions))}

    def label(self, response: Response, model: Model, positions: Positions) -> None:
        response.headers.update(self.headers(model, positions))


async def get_freshness(platform: Annotated[Platform, Depends(get_platform)], min_position: MinPosition = None) -> Freshness:
    return Freshness(platform, min_position)


FreshnessDep = Annotated[Freshness, Depends(get_freshness)]
