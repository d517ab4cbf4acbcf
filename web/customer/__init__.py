"""The customer app, mounted at /app/: `router` gathers its pages."""

from __future__ import annotations

from fastapi import APIRouter

from web.customer import accounts, auth, fx, notifications, payees, settings, transfers

router = APIRouter()
for module in (auth, accounts, transfers, payees, fx, notifications, settings):
    router.include_router(module.router)
