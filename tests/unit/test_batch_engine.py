"""The batch engine's memory between snapshots (streams/checkpoint.py BatchAgent with periodic snapshots).

Between two snapshots an agent's state lives in memory only, ahead of its changelog. What must hold:
- a failed batch leaves the tables' memory as it found it (the retry folds and keeps it again);
- a revoked partition's memory goes back to what its changelog holds, so if the partition comes back, the
  agent's catch-up folds the log from the stored position again instead of trusting a memory whose changes
  were never written (a later snapshot would then store a position past state that is not stored: a restart
  would restore stale balances and decide commands a second time);
- records of a partition revoked meanwhile are left to its new owner.

No server: no batch here emits a record, and the snapshot interval is never reached. The table is a plain
in-memory stand-in with the two attributes the engine uses (`name`, `data`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from streams.checkpoint import Batch, BatchAgent


class InMemoryTable:
    def __init__(self, data: dict[str, Any]) -> None:
        self.name = "accounts"
        self.data = data


@dataclass
class Record:
    partition: int
    key: str
    value: Any


class KeepEachRecord:
    """A decide function: keeps every record's value under its key, on its partition; can be told to fail."""

    def __init__(self, table: InMemoryTable) -> None:
        self.table = table
        self.seen: list[Record] = []
        self.seen_during_batch: dict[str, Any] = {}
        self.fail = False

    async def __call__(self, batch: Batch) -> None:
        for record in batch.records:
            self.seen.append(record)
            batch.keep(self.table, record.partition, record.key, record.value)   # type: ignore[arg-type]
            self.seen_during_batch[record.key] = batch.value(self.table, record.key)   # type: ignore[arg-type]
        if self.fail:
            raise RuntimeError("the batch's records were not acknowledged")


def periodic_agent(decide: KeepEachRecord, forgotten: list[set[int]]) -> BatchAgent:
    return BatchAgent("test", "test-topic", decide, offsets_key=None, reset=forgotten.append,
                      snapshot_every=timedelta(hours=1))


def test_a_revoked_partition_goes_back_to_what_its_changelog_holds() -> None:
    table = InMemoryTable({"a": 1, "c": 10})          # as restored from the changelog
    decide, forgotten = KeepEachRecord(table), []
    agent = periodic_agent(decide, forgotten)
    assert agent.snapshot_every is not None            # the test is about periodic snapshots

    async def scenario() -> None:
        await agent.assigned({0, 1})
        await agent.handle([Record(0, "a", 2), Record(0, "b", 3), Record(1, "c", 11)])
        await agent.handle([Record(0, "a", 4)])        # changed twice since the changelog's value
        assert table.data == {"a": 4, "b": 3, "c": 11}
        await agent.revoked({0})

    asyncio.run(scenario())
    assert table.data == {"a": 1, "c": 11}             # partition 0 as its changelog holds it; 1 untouched
    assert forgotten[-1] == {0}                        # the agent folds partition 0's log again before using it


def test_a_failed_batch_leaves_memory_as_it_found_it() -> None:
    table = InMemoryTable({"a": 1})
    decide, forgotten = KeepEachRecord(table), []
    agent = periodic_agent(decide, forgotten)
    decide.fail = True
    with pytest.raises(RuntimeError):
        asyncio.run(agent.handle([Record(0, "a", 2)]))
    assert decide.seen_during_batch == {"a": 2}         # the batch decides against what it keeps
    assert table.data == {"a": 1}


def test_records_of_a_partition_revoked_meanwhile_are_left_to_its_new_owner() -> None:
    table = InMemoryTable({})
    decide, forgotten = KeepEachRecord(table), []
    agent = periodic_agent(decide, forgotten)

    async def scenario() -> None:
        await agent.assigned({0, 1})
        await agent.revoked({1})
        await agent.handle([Record(0, "a", 1), Record(1, "b", 2)])

    asyncio.run(scenario())
    assert [record.key for record in decide.seen] == ["a"]
    assert table.data == {"a": 1}
