"""The batch engine's memory between snapshots (streams/checkpoint.py BatchAgent with periodic snapshots).

Between two snapshots an agent's state lives in memory only, ahead of its changelog. What must hold:
- a failed batch leaves the tables' memory as it found it (the retry folds and keeps it again);
- a revoked partition's memory goes back to what its changelog holds, so if the partition comes back, the
  agent's catch-up folds the log from the stored position again instead of trusting a memory whose changes
  were never written (a later snapshot would then store a position past state that is not stored: a restart
  would restore stale balances and decide commands a second time);
- records of a partition revoked meanwhile are left to its new owner;
- the offsets the worker's consumer may commit go only as far as the changelogs reflect the records.

No server: no batch here emits a record, the snapshot interval is never reached, and the agent has no tables to
restore; its table is the engine's own (streams/tables.py), in memory only."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from streams.checkpoint import QUIET_BEFORE_SNAPSHOT, Batch, BatchAgent
from streams.tables import Table, Tables


def in_memory_table(data: dict[str, Any]) -> Table:
    table = Table("accounts", help="a table no test writes to its changelog")
    table.data.update(data)
    return table


@dataclass
class Record:
    partition: int
    key: str
    value: Any
    offset: int = 0
    topic: str = "test-topic"


class KeepEachRecord:
    """A decide function: keeps every record's value under its key, on its partition; can be told to fail."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.seen: list[Record] = []
        self.seen_during_batch: dict[str, Any] = {}
        self.fail = False

    async def __call__(self, batch: Batch) -> None:
        for record in batch.records:
            self.seen.append(record)
            batch.keep(self.table, record.partition, record.key, record.value)
            self.seen_during_batch[record.key] = batch.value(self.table, record.key)
        if self.fail:
            raise RuntimeError("the batch's records were not acknowledged")


def periodic_agent(decide: KeepEachRecord, forgotten: list[set[int]]) -> BatchAgent:
    return BatchAgent("test", "test-topic", decide, offsets_key=None, reset=forgotten.append,
                      snapshot_every=timedelta(hours=1), tables=Tables())   # no tables to restore: no server


def test_a_revoked_partition_goes_back_to_what_its_changelog_holds() -> None:
    table = in_memory_table({"a": 1, "c": 10})          # as restored from the changelog
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
    table = in_memory_table({"a": 1})
    decide, forgotten = KeepEachRecord(table), []
    agent = periodic_agent(decide, forgotten)
    decide.fail = True
    with pytest.raises(RuntimeError):
        asyncio.run(agent.handle([Record(0, "a", 2)]))
    assert decide.seen_during_batch == {"a": 2}         # the batch decides against what it keeps
    assert table.data == {"a": 1}


def test_records_of_a_partition_revoked_meanwhile_are_left_to_its_new_owner() -> None:
    table = in_memory_table({})
    decide, forgotten = KeepEachRecord(table), []
    agent = periodic_agent(decide, forgotten)

    async def scenario() -> None:
        await agent.assigned({0, 1})
        await agent.revoked({1})
        await agent.handle([Record(0, "a", 1), Record(1, "b", 2)])

    asyncio.run(scenario())
    assert [record.key for record in decide.seen] == ["a"]
    assert table.data == {"a": 1}


class RestoreRecordingTables(Tables):
    """Tables whose restore (a read of the changelogs) only records that it ran: no server."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    async def _restore(self, partitions: set[int]) -> None:
        self.events.append(f"restore {sorted(partitions)}")


def test_a_restore_waits_until_no_batch_holds_the_tables() -> None:
    """A restore changes what agents built from the tables (their remembered ids are rebuilt from them): one in
    the middle of another agent's batch lost the ids that batch had folded back from the log, and the command
    was decided a second time. A batch needing a newly assigned partition waits for the batches in flight."""
    events: list[str] = []
    tables = RestoreRecordingTables(events)

    async def scenario() -> None:
        tables.assigned({0})
        release = asyncio.Event()

        async def ledger_batch() -> None:
            async with tables.held({0}):
                events.append("ledger batch starts")
                await release.wait()
                events.append("ledger batch ends")

        async def risk_batch() -> None:
            async with tables.held({1}):
                events.append("risk batch runs")

        ledger = asyncio.create_task(ledger_batch())
        await asyncio.sleep(0.01)
        tables.assigned({0, 1})   # partition 1 assigned to the worker while the ledger's batch is in flight
        risk = asyncio.create_task(risk_batch())
        await asyncio.sleep(0.01)
        assert events == ["restore [0]", "ledger batch starts"]   # the risk batch's restore waits
        release.set()
        await asyncio.gather(ledger, risk)
        async with tables.held({0, 1}):   # both restored: nothing to read again
            pass

    asyncio.run(scenario())
    assert events == ["restore [0]", "ledger batch starts", "ledger batch ends", "restore [1]", "risk batch runs"]


def test_a_partition_that_comes_back_is_restored_again() -> None:
    """Another worker may have written a partition while it was not ours: its memory here is stale."""
    events: list[str] = []
    tables = RestoreRecordingTables(events)

    async def scenario() -> None:
        tables.assigned({0, 1})
        async with tables.held({0, 1}):
            pass
        tables.assigned({1})        # 0 goes to another worker
        tables.assigned({0, 1})     # and comes back
        async with tables.held({0, 1}):
            pass

    asyncio.run(scenario())
    assert events == ["restore [0, 1]", "restore [0]"]


def test_the_first_batch_after_a_rebalance_restores_every_newly_assigned_partition() -> None:
    """One read of the changelogs per rebalance, and a worker whole before it decides anything."""
    events: list[str] = []
    tables = RestoreRecordingTables(events)

    async def scenario() -> None:
        tables.assigned({0, 1, 2})
        async with tables.held({1}):
            events.append("batch of partition 1")
        async with tables.held({2}):
            events.append("batch of partition 2")

    asyncio.run(scenario())
    assert events == ["restore [0, 1, 2]", "batch of partition 1", "batch of partition 2"]


class KeepNothing:
    """A decide function that keeps no state (so no changelog record is written: no server needed)."""

    async def __call__(self, batch: Batch) -> None:
        pass


def test_offsets_are_committable_only_as_far_as_a_snapshot_reflects_them() -> None:
    agent = BatchAgent("test", "test-topic", KeepNothing(), offsets_key=None, snapshot_every=timedelta(hours=1),
                       tables=Tables())
    assert agent.snapshot_every is not None

    async def scenario() -> None:
        await agent.assigned({0, 1})
        await agent.handle([Record(0, "a", 1, offset=5), Record(0, "a", 2, offset=6), Record(1, "b", 1, offset=3)])
        assert agent.saved_offsets == {}               # decided, in memory only: a restart decides them again
        await agent.snapshot_when_idle()
        assert agent.saved_offsets == {0: 7, 1: 4}
        await agent.handle([Record(0, "a", 3, offset=7)])
        assert agent.saved_offsets == {0: 7, 1: 4}
        await agent.revoked({0})                       # its next owner decides offset 7 again
        await agent.snapshot_when_idle()
        assert agent.saved_offsets == {1: 4}

    asyncio.run(scenario())


def test_an_agent_snapshotting_every_batch_may_commit_each_batch() -> None:
    agent = BatchAgent("test", "test-topic", KeepNothing(), offsets_key=None, tables=Tables())

    async def scenario() -> None:
        await agent.assigned({0})
        await agent.handle([Record(0, "a", 1, offset=41)])
        assert agent.saved_offsets == {0: 42}

    asyncio.run(scenario())


def test_forgotten_partitions_are_restored_before_the_next_batch() -> None:
    """exactly_once: an aborted transaction leaves memory ahead of the changelogs; the retry reads them again."""
    tables = Tables()   # no tables: a restore reads nothing (no server), and marks the partitions restored

    async def scenario() -> None:
        tables.assigned({0, 1})
        async with tables.held({0}):
            assert tables.restored == {0, 1}   # every assigned partition, on the first batch
        tables.forget({1})
        assert tables.restored == {0}
        async with tables.held({0}):
            assert tables.restored == {0, 1}

    asyncio.run(scenario())


def test_an_agent_that_has_gone_quiet_snapshots_before_its_interval_is_up() -> None:
    agent = BatchAgent("test", "test-topic", KeepNothing(), offsets_key=None, snapshot_every=timedelta(hours=1),
                       tables=Tables())

    async def scenario() -> None:
        await agent.assigned({0})
        await agent.handle([Record(0, "a", 1, offset=5)])
        await agent.snapshot_when_quiet()
        assert agent.saved_offsets == {}               # a batch came just now: traffic may go on
        agent._last_batch_at -= QUIET_BEFORE_SNAPSHOT.total_seconds()   # a quiet second later
        await agent.snapshot_when_quiet()
        assert agent.saved_offsets == {0: 6}

    asyncio.run(scenario())
