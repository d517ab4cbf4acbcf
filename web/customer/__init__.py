"""The customer app, mounted at /app/: `router` gathers its pages."""

from __future__ import annotations

from fastapi import APIRouter

from web.customer import (accounts, auth, bills, fx, loans, notifications, payees, payments, settings, standing_orders,
                          transfers, verification)

router = APIRouter()
for module in (auth, accounts, transfers, bills, payees, payments, standing_orders, loans, fx, notifications, settings,
               verification):
    router.include_router(module.router)
