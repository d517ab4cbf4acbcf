"""Latency the risk agent adds per command: command -> ledger event, through the risk agent and around it.

Runs its own embedded broker and one stream worker (temp home, free ports). For each path it sends one
Deposit at a time (closed loop, so each figure is one command's own latency, not a queue's) and waits for its
FundsDeposited on the ledger topic:
  - scored:   bank.risk.commands -> risk agent (features, rules, RiskAssessed) -> bank.ledger.commands -> ledger
  - unscored: bank.ledger.commands -> ledger (what BANK_RISK_ENABLED=false does)
The difference of the percentiles is what scoring adds. The worker's own evaluation time per movement
(bank_risk_assessment_seconds) is read from its /metrics.

    .venv/bin/python scripts/bench_risk.py --commands 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import TopicPartition
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cli.devstack import Stack, free_port
from cli.topics import apply_topics_sync
from core import commands as c
from core.settings import Settings
from core.topics import LEDGER_COMMANDS, LEDGER_EVENTS, RISK_COMMANDS
from infra import kafka_fetch
from infra.producer import create_producer
from infra.topics import load_registry
from schemas.codec import get_codec
from infra.kafka import create_consumer, seek_to_end

console = Console()


def command(cls: type[c.Command], account: str, **fields: object) -> c.Command:
    cid = str(uuid.uuid4())
    return cls(command_id=cid, account_id=account, issued_at=datetime.now(UTC), correlation_id=cid, **fields)


class Probe:
    """Sends a command and waits for the ledger event it causes."""

    def __init__(self, bootstrap: str) -> None:
        self.codec = get_codec()
        self.producer = create_producer(bootstrap)
        self.consumer = create_consumer(bootstrap=bootstrap, group_id=None, enable_auto_commit=False)
        self.waiting: dict[str, asyncio.Future[float]] = {}

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        tps = [TopicPartition(LEDGER_EVENTS, p) for p in self.consumer.partitions_for_topic(LEDGER_EVENTS) or ()]
        self.consumer.assign(tps)
        await seek_to_end(self.consumer, tps)
        self.task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        self.task.cancel()
        await self.producer.stop()
        await self.consumer.stop()

    async def _follow(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    event = self.codec.decode(record.value, record.headers)
                    future = self.waiting.pop(event.command_id, None)
                    if future is not None and not future.done():
                        future.set_result(time.perf_counter())

    async def roundtrip(self, cmd: c.Command, topic: str, key: str) -> float:
        """Seconds from sending `cmd` to its first ledger event."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[cmd.command_id] = future
        value, headers = self.codec.encode(cmd)
        started = time.perf_counter()
        await self.producer.send_and_wait(topic, value, key=key.encode(), headers=headers)
        return await asyncio.wait_for(future, 30) - started


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 2), "p95_ms": round(cuts[94] * 1000, 2),
            "p99_ms": round(cuts[98] * 1000, 2), "mean_ms": round(statistics.fmean(samples) * 1000, 2)}


async def measure(bootstrap: str, commands: int, warmup: int) -> dict[str, dict[str, float]]:
    probe = Probe(bootstrap)
    await probe.start()
    try:
        customer = "bench-customer"
        accounts = [str(uuid.uuid4()) for _ in range(20)]
        for account in accounts:  # opened through the risk agent, like the API does
            await probe.roundtrip(command(c.OpenAccount, account, customer_id=customer, currency="EUR"),
                                  RISK_COMMANDS, customer)
        paths = {"scored": (RISK_COMMANDS, lambda a: customer), "unscored": (LEDGER_COMMANDS, lambda a: a)}
        samples: dict[str, list[float]] = {name: [] for name in paths}
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("commands", total=2 * (commands + warmup))
            for i in range(commands + warmup):
                for name, (topic, key) in paths.items():  # interleaved, so both see the same conditions
                    account = accounts[i % len(accounts)]
                    seconds = await probe.roundtrip(command(c.Deposit, account, amount=1234, currency="EUR"),
                                                    topic, key(account))
                    if i >= warmup:
                        samples[name].append(seconds)
                    progress.advance(task)
        return {name: percentiles(values) for name, values in samples.items()}
    finally:
        await probe.stop()


def assessment_seconds(metrics_url: str) -> dict[str, float]:
    """The worker's own scoring time: mean from the histogram's sum and count."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("bank_risk_assessment_seconds_") and "{" not in line}
    count = values.get("bank_risk_assessment_seconds_count", 0.0)
    mean = values.get("bank_risk_assessment_seconds_sum", 0.0) / count if count else 0.0
    return {"movements_scored": count, "mean_evaluation_ms": round(mean * 1000, 3)}


def bench(commands: int, warmup: int) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix="bank-bench-risk-"))
    settings = Settings(home=home, kafka_port=free_port(), worker_web_port=free_port() - 1,
                        pg_dsn="unused", redis_url="unused", mongo_url="unused")
    stack = Stack(settings)
    try:
        stack.start_infra(["kafka"])
        apply_topics_sync(settings.kafka, load_registry(settings.topics_file, settings.topic_replication))
        stack.start_worker(1)
        kafka_fetch.install_for(settings)  # the probe polls like the platform
        latency = asyncio.run(measure(settings.kafka, commands, warmup))
        worker = assessment_seconds(f"http://127.0.0.1:{stack.worker_port(1)}/metrics")
        added = {k: round(latency["scored"][k] - latency["unscored"][k], 2) for k in latency["scored"]}
        return {"commands": commands, "scored": latency["scored"], "unscored": latency["unscored"],
                "added": added, "worker": worker}
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    result = bench(args.commands, args.warmup)
    table = Table(title=f"command -> ledger event latency, {args.commands} deposits one at a time")
    for column in ("path", "p50 ms", "p95 ms", "p99 ms", "mean ms"):
        table.add_column(column)
    for name in ("scored", "unscored", "added"):
        row = result[name]
        table.add_row(name, *(str(row[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")))  # type: ignore
    console.print(table)
    console.print(f"worker: {result['worker']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
