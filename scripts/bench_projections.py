"""Projection throughput: events/s of each read model catching up on a backlog, and of `rebuild`.

Runs its own embedded broker and databases (a temp home, free ports), writes a valid synthetic ledger
history straight onto the event topic (no ledger worker, no API), then for each projection alone starts a
projection worker and times it from its first applied batch to the end of the log. Finally rebuilds each
model from offset 0 (with swap) and reports that rate too.

    .venv/bin/python scripts/bench_projections.py --events 100000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from cli.devstack import Stack, free_port
from cli.migrate import migrate
from cli.topics import apply_topics
from core import events as e
from core.readmodel import PROJECTIONS
from core.settings import Settings
from core.topics import LEDGER_EVENTS, load_registry
from schemas.codec import get_codec
from streams.projections import create_store
from streams.projections.admin import end_offsets, rebuild

console = Console()


def synthetic_history(events: int, accounts: int, seed: int = 7) -> list[e.Event]:
    """Accounts opened, then deposits and withdrawals that never overdraw, in per-account order."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [f"bench-{n:06d}" for n in range(accounts)]
    state = {a: (1, 0) for a in ids}  # sequence, balance
    history: list[e.Event] = []

    def envelope(account: str, sequence: int) -> dict[str, object]:
        cid = str(uuid.uuid4())
        return {"event_id": str(uuid.uuid4()), "command_id": cid, "correlation_id": cid, "account_id": account,
                "occurred_at": start + timedelta(seconds=len(history)), "sequence": sequence}

    for account in ids:
        history.append(e.AccountOpened(**envelope(account, 1), customer_id=f"cust-{rng.randrange(accounts // 3 + 1)}",
                                       currency="EUR", overdraft_limit=0))
    while len(history) < events:
        account = rng.choice(ids)
        sequence, balance = state[account]
        amount = rng.randint(1, 50_000)
        if balance >= amount and rng.random() < 0.4:
            balance -= amount
            event: e.Event = e.FundsWithdrawn(**envelope(account, sequence + 1), amount=amount, currency="EUR",
                                              balance_after=balance, reference="atm")
        else:
            balance += amount
            event = e.FundsDeposited(**envelope(account, sequence + 1), amount=amount, currency="EUR",
                                     balance_after=balance, reference=f"salary {rng.randrange(1000)}")
        state[account] = (sequence + 1, balance)
        history.append(event)
    return history


async def produce(bootstrap: str, history: list[e.Event]) -> float:
    codec = get_codec()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5,
                                max_batch_size=1024 * 1024)
    await producer.start()
    started = time.monotonic()
    try:
        futures = []
        for event in history:
            value, headers = codec.encode(event)
            futures.append(await producer.send(LEDGER_EVENTS, value, key=event.account_id.encode(), headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def catch_up_rate(stack: Stack, name: str, total: int) -> dict[str, float]:
    """Start a projection worker for `name` alone and time it from its first batch to the end of the log."""
    store = create_store(name, stack.settings)
    await store.open()
    ends = await end_offsets(stack.settings.kafka)
    spec = stack.projector_spec(1)
    only = dataclasses.replace(spec, env=spec.env | {"BANK_PROJECTIONS": json.dumps([name])})
    await asyncio.to_thread(stack.start, only)
    first: tuple[float, int] | None = None
    try:
        while True:
            done = sum(min(o, ends[p]) for p, o in (await store.offsets()).items())
            now = time.monotonic()
            if first is None and done > 0:
                first = (now, done)
            if done >= sum(ends.values()):
                break
            await asyncio.sleep(0.05)
    finally:
        await store.close()
        stack.kill("projector-1")
    assert first is not None
    seconds = now - first[0]
    events = total - first[1]
    return {"events": events, "seconds": round(seconds, 2), "events_per_s": round(events / seconds)}


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="bank-bench-"))
    base = free_port() - 1
    settings = Settings(home=home, kafka_port=free_port(), pg_port=free_port(), redis_port=free_port(),
                        mongo_port=free_port(), worker_web_port=base, workers=0, kafka_bootstrap=None,
                        pg_dsn=None, redis_url=None, mongo_url=None)
    stack = Stack(settings)
    results: dict[str, object] = {"events": args.events, "accounts": args.accounts}
    try:
        stack.start_infra()
        registry = load_registry(settings.topics_file, settings.topic_replication)
        assert (await apply_topics(settings.kafka, registry)).ok
        await migrate(settings.pg, settings.migrations_dir)
        history = synthetic_history(args.events, args.accounts)
        seconds = await produce(settings.kafka, history)
        console.log(f"wrote {len(history):,} events in {seconds:.1f}s ({len(history) / seconds:,.0f}/s)")
        for name in args.projections:
            results[f"catch_up_{name}"] = figures = await catch_up_rate(stack, name, len(history))
            console.log(f"{name} catch-up: {figures}")
        for name in args.projections:
            report = await rebuild(create_store(name, settings), settings.kafka)
            results[f"rebuild_{name}"] = {"events": report.events, "seconds": round(report.seconds, 2),
                                          "events_per_s": round(report.events_per_second)}
            console.log(f"{name} rebuild: {results[f'rebuild_{name}']}")
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)
    table = Table(title=f"projections: {args.events:,} events, {args.accounts:,} accounts")
    for column in ("projection", "catch-up events/s", "rebuild events/s"):
        table.add_column(column)
    for name in args.projections:
        table.add_row(name, f"{results[f'catch_up_{name}']['events_per_s']:,}",  # type: ignore[index]
                      f"{results[f'rebuild_{name}']['events_per_s']:,}")  # type: ignore[index]
    console.print(table)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--projections", nargs="+", default=list(PROJECTIONS), choices=PROJECTIONS)
    parser.add_argument("--json", action="store_true")
    asyncio.run(main(parser.parse_args()))
