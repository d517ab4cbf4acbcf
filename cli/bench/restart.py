"""How soon a ledger worker killed with kill -9 decides commands again, with the history the earlier phases wrote.

The worker restores its tables from their changelogs (the periodic snapshots), folds the event log's tail since
the last one, and rejoins its consumer group with the same static member id. Measured: kill -9 to the process up
again (its web port answers), and kill -9 to the first command after it decided (a deposit through the risk agent
and the ledger, as the API sends it), beside how many records the log and the changelogs then hold, and how long
the worker says its restore of the tables took (streams/tables.py). With two workers, worker 1 is killed, and the
deposit is on its partitions: the other worker's go on meanwhile, and the restarted one restores only its own.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cli.bench.broker import wait_for_quiet
from cli.bench.ledger import EventCounter, Sender, _command, changelogs, records_on_log
from cli.devstack import Stack
from core import commands as c
from core.topics import LEDGER_EVENTS
from infra.kafka import end_offsets, partition_for
from infra.topics import load_registry


async def restart_time(stack: Stack, progress: Any = None) -> dict[str, Any]:
    bootstrap = stack.settings.kafka
    task = progress.add_task("restart: kill -9 the ledger worker, first decision after", total=None) \
        if progress else None
    # the worker killed must be the one to decide: the deposit's customer (the risk agent's key) and account (the
    # ledger's) on its partitions, the first range of the workers' (streams/consumer.py WorkerRangeAssignor)
    partitions = load_registry()[LEDGER_EVENTS].partitions
    first_range = max(1, partitions // stack.settings.workers)
    account = _key_within(first_range, partitions, lambda: str(uuid.uuid4()))
    customer = _key_within(first_range, partitions, lambda: f"restart-customer-{uuid.uuid4().hex[:8]}")
    counter, sender = EventCounter(bootstrap, key=account), Sender(bootstrap)   # this account's events only
    await wait_for_quiet(bootstrap, [name for name, spec in load_registry().items() if spec.kind != "deadletter"])
    await counter.start()
    await sender.producer.start()
    try:
        await sender.send([(_command(c.OpenAccount, account, customer_id=customer, currency="EUR"), customer)])
        while counter.counts[b"AccountOpened"] < 1:
            await asyncio.sleep(0.05)
        ledger_events = sum((await end_offsets(bootstrap, [LEDGER_EVENTS])).values())
        records = await records_on_log(bootstrap)
        changelog_records = sum((await end_offsets(bootstrap, changelogs())).values())
        killed_at = time.monotonic()
        await asyncio.to_thread(stack.kill_worker, 1, signal.SIGKILL)
        await asyncio.to_thread(stack.start_worker, 1)
        up_s = time.monotonic() - killed_at
        await sender.send([(_command(c.Deposit, account, amount=100, currency="EUR"), customer)])
        while counter.counts[b"FundsDeposited"] + counter.counts[b"CommandRejected"] < 1:
            await asyncio.sleep(0.02)
        decided_s = time.monotonic() - killed_at
        restore = await worker_restore(stack)
    finally:
        await sender.producer.stop()
        await counter.stop()
        if task is not None:
            progress.remove_task(task)
    return {"ledger_events_on_log": ledger_events, "records_on_log": records,
            "changelog_records_on_log": changelog_records, "kill_to_process_up_s": round(up_s, 2),
            "kill_to_first_decision_s": round(decided_s, 2), **restore}


async def worker_restore(stack: Stack) -> dict[str, Any]:
    """What the restarted worker says of its restore (its /metrics): how long the last one took, how many
    changelog records it read back."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{stack.urls()['worker-1']}/metrics")
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:   # the records: one sample per table
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return {"worker_restore_s": round(totals.get("bank_table_restore_seconds", 0.0), 2),
            "worker_restored_records": int(totals.get("bank_table_restored_records_total", 0))}


def _key_within(first_partitions: int, partitions: int, new_key: Callable[[], str]) -> str:
    """A key the producers send to one of the first `first_partitions` partitions."""
    while partition_for((key := new_key()).encode(), partitions) >= first_partitions:
        pass
    return key
