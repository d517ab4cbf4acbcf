"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from api.deps import PlatformDep
from core.settings import Settings

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Broker, databases and stream workers reachable")
async def readyz(platform: PlatformDep) -> JSONResponse:
    s = platform.settings
    checks: dict[str, Callable[[], Awaitable[Any]]] = {
        "ledger_view": lambda: _view_ready(platform),
        "postgres": lambda: platform.pg.fetchval("SELECT 1"),
        "redis": lambda: _redis_ping(s),
        "mongo": lambda: _mongo_ping(s),
        "workers": lambda: _workers(s),
    }
    results = await asyncio.gather(*(_run(check) for check in checks.values()))
    report = dict(zip(checks, results, strict=True))
    ready = all(r["ok"] for r in report.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": report},
                        status_code=200 if ready else 503)


async def _run(check: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        return {"ok": True} | ({"detail": detail} if isinstance(detail, str) else {})
    except Exception as error:  # a readiness probe reports failures, it does not raise them
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}


async def _view_ready(platform: PlatformDep) -> str:
    if not platform.view.caught_up.is_set():
        raise RuntimeError("still reading the event log")
    return f"{sum(platform.view.positions.values())} events read"


async def _redis_ping(s: Settings) -> None:
    client = Redis.from_url(s.redis)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _mongo_ping(s: Settings) -> None:
    client: AsyncMongoClient = AsyncMongoClient(s.mongo, serverSelectionTimeoutMS=int(CHECK_TIMEOUT_S * 1000))
    try:
        await client.admin.command("ping")
    finally:
        await client.close()


async def _workers(s: Settings) -> str:
    """The stream workers' consumer group has live members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka)
    await admin.start()
    try:
        # One group per request: the embedded broker breaks on multi-group DescribeGroups.
        [response] = await admin.describe_consumer_groups([s.app_id])
        group = response.groups[0]
        members = len(group[5])
        if members == 0:
            raise RuntimeError(f"consumer group {s.app_id} has no members (state {group[2]})")
        return f"{members} worker(s), group {group[2]}"
    finally:
        await admin.close()
