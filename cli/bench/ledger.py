"""Ledger throughput with fraud scoring on: transfers/s and cash deposits/s from the command topic to settled
events, sustained.

Commands go where the API puts them (bank.risk.commands, keyed by customer), so every one is scored by the risk
agent first. A transfer is then forwarded, decided, credited through the saga and completed: three ledger
commands and four or more events each; it counts when it settles (TransferCompleted, TransferReversed, or
rejected). A cash deposit is one ledger command and one event whose legs debit the bank's cash account: it
counts when FundsDeposited (or a rejection) is on the log. The cash account is touched by every deposit, so
this measures that a hot bank account does not serialise the ledger: its legs are posted on each customer
account's own partition, never funnelled through one. The producer keeps a bounded backlog (`window` commands
not yet settled), so the figures are what the platform sustains, not how fast a queue fills.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition

from cli.bench.broker import wait_for_quiet
from cli.bench.cpu import CpuMeter

from core import commands as c
from core.topics import LEDGER_EVENTS, RISK_COMMANDS
from infra.producer import create_producer
from infra.records import header
from infra.topics import load_registry
from schemas.codec import HEADER_SCHEMA, get_codec
from infra.kafka import create_consumer, end_offsets, seek_to_end

SETTLED = (b"TransferCompleted", b"TransferReversed", b"CommandRejected", b"FundsHeld")
DEPOSITED = (b"FundsDeposited", b"CommandRejected")
SET_UP = (b"AccountOpened", b"FundsDeposited")


class EventCounter:
    """Counts ledger events by type from the end of the log on, from their schema header (no decoding); with
    `key`, only the events of that account."""

    def __init__(self, bootstrap: str, key: str | None = None) -> None:
        self.counts: Counter[bytes] = Counter()
        self.events = 0
        self.key = None if key is None else key.encode()
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

    def settled(self, names: tuple[bytes, ...] = SETTLED) -> int:
        return sum(self.counts[name] for name in names)

    async def _follow(self) -> None:
        while True:
            for records in (await self._consumer.getmany(timeout_ms=200, max_records=20_000)).values():
                self.events += len(records)
                for record in records:
                    if self.key is None or record.key == self.key:
                        self.counts[header(record, HEADER_SCHEMA) or b"?"] += 1


async def records_on_log(bootstrap: str) -> int:
    """Every record written so far to every topic of the registry (the platform's, the tables' changelogs, the
    commands the bench sends): the difference over a phase, divided by what settled in it, is what a transfer costs."""
    return sum((await records_by_topic(bootstrap)).values())


async def records_by_topic(bootstrap: str) -> Counter[str]:
    """The records written so far to each topic of the registry."""
    counts: Counter[str] = Counter()
    for tp, offset in (await end_offsets(bootstrap, load_registry(), isolation_level="read_uncommitted")).items():
        counts[tp.topic] += offset
    return counts


def changelogs() -> list[str]:
    """The tables' changelog topics (the registry's internal ones)."""
    return [name for name, spec in load_registry().items() if spec.kind == "internal"]


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
                            window: int, progress: Any = None, pids: Mapping[str, int] | None = None,
                            ) -> dict[str, Any]:
    """Transfers for `duration` seconds, then cash deposits for half as long, over the same accounts; with `pids`
    (process name -> pid), the cores each process used while the transfers ran."""
    ids = [str(uuid.uuid4()) for _ in range(accounts)]
    owner = {a: f"bench-customer-{n % customers}" for n, a in enumerate(ids)}
    counter, sender = EventCounter(bootstrap), Sender(bootstrap)
    await counter.start()
    await sender.producer.start()
    quiet = changelogs()
    try:
        await _open_and_fund(ids, owner, counter, sender, progress)
        # each measured window starts from an idle platform, not from a backlog of table snapshots
        await wait_for_quiet(bootstrap, quiet)

        def transfer(n: int) -> tuple[c.Command, str]:
            source, target = ids[n % len(ids)], ids[(n * 7919 + 1) % len(ids)]
            if source == target:
                target = ids[(n + 1) % len(ids)]
            return _command(c.Transfer, source, to_account_id=target, amount=100, currency="EUR"), owner[source]

        def deposit(n: int) -> tuple[c.Command, str]:
            account = ids[(n * 7919) % len(ids)]
            # channel cash, no teller named: every one debits the one vault cash account, the hottest there is
            return _command(c.Deposit, account, amount=100, currency="EUR", channel="cash"), owner[account]

        records_before = await records_by_topic(bootstrap)
        cpu = CpuMeter(pids or {})
        transfers = await _sustain("transfers", transfer, SETTLED, counter, sender, duration, warmup, window,
                                   progress)
        cores_used = cpu.shares()
        await wait_for_quiet(bootstrap, quiet)
        by_topic = await records_by_topic(bootstrap) - records_before
        records = sum(by_topic.values())
        settled_all = counter.settled(SETTLED) - transfers["settled_before"]
        deposits = await _sustain("cash deposits", deposit, DEPOSITED, counter, sender, duration / 2, warmup / 2,
                                  window, progress)
    finally:
        await sender.producer.stop()
        await counter.stop()
    return {"accounts": len(ids), "customers": len(set(owner.values())), "warmup_s": warmup,
            "seconds": transfers["seconds"], "transfers_produced": transfers["produced"],
            "transfers_settled": transfers["settled"], "transfers_per_s": transfers["per_s"],
            "ledger_events_per_s": transfers["events_per_s"], "backlog_at_end": transfers["backlog_at_end"],
            "records_per_transfer": round(records / max(1, settled_all), 1),
            "records_per_transfer_by_topic": {topic: round(count / max(1, settled_all), 2)
                                              for topic, count in by_topic.most_common() if count},
            "deposit_seconds": deposits["seconds"], "deposits_settled": deposits["settled"],
            "deposits_per_s": deposits["per_s"], "deposit_events_per_s": deposits["events_per_s"],
            "deposits_to_transfers": round(deposits["per_s"] / max(1, transfers["per_s"]), 2),
            "fraud_scoring": True, "cores_used_during_transfers": cores_used}


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


async def _sustain(label: str, command_of: Callable[[int], tuple[c.Command, str]], settled_names: tuple[bytes, ...],
                   counter: EventCounter, sender: Sender, duration: float, warmup: float, window: int,
                   progress: Any) -> dict[str, Any]:
    """Commands `command_of(0)`, `command_of(1)`, ... for `duration` seconds, at most `window` unsettled; the rate
    is measured after `warmup` seconds."""
    task = progress.add_task(f"ledger: {label} for {duration:.0f}s", total=duration) if progress else None
    base_settled, base_events = counter.settled(settled_names), counter.events
    produced = 0
    started = time.monotonic()
    warm: tuple[float, int, int] | None = None
    while (elapsed := time.monotonic() - started) < duration:
        settled = counter.settled(settled_names) - base_settled
        if warm is None and elapsed >= warmup:
            warm = (elapsed, settled, counter.events - base_events)
        outstanding = produced - settled
        if outstanding < window:
            batch = [command_of(produced + k) for k in range(min(500, window - outstanding))]
            await sender.send(batch)
            produced += len(batch)
        else:
            await asyncio.sleep(0.01)
        if task is not None:
            progress.update(task, completed=min(elapsed, duration))
    end = (time.monotonic() - started, counter.settled(settled_names) - base_settled, counter.events - base_events)
    warm = warm or (0.0, 0, 0)
    seconds = end[0] - warm[0]
    return {"seconds": round(seconds, 1), "produced": produced, "settled": end[1], "settled_before": base_settled,
            "per_s": round((end[1] - warm[1]) / seconds), "events_per_s": round((end[2] - warm[2]) / seconds),
            "backlog_at_end": produced - end[1]}
