"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from api.deps import PlatformDep
from api.metrics import exposition
from api.models import Readiness
from core.readmodel import PROJECTIONS, consumer_group, lag
from core.settings import Settings
from infra.kafka import create_admin_client

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0


@router.get("/metrics", summary="Prometheus metrics of this API process", response_class=Response,
            include_in_schema=False)
async def metrics() -> Response:
    body, content_type = exposition()
    return Response(body, headers={"Content-Type": content_type})


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Broker, databases, ledger and projection workers live; read-model lag",
            response_model=None, responses={200: {"model": Readiness, "description": "ready"},
                                            503: {"model": Readiness, "description": "a check failed"}})
async def readyz(platform: PlatformDep) -> JSONResponse:
    s = platform.settings
    checks: dict[str, Callable[[], Awaitable[Any]]] = {
        "ledger_view": lambda: _view_ready(platform),
        "postgres": lambda: platform.pg.fetchval("SELECT 1"),
        "redis": lambda: _redis_ping(s),
        "mongo": lambda: _mongo_ping(s),
        "workers": lambda: _groups(s, [s.worker_group]),
        "projection_workers": lambda: _groups(s, [consumer_group(p) for p in PROJECTIONS]),
        "read_models": lambda: _read_models(platform),
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
    if (failure := platform.view.failure) is not None:
        raise RuntimeError(failure)
    if not platform.view.caught_up.is_set():
        raise RuntimeError("still reading the event log")
    return f"{sum(platform.view.positions.values())} events read"


async def _read_models(platform: PlatformDep) -> str:
    """How far behind the log each read model is (informational: a lagging model still answers, labelled)."""
    head = platform.view.positions
    lags = [f"{model} {lag(await platform.reads.positions(model), head)}" for model in PROJECTIONS]
    return "events behind the log: " + ", ".join(lags)


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


async def _group_members(admin: AIOKafkaAdminClient, group: str) -> str:
    # One group per request: the embedded broker breaks on multi-group DescribeGroups.
    [response] = await admin.describe_consumer_groups([group])
    _error, _group_id, state, _protocol_type, _protocol, members = response.groups[0][:6]
    if not members:
        raise RuntimeError(f"consumer group {group} has no live members (state {state})")
    # A member stays in its group only while it heartbeats: membership is the workers' heartbeat.
    who = ", ".join(sorted(f"{m[1]}@{m[2].lstrip('/')}" for m in members))
    return f"{len(members)} member(s), {state}: {who}"


async def _groups(s: Settings, groups: list[str]) -> str:
    admin = create_admin_client(s.kafka)
    await admin.start()
    try:
        return "; ".join([f"{g}: {await _group_members(admin, g)}" for g in groups])
    finally:
        await admin.close()
