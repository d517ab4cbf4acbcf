"""The ids an agent remembers (streams/checkpoint.py RememberedIds): recognised only once their batch is
acknowledged, stored one chunk per partition and batch, expired whole after the window, rebuilt after a restore.

The table is the engine's own (streams/tables.py), in memory only: nothing here writes its changelog; no server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from streams.checkpoint import DELETED, Batch, RememberedIds
from streams.tables import Table

DAY = 24 * 3600


def in_memory_table() -> Table:
    return Table("commands", help="a table no test writes to its changelog")


def acknowledge(batch: Batch, table: Table) -> None:
    """What the engine does once a batch's records are acknowledged: callbacks, then the kept state."""
    for callback in batch.acknowledged:
        callback([])
    for (_, key), (_, _, value) in batch.kept.items():
        if value is DELETED:
            table.data.pop(key, None)
        else:
            table.data[key] = value


def test_an_id_is_recognised_once_its_batch_is_acknowledged_not_before() -> None:
    table = in_memory_table()
    ids = RememberedIds(table, timedelta(days=7))
    batch = Batch([])
    ids.remember(batch, 2, "command-1", at=1_000)
    assert "command-1" not in ids          # a failed batch is decided again: nothing may look processed yet
    acknowledge(batch, table)
    assert "command-1" in ids


def test_one_chunk_per_partition_and_batch() -> None:
    table = in_memory_table()
    ids = RememberedIds(table, timedelta(days=7))
    batch = Batch([])
    for n in range(300):
        ids.remember(batch, n % 3, f"command-{n}", at=1_000, value={"n": n})
    acknowledge(batch, table)
    chunks = {key: value for key, value in table.data.items() if key.startswith(RememberedIds.PREFIX)}
    assert len(chunks) == 3 and sum(len(chunk["ids"]) for chunk in chunks.values()) == 300
    assert ids.value("command-7") == {"n": 7}


def test_ids_expire_whole_chunks_after_the_window_and_leave_tombstones() -> None:
    table = in_memory_table()
    ids = RememberedIds(table, timedelta(days=7))
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
    table = in_memory_table()
    writer = RememberedIds(table, timedelta(days=7))
    batch = Batch([])
    writer.remember(batch, 4, "before-restart", at=0)
    acknowledge(batch, table)
    table.data["kept-before-chunks"] = 1       # one id per key, as the ledger kept them before
    table.data["__position__/4"] = 99          # the agent's positions share the table; not ids
    restored = RememberedIds(table, timedelta(days=7))
    assert "before-restart" in restored and "kept-before-chunks" in restored and "__position__/4" not in restored
    expired = Batch([])
    assert restored.forget_expired(expired, now=7 * DAY) == 1   # the chunk; the old id lasts one more window
    assert "before-restart" not in restored and "kept-before-chunks" in restored


@dataclass
class ChangelogRecord:
    key: bytes
    value: bytes | None


def changelog_of(table: Table) -> list[ChangelogRecord]:
    """The table's keys as its changelog holds them (JSON keys and values, as Faust's tables encoded them)."""
    return [ChangelogRecord(json.dumps(key).encode(), json.dumps(value).encode()) for key, value in table.data.items()]


def test_ids_in_use_are_rebuilt_when_their_table_is_restored() -> None:
    """A worker's partition is restored (streams/tables.py) while the agent's ids are already built: the ids the
    changelog brings are recognised without anyone telling the ids, and a tombstone's chunk is forgotten."""
    elsewhere = in_memory_table()
    writer = RememberedIds(elsewhere, timedelta(days=7))
    batch = Batch([])
    writer.remember(batch, 2, "decided-by-the-last-owner", at=1_000)
    acknowledge(batch, elsewhere)
    table = in_memory_table()
    ids = RememberedIds(table, timedelta(days=7))
    assert "decided-by-the-last-owner" not in ids      # built, from an empty table
    assert table.apply(changelog_of(elsewhere)) == 1
    assert "decided-by-the-last-owner" in ids
    chunk_key = next(iter(elsewhere.data))
    table.apply([ChangelogRecord(json.dumps(chunk_key).encode(), None)])   # expired by the last owner
    assert "decided-by-the-last-owner" not in ids and table.data == {}
