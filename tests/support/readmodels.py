"""Test helpers for read models: full dumps of each store and waiting until every projection has caught up.
They live in streams/projections/dumps.py (`bank chaos` uses them too); re-exported here for the tests."""

from __future__ import annotations

from streams.projections.dumps import (Dump, all_offsets, dump_all, live_dump, mongo_dump, mongo_live,  # noqa: F401
                                       mongo_offsets, pg_dump, pg_offsets, rebuilt_dump, redis_dump, redis_live,
                                       redis_offsets, wait_caught_up)
