"""The API's long-lived clients, created in the app's lifespan and handed to routes as dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from api.bus import CommandBus
from api.idempotency import IdempotencyStore
from api.ledger_view import LedgerView
from api.problems import Problem
from core.settings import Settings


@dataclass
class Platform:
    settings: Settings
    pg: asyncpg.Pool
    bus: CommandBus
    view: LedgerView
    idempotency: IdempotencyStore


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


async def get_ready_view(platform: Annotated[Platform, Depends(get_platform)]) -> LedgerView:
    """The ledger view, once it has read the log up to where it stood at start-up."""
    if not platform.view.caught_up.is_set():
        raise Problem(503, "Starting up", "the API is still reading the ledger; retry in a moment", "not_ready")
    return platform.view


PlatformDep = Annotated[Platform, Depends(get_platform)]
ViewDep = Annotated[LedgerView, Depends(get_ready_view)]
