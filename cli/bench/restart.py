"""How soon a ledger worker killed with kill -9 decides commands again, with the history the earlier phases wrote.

The worker restores its tables from their changelogs (the periodic snapshots), folds the event log's tail since
the last one, and rejoins its consumer group with the same static member id. Measured: kill -9 to the process up
again (its web port answers), and kill -9 to the first command after it decided (a deposit through the risk agent
and the ledger, as the API sends it), beside how many records the log and the changelogs then hold, and how long
the worker says its restore of the tables took (streams/tables.py).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cli.bench.broker import wait_for_quiet
from cli.bench.ledger import EventCounter, Sender, _command, changelogs, records_on_log
from cli.devstack import Stack
from core import commands as c
from core.topics import LEDGER_EVENTS
from infra.kafka import end_offsets
from infra.topics import load_registry


async def restart_time(stack: Stack, progress: Any = None) -> dict[str, Any]:
    bootstrap = stack.settings.kafka
    task = progress.add_task("restart: kill -9 the ledger worker, first decision after", total=None) \
        if progress else None
    account, customer = str(uuid.uuid4()), "restart-customer"
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
