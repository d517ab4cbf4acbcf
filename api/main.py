"""The FastAPI application: `uvicorn api.main:app`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import Depends, FastAPI
from pymongo import AsyncMongoClient
from redis.asyncio import BlockingConnectionPool, Redis

from api.account_numbers import AccountNumberAllocator
from api.notifications import NotificationHub, NotificationStore
from api.payees import PayeeStore
from api.audit import AuditLog, AuditTrail
from api.drawers import DrawerDesk
from api.authz import TOKEN_URL, authorize
from api.bus import CommandBus
from api.deps import Access, Platform
from api.identity import UserStore
from api.idempotency import IdempotencyStore
from api.ledger_view import LedgerView
from api.metrics import HttpMetrics
from api.middleware import NEVER_SHED, InFlightLimit, RequestGuard, TraceContext
from api import openapi
from api.problems import install_problem_handlers
from api.readmodels import ReadModels
from api.security import Keyring
from api.sessions import AuthStore
from api.routes import (admin, auth, balances, billers, books, catalog, clock, commands, credentials, customers, drawers, fx,
                        health, kyc, loans, notifications, operations, payees, payment_history, payments, profile,
                        queries, savings, standing_orders, users)
from api.fx_rates import carry_over_table, fx_rate_desk
from api.loans import loan_desk, savings_desk
from api.standing_orders import StandingOrderBook
from core.account_numbers import AccountNumbering
from core.settings import Settings, get_settings
from infra import kafka_fetch
from infra.clock import BusinessTime
from infra.logs import configure_logging
from infra.producer import create_producer
from schemas.codec import get_codec


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """The pool's connections only run statements and transactions (no SET, LISTEN, advisory locks or held
    cursors; the notification hub listens on a connection of its own), and asyncpg rolls back a transaction left
    open before it calls this: so the reset query it would otherwise send on every release, a round trip per
    query (about 7 % of the API's CPU at saturation), has nothing to reset."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    kafka_fetch.install_for(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging("api", settings.log_level)  # after uvicorn's own set-up, so its lines are JSON too
        keyring = Keyring.from_settings(settings)   # refuses to start without usable signing keys
        numbering = AccountNumbering.of(settings)    # refuses a country or bank code it cannot number accounts in
        pg = await asyncpg.create_pool(settings.pg, min_size=1, max_size=10, reset=_nothing_to_reset)
        # A pool that waits for a free connection: redis-py 8 caps a pool at 100 and raises beyond that, so a
        # restarted API met by hundreds of retrying clients answered 503 to everything, /readyz too (`bank chaos`).
        redis = Redis(connection_pool=BlockingConnectionPool.from_url(settings.redis, max_connections=100, timeout=10))
        mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo, tz_aware=True)
        # The process's one producer: the bus, the audit log and the desks share it, so the records a request
        # writes (a command and its audit record, say) travel in one produce request, not one per writer.
        producer = create_producer(settings.kafka, linger_ms=1)   # a request waits on its sends
        audit = AuditLog(producer)
        access = Access(keyring=keyring, users=UserStore(pg), audit=audit, trail=AuditTrail(mongo),
                        store=AuthStore(redis, settings.session_ttl, settings.rate_limit_window))
        platform = Platform(settings=settings, pg=pg, bus=CommandBus(producer, settings.risk_enabled, audit),
                            view=LedgerView(settings.kafka, numbering, settings.failpoint),
                            idempotency=IdempotencyStore(pg, settings.processed_retention),
                            numbers=AccountNumberAllocator(pg, numbering),
                            reads=ReadModels(pg, redis, mongo), access=access,
                            time=BusinessTime(settings.kafka, settings.clock_control, get_codec()),
                            payees=PayeeStore(pg), standing_orders=StandingOrderBook(settings.kafka, producer),
                            drawers=DrawerDesk(settings.kafka, producer), notifications=NotificationStore(pg),
                            notification_hub=NotificationHub(settings.pg), loans=loan_desk(settings.kafka, producer),
                            savings=savings_desk(settings.kafka, producer),
                            fx_rates=fx_rate_desk(settings.kafka, producer))
        await platform.time.start()   # with BANK_CLOCK_CONTROL: bank.clock read to its end before answering
        await producer.start()
        await platform.view.start()
        await platform.standing_orders.start()
        await platform.loans.start()
        await platform.savings.start()
        await platform.fx_rates.start()
        carried = asyncio.create_task(carry_over_table(platform.fx_rates, pg))   # the old table, once
        pruning = asyncio.create_task(platform.idempotency.prune_periodically())
        app.state.platform = platform
        try:
            yield
        finally:
            carried.cancel()
            pruning.cancel()
            await platform.fx_rates.stop()
            await platform.savings.stop()
            await platform.loans.stop()
            await platform.standing_orders.stop()
            await platform.view.stop()
            await platform.notification_hub.stop()
            await producer.stop()
            await platform.time.stop()
            await redis.aclose()
            await mongo.close()
            await pg.close()

    app = FastAPI(
        title="bankstream",
        version="0.1.0",
        description="Kafka-native core banking. Commands are accepted onto the command log (202) and "
        "decided by the ledger; `?wait=true` waits for the outcome. Queries are served by read models "
        "derived from the event log (eventually consistent: each response carries Bank-Read-Position and "
        "Bank-Read-Lag; pass a command's `position` as `?min_position=` to read your own write). Amounts "
        "are decimal strings; errors are RFC 7807 problem+json. Every endpoint but health, registration and "
        f"log-in needs a bearer token (POST {TOKEN_URL}; Authorize above); see api/authz.py for who may call what.",
        lifespan=lifespan,
        dependencies=[Depends(authorize)],   # authentication and authorization of every route, in one place
    )
    install_problem_handlers(app)

    # A KYC document comes base64 in JSON: 4/3 of its size, and a little for the other fields.
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes, form_paths={TOKEN_URL},
                       large_paths={kyc.UPLOAD_PATH: settings.kyc_max_document_bytes * 4 // 3 + 4096})
    app.add_middleware(TraceContext)
    app.add_middleware(InFlightLimit, limit=settings.api_max_in_flight, exempt_paths=NEVER_SHED)
    app.add_middleware(HttpMetrics)  # outermost: counts every response, guards' 503/413/415 included
    for module in (commands, queries, health, auth, users, operations):
        app.include_router(module.router)
    app.include_router(admin.router)
    app.include_router(balances.router)   # point in time (issue 20)
    app.include_router(books.router)      # the bank's books (issue 14)
    app.include_router(catalog.router)
    app.include_router(clock.router)      # business time, for tests and demos (BANK_CLOCK_CONTROL)
    app.include_router(fx.admin_router)   # currency exchange: the rate table (issue 16 point 5)
    app.include_router(fx.router)         # and quotes
    app.include_router(payees.router)     # customers' payees (issue 16)
    app.include_router(payments.router)   # payments to other banks, and the rail's calls (issue 14)
    app.include_router(payment_history.router)   # every payment so far, with confirmation numbers (issue 16)
    app.include_router(billers.router)    # billers, bill payments and payment receipts (issue 16)
    app.include_router(profile.router)    # the caller's profile and contact details (issue 18)
    app.include_router(standing_orders.router)   # scheduled and recurring transfers (issue 16)
    app.include_router(loans.router)             # loan products, applications, decisions, repayments (issue 17)
    app.include_router(savings.router)           # savings products and interest, the close of business (issue 17)
    app.include_router(drawers.router)    # tellers' cash drawers (issue 14)
    app.include_router(notifications.router)   # inbox, live stream, preferences, failed deliveries (issue 19)
    app.include_router(customers.router)  # staff-assisted onboarding and erasure (issue 18)
    app.include_router(kyc.router)        # identity verification: documents, review queue, report (issue 18)
    app.include_router(credentials.router)  # forgotten passwords, MFA disable/re-enrol, sign-in history (issue 18)
    openapi.install(app)   # the document also tells the answers of api/authz.py, the guards and dependencies
    return app


app = create_app()
