"""The ids an agent remembers (streams/checkpoint.py RememberedIds): recognised only once their batch is
acknowledged, stored one chunk per partition and batch, expired whole after the window, rebuilt after a restore.

The table is a plain in-memory stand-in with the two attributes the engine uses (`name`, `data`); no server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from streams.checkpoint import DELETED, Batch, RememberedIds

DAY = 24 * 3600


class InMemoryTable:
    def __init__(self) -> None:
        self.name = "commands"
        self.data: dict[str, Any] = {}


def acknowledge(batch: Batch, table: InMemoryTable) -> None:
    """What the engine does once a batch's records are acknowledged: callbacks, then the kept state."""
    for callback in batch.acknowledged:
        callback([])
    for (_, key), (_, _, value) in batch.kept.items():
        if value is DELETED:
            table.data.pop(key, None)
        else:
            table.data[key] = value


def test_an_id_is_recognised_once_its_batch_is_acknowledged_not_before() -> None:
    table = InMemoryTable()
    ids = RememberedIds(table, timedelta(days=7))   # type: ignore[arg-type]
    batch = Batch([])
    ids.remember(batch, 2, "command-1", at=1_000)
    assert "command-1" not in ids          # a failed batch is decided again: nothing may look processed yet
    acknowledge(batch, table)
    assert "command-1" in ids


def test_one_chunk_per_partition_and_batch() -> None:
    table = InMemoryTable()
    ids = RememberedIds(table, timedelta(days=7))   # type: ignore[arg-type]
    batch = Batch([])
    for n in range(300):
        ids.remember(batch, n % 3, f"command-{n}", at=1_000, value={"n": n})
    acknowledge(batch, table)
    chunks = {key: value for key, value in table.data.items() if key.startswith(RememberedIds.PREFIX)}
    assert len(chunks) == 3 and sum(len(chunk["ids"]) for chunk in chunks.values()) == 300
    assert ids.value("command-7") == {"n": 7}


def test_ids_expire_whole_chunks_after_the_window_and_leave_tombstones() -> None:
    table = InMemoryTable()
    ids = RememberedIds(table, timedelta(days=7))   # type: ignore[arg-type]
    old, new = Batch([]), Batch([])
    ids.remember(old, 0, "old-1", at=0)
    ids.remember(old, 0, "old-2", at=0)
    acknowledge(old, table)
    ids.remember(new, 0, "new", at=6 * DAY)
    acknowledge(new, table)
    inside = Batch([])
    assert ids.forget_expired(inside, now=6 * DAY + 43_200) == 0 and "old-1" in ids   # a retry inside the window
    expiring = Batch([])
    assert ids.forget_expired(expiring, now=7 * DAY) == 1
    assert "old-1" not in ids and "old-2" not in ids and "new" in ids
    assert [value for (_, _, value) in expiring.kept.values()] == [DELETED]   # one tombstone for the chunk
    acknowledge(expiring, table)
    assert [key for key in table.data if key.startswith(RememberedIds.PREFIX)] == [
        key for key in table.data if "new" in key]


def test_a_restored_table_is_rebuilt_with_its_window_and_older_single_ids() -> None:
    table = InMemoryTable()
    writer = RememberedIds(table, timedelta(days=7))   # type: ignore[arg-type]
    batch = Batch([])
    writer.remember(batch, 4, "before-restart", at=0)
    acknowledge(batch, table)
    table.data["kept-before-chunks"] = 1       # one id per key, as the ledger kept them before
    table.data["__position__/4"] = 99          # the agent's positions share the table; not ids
    restored = RememberedIds(table, timedelta(days=7))   # type: ignore[arg-type]
    assert "before-restart" in restored and "kept-before-chunks" in restored and "__position__/4" not in restored
    expired = Batch([])
    assert restored.forget_expired(expired, now=7 * DAY) == 1   # the chunk; the old id lasts one more window
    assert "before-restart" not in restored and "kept-before-chunks" in restored
