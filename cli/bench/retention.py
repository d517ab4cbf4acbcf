"""Whether the workers' memory stays flat once the remembered ids' retention window has passed.

The ledger remembers every command id it has handled, and the risk agent every assessment, for
BANK_PROCESSED_RETENTION (7 days in production). With a short window on the bench's private stack, deposits run
for several windows while the ledger worker's resident memory and the ids it remembers (`bank_remembered_ids`) are
sampled: the ids grow through the first window, then stay flat, since they now expire as fast as new ones come.
The memory grows on with the risk agent's 7-day features (see `retention_memory`). Opt-in (`--phases retention`): it runs the stack with
that short window.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cli.bench.ledger import DEPOSITED, SET_UP, EventCounter, Sender, _command, _sustain

from core import commands as c


async def remembered_ids(metrics_url: str) -> int:
    """The ids the worker's agents remember (bank_remembered_ids, every table), from its /metrics."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(metrics_url)).text
    return int(sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples if sample.name == "bank_remembered_ids"))


def resident_mb(pid: int) -> float:
    """A process's resident set size, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


async def retention_memory(bootstrap: str, worker_pid: int, metrics_url: str, window_s: float, windows: int,
                           accounts: int, progress: Any = None) -> dict[str, Any]:
    """Deposits for `windows` retention windows, the worker's memory and the ids it remembers sampled every tenth
    of a window. Its memory also holds the risk agent's features, which keep each account's movements of the last
    7 days (core/risk/features.py RECENT_RETENTION, the rules' longest look-back): they grow through the whole run,
    about 110 bytes a deposit, while the ids are flat once the first window has passed."""
    ids = [str(uuid.uuid4()) for _ in range(accounts)]
    owner = {a: f"retention-customer-{n % max(1, accounts // 10)}" for n, a in enumerate(ids)}
    counter, sender = EventCounter(bootstrap), Sender(bootstrap)
    await counter.start()
    await sender.producer.start()
    samples: list[tuple[float, float]] = []
    id_samples: list[tuple[float, int]] = []
    try:
        await sender.send([(_command(c.OpenAccount, a, customer_id=owner[a], currency="EUR"), owner[a]) for a in ids])
        while counter.settled(SET_UP) < len(ids):
            await asyncio.sleep(0.2)
        started = time.monotonic()

        async def sample() -> None:
            while True:
                at = round(time.monotonic() - started, 1)
                samples.append((at, resident_mb(worker_pid)))
                id_samples.append((at, await remembered_ids(metrics_url)))
                await asyncio.sleep(window_s / 10)

        def deposit(n: int) -> tuple[c.Command, str]:
            account = ids[n % len(ids)]
            return _command(c.Deposit, account, amount=100, currency="EUR"), owner[account]

        sampler = asyncio.create_task(sample())
        try:
            sustained = await _sustain("deposits over retention windows", deposit, DEPOSITED, counter, sender,
                                       window_s * windows, 0.0, 2_000, progress)
        finally:
            sampler.cancel()
    finally:
        await sender.producer.stop()
        await counter.stop()
    after_first = [mb for at, mb in samples if at >= window_s * 1.5]
    ids_after_first = [count for at, count in id_samples if at >= window_s * 1.5]
    return {"window_s": window_s, "windows": windows, "commands": sustained["settled"],
            "commands_per_window": round(sustained["settled"] / windows),
            "worker_rss_mb": samples,
            "rss_growth_after_first_window_mb": round(max(after_first) - min(after_first), 1) if after_first else None,
            "rss_at_first_window_mb": next((mb for at, mb in samples if at >= window_s), None),
            "rss_at_end_mb": samples[-1][1] if samples else None,
            "remembered_ids": id_samples,
            "remembered_ids_after_first_window": [min(ids_after_first), max(ids_after_first)] if ids_after_first
            else None}
