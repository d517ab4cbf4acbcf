"""The FastAPI application: `uvicorn api.main:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

from api.bus import CommandBus
from api.deps import Platform
from api.idempotency import IdempotencyStore
from api.ledger_view import LedgerView
from api.middleware import RequestGuard
from api.problems import install_problem_handlers
from api.routes import accounts, commands, health
from core.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pg = await asyncpg.create_pool(settings.pg, min_size=1, max_size=10)
        platform = Platform(settings=settings, pg=pg, bus=CommandBus(settings.kafka),
                            view=LedgerView(settings.kafka), idempotency=IdempotencyStore(pg))
        await platform.bus.start()
        await platform.view.start()
        app.state.platform = platform
        try:
            yield
        finally:
            await platform.view.stop()
            await platform.bus.stop()
            await pg.close()

    app = FastAPI(
        title="bankstream",
        version="0.1.0",
        description="Kafka-native core banking. Commands are accepted onto the command log (202) and "
        "decided by the ledger; `?wait=true` waits for the outcome. Amounts are decimal strings; errors "
        "are RFC 7807 problem+json.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)

    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    for module in (commands, accounts, health):
        app.include_router(module.router)
    return app


app = create_app()
