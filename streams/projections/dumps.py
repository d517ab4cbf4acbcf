"""Full dumps of each read model (to compare live with rebuilt, before with after), waiting until every
projection has caught up with the event log, and a fresh rebuild to compare the live model with.

Used by `bank chaos` and the projection tests; the comparison itself is core/invariants.py `compare_models`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from core.readmodel import (MONGO_DB, MONGO_META, PG_REBUILD_SCHEMA, PG_SCHEMA, REDIS_LIVE, Positions,
                            mongo_collection, redis_offsets_key, redis_prefix)
from core.settings import Settings
from streams.projections import create_store
from streams.projections.admin import RebuildReport, end_offsets, rebuild

Dump = dict[str, Any]


async def pg_dump(dsn: str, schema: str = PG_SCHEMA) -> Dump:
    conn = await asyncpg.connect(dsn)
    try:
        return {table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {schema}.{table} ORDER BY 1")]
                for table in ("accounts", "transactions", "cases")}
    finally:
        await conn.close()


async def pg_offsets(dsn: str, schema: str = PG_SCHEMA) -> Positions:
    conn = await asyncpg.connect(dsn)
    try:
        return {r[0]: r[1] for r in await conn.fetch(f"SELECT partition, next_offset FROM {schema}.offsets")}
    finally:
        await conn.close()


async def redis_live(url: str) -> int:
    client = Redis.from_url(url)
    try:
        return int(await client.get(REDIS_LIVE) or 1)
    finally:
        await client.aclose()


async def redis_dump(url: str, generation: int | None = None) -> Dump:
    """Every key of a generation (without its prefix, so generations compare), offsets excluded."""
    client = Redis.from_url(url, decode_responses=True)
    try:
        generation = generation or int(await client.get(REDIS_LIVE) or 1)
        prefix = redis_prefix(generation)
        dump: Dump = {}
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            if key == redis_offsets_key(generation):
                continue
            kind = await client.type(key)
            if kind == "hash":
                value: Any = await client.hgetall(key)
            elif kind == "zset":
                value = await client.zrange(key, 0, -1, withscores=True)
            else:
                value = await client.get(key)
            dump[key.removeprefix(prefix)] = value
        return dump
    finally:
        await client.aclose()


async def redis_offsets(url: str) -> Positions:
    client = Redis.from_url(url, decode_responses=True)
    try:
        generation = int(await client.get(REDIS_LIVE) or 1)
        return {int(k): int(v) for k, v in (await client.hgetall(redis_offsets_key(generation))).items()}
    finally:
        await client.aclose()


async def mongo_live(url: str) -> int:
    client: AsyncMongoClient = AsyncMongoClient(url)
    try:
        meta = await client[MONGO_DB][MONGO_META].find_one({"_id": "mongo"})
        return int(meta["live"]) if meta else 1
    finally:
        await client.close()


async def mongo_dump(url: str, generation: int | None = None) -> Dump:
    client: AsyncMongoClient = AsyncMongoClient(url)
    try:
        db = client[MONGO_DB]
        if generation is None:
            meta = await db[MONGO_META].find_one({"_id": "mongo"})
            generation = int(meta["live"]) if meta else 1
        return {kind: await db[mongo_collection(kind, generation)].find({}).sort("_id", 1).to_list()
                for kind in ("audit", "timeline", "accounts")}
    finally:
        await client.close()


async def mongo_offsets(url: str) -> Positions:
    client: AsyncMongoClient = AsyncMongoClient(url)
    try:
        db = client[MONGO_DB]
        meta = await db[MONGO_META].find_one({"_id": "mongo"})
        generation = int(meta["live"]) if meta else 1
        docs = await db[mongo_collection("offsets", generation)].find({}).to_list()
        return {int(d["_id"]): int(d["next_offset"]) for d in docs}
    finally:
        await client.close()


async def all_offsets(pg: str, redis: str, mongo: str) -> dict[str, Positions]:
    return {"postgres": await pg_offsets(pg), "redis": await redis_offsets(redis), "mongo": await mongo_offsets(mongo)}


async def wait_caught_up(bootstrap: str, pg: str, redis: str, mongo: str, timeout: float = 120.0) -> Positions:
    """Wait until every projection has reached the end of the event log as it stands now."""
    ends = await end_offsets(bootstrap)
    deadline = time.monotonic() + timeout
    while True:
        offsets = await all_offsets(pg, redis, mongo)
        behind = {name: {p: e - o.get(p, 0) for p, e in ends.items() if o.get(p, 0) < e}
                  for name, o in offsets.items()}
        behind = {name: b for name, b in behind.items() if b}
        if not behind:
            return ends
        if time.monotonic() > deadline:
            raise AssertionError(f"projections still behind the log after {timeout:.0f}s: {behind}")
        await asyncio.sleep(0.2)


async def dump_all(pg: str, redis: str, mongo: str) -> dict[str, Dump]:
    return {"postgres": await pg_dump(pg), "redis": await redis_dump(redis), "mongo": await mongo_dump(mongo)}


async def live_dump(name: str, settings: Settings) -> Dump:
    """The live model of one projection, as tables (Redis: one table, its keys)."""
    if name == "postgres":
        return await pg_dump(settings.pg)
    if name == "redis":
        return {"keys": await redis_dump(settings.redis)}
    return await mongo_dump(settings.mongo)


async def rebuilt_dump(name: str, settings: Settings, bootstrap: str) -> tuple[RebuildReport, Dump]:
    """Rebuild one projection from offset 0 into its rebuild target, without swapping it in, and dump that."""
    report = await rebuild(create_store(name, settings), bootstrap, swap=False)
    if name == "postgres":
        return report, await pg_dump(settings.pg, PG_REBUILD_SCHEMA)
    generation = int(report.generation.split()[-1])   # "generation N"
    if name == "redis":
        return report, {"keys": await redis_dump(settings.redis, generation)}
    return report, await mongo_dump(settings.mongo, generation)
