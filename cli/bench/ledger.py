"""Ledger throughput with fraud scoring on: transfers/s from the command topic to settled events, sustained.

Commands go where the API puts them (bank.risk.commands, keyed by customer), so every transfer is scored by
the risk agent, forwarded, decided, credited through the saga and completed: three ledger commands and four
or more events each. A transfer counts when it settles (TransferCompleted, TransferReversed, or rejected).
The producer keeps a bounded backlog (`window` transfers not yet settled), so the figure is what the
platform sustains, not how fast a queue fills.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition

from cli.bench.broker import wait_for_quiet

from core import commands as c
from core.topics import LEDGER_EVENTS, RISK_COMMANDS
from infra.producer import create_producer
from infra.records import header
from infra.topics import load_registry
from schemas.codec import HEADER_SCHEMA, get_codec
from infra.kafka import create_consumer, seek_to_end

SETTLED = (b"TransferCompleted", b"TransferReversed", b"CommandRejected", b"FundsHeld")
SET_UP = (b"AccountOpened", b"FundsDeposited")


class EventCounter:
    """Counts ledger events by type from the end of the log on, from their schema header (no decoding)."""

    def __init__(self, bootstrap: str) -> None:
        self.counts: Counter[bytes] = Counter()
        self.events = 0
        self._consumer = create_consumer(bootstrap=bootstrap, group_id=None, enable_auto_commit=False,
                                         isolation_level="read_committed")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        tps = [TopicPartition(LEDGER_EVENTS, p) for p in sorted(self._consumer.partitions_for_topic(LEDGER_EVENTS))]
        self._consumer.assign(tps)
        await seek_to_end(self._consumer, tps)
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()

    def settled(self) -> int:
        return sum(self.counts[name] for name in SETTLED)

    async def _follow(self) -> None:
        while True:
            for records in (await self._consumer.getmany(timeout_ms=200, max_records=20_000)).values():
                self.events += len(records)
                for record in records:
                    self.counts[header(record, HEADER_SCHEMA) or b"?"] += 1


def _command(cls: type[c.Command], account: str, **fields: Any) -> c.Command:
    cid = str(uuid.uuid4())
    return cls(command_id=cid, account_id=account, issued_at=datetime.now(UTC), correlation_id=cid, **fields)


class Sender:
    def __init__(self, bootstrap: str) -> None:
        self.codec = get_codec()
        self.producer = create_producer(bootstrap, linger_ms=5, max_batch_size=1024 * 1024)

    async def send(self, commands: list[tuple[c.Command, str]]) -> None:
        """(command, customer id) pairs, onto the risk agent's topic."""
        futures = []
        for command, customer in commands:
            value, headers = self.codec.encode(command)
            futures.append(await self.producer.send(RISK_COMMANDS, value, key=customer.encode(), headers=headers))
        await asyncio.gather(*futures)


async def ledger_throughput(bootstrap: str, accounts: int, customers: int, duration: float, warmup: float,
                            window: int, progress: Any = None) -> dict[str, Any]:
    ids = [str(uuid.uuid4()) for _ in range(accounts)]
    owner = {a: f"bench-customer-{n % customers}" for n, a in enumerate(ids)}
    counter, sender = EventCounter(bootstrap), Sender(bootstrap)
    await counter.start()
    await sender.producer.start()
    try:
        await _open_and_fund(ids, owner, counter, sender, progress)
        # the measured window starts from an idle platform, not from a backlog of the set-up's table snapshots
        await wait_for_quiet(bootstrap, [n for n, spec in load_registry().items() if spec.kind == "internal"])
        return await _sustain(ids, owner, counter, sender, duration, warmup, window, progress)
    finally:
        await sender.producer.stop()
        await counter.stop()


async def _open_and_fund(ids: list[str], owner: dict[str, str], counter: EventCounter, sender: Sender,
                         progress: Any) -> None:
    task = progress.add_task("ledger: open and fund accounts", total=2 * len(ids)) if progress else None
    setup = [(_command(c.OpenAccount, a, customer_id=owner[a], currency="EUR"), owner[a]) for a in ids]
    setup += [(_command(c.Deposit, a, amount=10**9, currency="EUR"), owner[a]) for a in ids]
    await sender.send(setup)
    while (done := sum(counter.counts[name] for name in SET_UP)) < len(setup):
        if task is not None:
            progress.update(task, completed=done)
        await asyncio.sleep(0.2)
    if task is not None:
        progress.update(task, completed=len(setup))


async def _sustain(ids: list[str], owner: dict[str, str], counter: EventCounter, sender: Sender, duration: float,
                   warmup: float, window: int, progress: Any) -> dict[str, Any]:
    task = progress.add_task(f"ledger: transfers for {duration:.0f}s", total=duration) if progress else None
    base_settled, base_events = counter.settled(), counter.events
    produced, n = 0, 0
    started = time.monotonic()
    marks: dict[str, tuple[float, int, int]] = {}
    while (elapsed := time.monotonic() - started) < duration:
        if "warm" not in marks and elapsed >= warmup:
            marks["warm"] = (elapsed, counter.settled() - base_settled, counter.events - base_events)
        outstanding = produced - (counter.settled() - base_settled)
        if outstanding < window:
            batch = []
            for _ in range(min(500, window - outstanding)):
                source, target = ids[n % len(ids)], ids[(n * 7919 + 1) % len(ids)]
                if source == target:
                    target = ids[(n + 1) % len(ids)]
                batch.append((_command(c.Transfer, source, to_account_id=target, amount=100, currency="EUR"),
                              owner[source]))
                n += 1
            await sender.send(batch)
            produced += len(batch)
        else:
            await asyncio.sleep(0.01)
        if task is not None:
            progress.update(task, completed=min(elapsed, duration))
    end = (time.monotonic() - started, counter.settled() - base_settled, counter.events - base_events)
    warm = marks.get("warm", (0.0, 0, 0))
    seconds = end[0] - warm[0]
    transfers = end[1] - warm[1]
    return {"accounts": len(ids), "customers": len(set(owner.values())), "seconds": round(seconds, 1),
            "warmup_s": warmup, "transfers_produced": produced, "transfers_settled": end[1],
            "transfers_per_s": round(transfers / seconds), "ledger_events_per_s": round((end[2] - warm[2]) / seconds),
            "backlog_at_end": produced - end[1], "fraud_scoring": True}
