"""Projections: the read models (PostgreSQL, Redis, MongoDB) folded from the event log."""

from __future__ import annotations

from core.readmodel import PROJECTIONS
from core.settings import Settings
from streams.projections.base import ProjectionStore


def create_store(name: str, settings: Settings) -> ProjectionStore:
    """The live store of one projection, by name."""
    if name == "postgres":
        from streams.projections.postgres import PostgresProjection

        return PostgresProjection(settings.pg)
    if name == "redis":
        from streams.projections.redis_store import RedisProjection

        return RedisProjection(settings.redis)
    if name == "mongo":
        from streams.projections.mongo_store import MongoProjection

        return MongoProjection(settings.mongo)
    raise ValueError(f"unknown projection {name!r}; choose from {', '.join(PROJECTIONS)}")
