"""The customer app, mounted at /app/: `router` gathers its pages."""

from __future__ import annotations

from fastapi import APIRouter

from web.customer import accounts, auth, transfers

router = APIRouter()
router.include_router(auth.router)
router.include_router(accounts.router)
router.include_router(transfers.router)
