"""`bank bench`: the platform's figures in one run, against the broker's own limit, saved and compared.

Phases, on a private embedded stack (temp home, free ports; rate limits lifted, since a benchmark user
is one user sending thousands of requests):
  raw         aiokafka produce + consume of records the size of a transfer command, same partition count
  ledger      transfers/s through risk scoring, ledger and saga, sustained over `--accounts` accounts
              then cash deposits/s (every one posts against the bank's cash account) for half as long
  projections catch-up and rebuild rates of each read model over the history the ledger phase wrote
  restart     kill -9 of the ledger worker with that history on the log: how soon it decides a command again
  api         open-loop deposits through the API at fixed offered loads, then closed-loop saturation
  retention   (opt-in) the ledger worker's memory over several windows of remembered ids, the stack run with a
              short BANK_PROCESSED_RETENTION (`--retention-window`): flat once the first window has passed
Results go to bench/results/<UTC time>.json with the machine's description; the previous run is compared.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.bench import results as saved
from cli.bench.api_load import run_in_own_process
from cli.bench.broker import raw_broker, wait_for_quiet
from cli.bench.cpu import CpuMeter
from cli.bench.ledger import ledger_throughput
from cli.bench.projections import projection_rates
from cli.bench.restart import restart_time
from cli.bench.retention import retention_memory
from cli.devstack import Stack, free_port
from cli.migrate import migrate
from cli.topics import apply_topics
from core import commands as c
from core.readmodel import PROJECTIONS
from core.settings import Settings
from core.topics import RISK_COMMANDS
from infra import kafka_fetch
from infra.topics import load_registry
from schemas.codec import get_codec

PHASES = ("raw", "ledger", "projections", "restart", "api", "retention")
DEFAULT_PHASES = PHASES[:5]
console = Console(stderr=True)


def bench_settings(home: Path, guarantee: str = "at_least_once", retention_s: float | None = None,
                   workers: int = 2) -> Settings:
    base = free_port() - 1
    return Settings(home=home, kafka_port=free_port(), pg_port=free_port(), redis_port=free_port(),
                    mongo_port=free_port(), api_port=free_port(), worker_web_port=base,
                    lag_exporter_port=free_port(), prometheus_port=free_port(), rail_port=free_port(),
                    gateway_port=free_port(), rail_url=None, kafka_bootstrap=None, pg_dsn=None,
                    redis_url=None, mongo_url=None, command_timeout=timedelta(seconds=30),
                    rate_limit_per_ip=10**9, rate_limit_per_user=10**9, processing_guarantee=guarantee, workers=workers,
                    **({} if retention_s is None else {"processed_retention": timedelta(seconds=retention_s)}))


def transfer_record_bytes() -> int:
    """The size of an encoded Transfer command: what the raw baseline sends."""
    cid = "00000000-0000-0000-0000-000000000000"
    command = c.Transfer(command_id=cid, account_id=cid, issued_at=datetime.now(UTC), correlation_id=cid,
                         to_account_id=cid, amount=100, currency="EUR")
    return len(get_codec().encode(command)[0])


async def run(phases: tuple[str, ...], accounts: int, duration: float, loads: list[int], load_seconds: float,
              raw_records: int, guarantee: str = "at_least_once", retention_window: float = 30.0,
              workers: int = 2) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bank-bench-"))
    settings = bench_settings(home, guarantee, retention_window if "retention" in phases else None, workers)
    stack = Stack(settings)
    result: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "machine": saved.machine(),
                              "settings": {"accounts": accounts, "duration_s": duration, "workers": settings.workers,
                                           "processing_guarantee": settings.processing_guarantee}}
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            setup = progress.add_task("starting the private stack", total=None)
            await asyncio.to_thread(stack.start_infra)
            registry = load_registry(settings.topics_file, settings.topic_replication)
            await apply_topics(settings.kafka, registry)
            await migrate(settings.pg, settings.migrations_dir)
            progress.remove_task(setup)
            partitions = registry[RISK_COMMANDS].partitions
            if "raw" in phases:
                result["raw_broker"] = await raw_broker(settings.kafka, raw_records, transfer_record_bytes(),
                                                        partitions, progress)
            await asyncio.to_thread(stack.start_workers)
            if "ledger" in phases:
                result["ledger"] = await ledger_throughput(settings.kafka, accounts, max(1, accounts // 10),
                                                           duration, min(10.0, duration / 6), 2_000, progress,
                                                           stack_pids(stack))
            if "projections" in phases and "ledger" in phases:
                result["projections"] = await projection_rates(stack, list(PROJECTIONS), progress)
            if "restart" in phases:
                result["restart"] = await restart_time(stack, progress)
            if "api" in phases:
                result["api"] = await api_phase(stack, loads, load_seconds, progress)
            if "retention" in phases:
                worker = stack.children["worker-1"].popen.pid
                result["retention"] = await retention_memory(settings.kafka, worker, stack.urls()["worker-1"] + "/metrics",
                                                             retention_window, 4, min(accounts, 1_000), progress)
    finally:
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(home, ignore_errors=True)
    raw, ledger = result.get("raw_broker"), result.get("ledger")
    if raw and ledger:
        result["ratio_to_raw"] = round(ledger["transfers_per_s"] / min(raw["produce_per_s"], raw["consume_per_s"]), 4)
    return result


def stack_pids(stack: Stack) -> dict[str, int]:
    """The stack's live processes by name, and the bench's own (it sends the load), for the CPU figures."""
    pids = {name: child.popen.pid for name, child in stack.children.items() if child.alive}
    return pids | {"bench": os.getpid()}


async def api_phase(stack: Stack, loads: list[int], seconds: float, progress: Any) -> dict[str, Any]:
    from cli.bench.identity import bench_token  # the API's user store: only this phase needs it

    await asyncio.to_thread(stack.start_api)
    token, accounts = await bench_token(stack.settings, stack.api_url)
    figures: dict[str, Any] = {"seconds_per_load": seconds, "accounts": len(accounts), "loads": []}
    task = progress.add_task("api: saturation, then open-loop loads", total=len(loads) + 2)
    # Each measurement starts from an idle platform: an overload leaves a queue on the topics that the next
    # one would otherwise pay for. Saturation first, before any overload.
    busy = [name for name, spec in load_registry(stack.settings.topics_file).items() if spec.kind != "deadletter"]
    runs = [("closed", 64), ("closed-no-wait", 64), *(("open", rate) for rate in loads)]
    for kind, figure in runs:
        drained = await wait_for_quiet(stack.settings.kafka, busy)
        cpu = CpuMeter(stack_pids(stack))   # the load generator's process is the bench's child: in its share
        measured = await run_in_own_process(kind, stack.api_url, token, accounts, figure, seconds)
        figures["loads"].append(measured | {"waited_for_quiet_s": drained, "cores_used": cpu.shares()})
        progress.advance(task)
    return figures


def render(result: dict[str, Any], before: dict[str, Any] | None) -> Table:
    now = saved.headline(result)
    then = saved.headline(before) if before else {}
    table = Table(title=f"bank bench — {result['machine']['cpu']}, {result['machine']['cores']} cores")
    table.add_column("figure")
    table.add_column("this run", justify="right")
    table.add_column("previous run", justify="right")
    table.add_column("change", justify="right")
    for name, value in now.items():
        old = then.get(name)
        change = f"{(value - old) / old * 100:+.0f}%" if old else ""
        table.add_row(name, f"{value:,}", "" if old is None else f"{old:,}", change)
    return table


def bench(
    phases: Annotated[str, typer.Option(help=f"Comma-separated phases among {', '.join(PHASES)}.")] = ",".join(
        DEFAULT_PHASES),
    accounts: Annotated[int, typer.Option(help="Accounts the ledger phase transfers between.")] = 10_000,
    duration: Annotated[float, typer.Option(help="Seconds of sustained transfers in the ledger phase.")] = 60.0,
    loads: Annotated[str, typer.Option(help="Offered API loads, requests/s.")] = "100,500,1000,2000",
    load_seconds: Annotated[float, typer.Option(help="Seconds per API load.")] = 15.0,
    raw_records: Annotated[int, typer.Option(help="Records of the raw broker baseline.")] = 200_000,
    guarantee: Annotated[str, typer.Option(help="at_least_once (the default) or exactly_once.")] = "at_least_once",
    retention_window: Annotated[float, typer.Option(help="Seconds ids are remembered in the retention phase.")] = 30.0,
    workers: Annotated[int, typer.Option(help="Ledger workers. A worker is one Python process, so at most one core: "
                                              "two use both cores of this machine.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    save: Annotated[bool, typer.Option(help="Save under bench/results/ and compare with the previous run.")] = True,
) -> None:
    """Measure the raw broker, the ledger with fraud scoring, the read models and the API in one run."""
    chosen = tuple(p.strip() for p in phases.split(",") if p.strip())
    unknown = set(chosen) - set(PHASES)
    if unknown:
        raise typer.BadParameter(f"unknown phase(s) {', '.join(sorted(unknown))}; choose among {', '.join(PHASES)}")
    if guarantee not in ("at_least_once", "exactly_once"):
        raise typer.BadParameter("--guarantee is at_least_once or exactly_once")
    # The bench's own consumers (event counters, drain checks) poll like the platform's: an idle one must not spin
    # on the embedded broker's instant empty fetches (defect 6) and take CPU from what it measures.
    kafka_fetch.install_for(Settings())
    result = asyncio.run(run(chosen, accounts, duration, [int(x) for x in loads.split(",") if x], load_seconds,
                             raw_records, guarantee, retention_window, workers))
    before = saved.previous()
    if save:
        path = saved.save(result)
        console.print(f"saved {path.relative_to(saved.RESULTS_DIR.parent.parent)}")
    console.print(render(result, before))
    if as_json:
        print(json.dumps(result, indent=2))
