"""Ledger throughput: transfers/s from the command topic to settled events, per processing guarantee.

Runs its own embedded broker (a temp home, free ports) and one stream worker per guarantee; puts
commands straight on the command topic (no API), so the figure is the ledger's own.

    .venv/bin/python scripts/bench_ledger.py --accounts 1000 --transfers 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cli.devstack import Stack, free_port
from cli.topics import apply_topics_sync
from core import commands as c
from core.settings import Settings
from core.topics import LEDGER_COMMANDS, LEDGER_EVENTS, load_registry
from schemas.codec import get_codec

SETTLED = {"TransferCompleted", "TransferReversed", "CommandRejected"}
console = Console()


def command(cls: type[c.Command], account: str, **fields: object) -> c.Command:
    cid = str(uuid.uuid4())
    return cls(command_id=cid, account_id=account, issued_at=datetime.now(UTC), correlation_id=cid, **fields)


async def produce(bootstrap: str, commands: list[c.Command]) -> None:
    codec = get_codec()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for cmd in commands:
            value, headers = codec.encode(cmd)
            futures.append(await producer.send(LEDGER_COMMANDS, value, key=cmd.account_id.encode(), headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def count_settled(bootstrap: str, wanted: set[str], progress: Progress) -> None:
    codec = get_codec()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed")
    await consumer.start()
    task = progress.add_task("settled transfers", total=len(wanted))
    try:
        tps = [TopicPartition(LEDGER_EVENTS, p) for p in consumer.partitions_for_topic(LEDGER_EVENTS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done: set[str] = set()
        while len(done) < len(wanted):
            for records in (await consumer.getmany(timeout_ms=500, max_records=20_000)).values():
                for record in records:
                    if codec.schema_name(record.headers) in SETTLED:
                        correlation = codec.decode(record.value, record.headers).correlation_id
                        if correlation in wanted and correlation not in done:
                            done.add(correlation)
            progress.update(task, completed=len(done))
    finally:
        await consumer.stop()


async def run_once(stack: Stack, guarantee: str, accounts: int, transfers: int) -> dict[str, float]:
    bootstrap = stack.settings.kafka
    ids = [str(uuid.uuid4()) for _ in range(accounts)]
    setup = [command(c.OpenAccount, a, customer_id="bench", currency="EUR") for a in ids]
    setup += [command(c.Deposit, a, amount=10**9, currency="EUR") for a in ids]
    with Progress(console=console, transient=True) as progress:
        await produce(bootstrap, setup)
        await count_settled(bootstrap, set(), progress)
        moves = [command(c.Transfer, ids[i % accounts], to_account_id=ids[(i * 7 + 1) % accounts], amount=100,
                         currency="EUR") for i in range(transfers)]
        start = time.perf_counter()
        producing = asyncio.create_task(produce(bootstrap, moves))
        await count_settled(bootstrap, {m.command_id for m in moves}, progress)
        await producing
    elapsed = time.perf_counter() - start
    return {"guarantee": guarantee, "transfers": transfers, "seconds": round(elapsed, 2),
            "transfers_per_s": round(transfers / elapsed)}


def bench(guarantee: str, accounts: int, transfers: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="bank-bench-"))
    settings = Settings(home=home, kafka_port=free_port(), worker_web_port=free_port() - 1,
                        processing_guarantee=guarantee, pg_dsn="unused", redis_url="unused", mongo_url="unused")
    stack = Stack(settings)
    try:
        stack.start_infra(["kafka"])
        apply_topics_sync(settings.kafka, load_registry(settings.topics_file, settings.topic_replication))
        stack.start_worker(1)
        return asyncio.run(run_once(stack, guarantee, accounts, transfers))
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--transfers", type=int, default=20_000)
    parser.add_argument("--guarantee", choices=["at_least_once", "exactly_once", "both"], default="both")
    args = parser.parse_args()
    modes = ["at_least_once", "exactly_once"] if args.guarantee == "both" else [args.guarantee]
    results = [bench(mode, args.accounts, args.transfers) for mode in modes]
    table = Table(title="ledger throughput (transfer = debit + credit + completion, three commands)")
    for column in ("guarantee", "transfers", "seconds", "transfers_per_s"):
        table.add_column(column)
    for row in results:
        table.add_row(*(str(row[k]) for k in ("guarantee", "transfers", "seconds", "transfers_per_s")))
    console.print(table)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
