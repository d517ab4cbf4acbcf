"""`bank migrate`: apply migrations/*.sql in name order, each once, each in its own transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from core.settings import PROJECT_ROOT

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
# One fixed advisory lock so two processes migrating at once take turns instead of racing.
_LOCK_ID = 0x62616E6B  # "bank"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    return sorted(directory.glob("*.sql"), key=lambda p: p.name)


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every not-yet-applied migration; returns the names applied now (empty when up to date)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            await conn.execute(_CREATE_TABLE)
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            applied = []
            for path in migration_files(directory):
                if path.name not in done:
                    await _apply(conn, path)
                    applied.append(path.name)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()


async def _apply(conn: asyncpg.Connection, path: Path) -> None:
    async with conn.transaction():
        await conn.execute(path.read_text())
        await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)


def migrate_sync(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    return asyncio.run(migrate(dsn, directory))
