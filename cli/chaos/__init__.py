"""`bank chaos`: faults under load, then the ledger's invariants on the log and the read models.

On a private embedded stack (temp home, free ports, rate limits lifted: the load is one teller sending
thousands of requests) with 2 ledger workers, 1 projection worker, the API, the sandbox payment rail and the
payment gateway:
  1. open and fund accounts; close one (transfers to it must be reversed by the saga);
  2. a steady open-loop load of transfers, deposits, withdrawals and payments to other banks through the API (the
     rail settles them, or returns those to one creditor IBAN), from a process of its
     own, with a retrying client (cli/chaos/load.py);
  3. a schedule of faults (cli/chaos/faults.py) for `--duration` seconds, at least one of each asked for;
  4. stop the load, let everything settle, then check (core/invariants.py): the books balance (the trial
     balance of core/books.py zero per currency, no ledger account past its constraint), every debit has its
     credit or reversal, no event id or posting twice, no balance past its overdraft, every command the
     client got an answer for has its events and the answer agrees with the log, every read model equals
     a fresh rebuild from offset 0, and no process died without being killed.
Prints what was injected and what held; exits 1 when an invariant is broken (the stack's home and logs are
then kept for a post-mortem).
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.bench import bench_settings
from cli.bench.identity import admin_token, bench_token
from cli.bench.results import machine
from cli.chaos import orders
from cli.chaos.faults import FAULTS, Injection, Injector
from cli.chaos.load import RETURNED_CREDITOR
from cli.chaos.load import GIVE_UP_S, LoadProcess
from cli.devstack import Stack, StackError, free_port
from cli.migrate import migrate
from cli.topics import apply_topics
from core.invariants import Check, LedgerAudit, answered_checks, compare_models
from core.readmodel import PROJECTIONS
from core.settings import Settings
from infra.topics import load_registry
from streams.ledger_log import settled_audit
from streams.projections.dumps import live_dump, rebuilt_dump, wait_caught_up

console = Console(stderr=True)

FUNDING = "1000.00"        # what each account starts with
DOLLAR_ACCOUNTS = 5        # exchanges from the euro accounts pay into these
SETTLE_TIMEOUT_S = 180.0   # without progress, for sagas to finish and projections to catch up after the load
TICK_S = 0.5
UNASKED = "no process died unasked"
CAME_BACK = "every restarted process came back"


def chaos_settings(home: Path, duration: float) -> Settings:
    """The benchmark's private stack, with 2 ledger workers (one is killed or paused while the other works on)
    and access tokens that outlive the run (the load logs in once)."""
    return bench_settings(home).model_copy(update={
        "workers": 2, "projection_workers": 1, "access_token_ttl": timedelta(seconds=duration + 3600),
        # business time moved a day at a time for the standing orders (the endpoint is off in production)
        "clock_control": True, "scheduler_port": free_port()})


@dataclass
class Run:
    """What happened: the faults, the processes that died unasked, the client's tally and the checks."""

    stack: Stack
    watchdog: Watchdog
    started: float = 0.0    # time.monotonic() when the load started (every process reads the same clock)
    injections: list[Injection] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return bool(self.checks) and all(c.held for c in self.checks)


async def run(duration: float, rate: float, gap: float, faults: tuple[str, ...], seed: int,
              keep_home: bool = False) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bank-chaos-"))
    settings = chaos_settings(home, duration)
    stack = Stack(settings)
    chaos = Run(stack, Watchdog(stack))
    load: LoadProcess | None = None
    watching: asyncio.Task[None] | None = None
    result: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "machine": machine(), "settings": {
        "duration_s": duration, "rate_per_s": rate, "gap_s": gap, "faults": list(faults), "seed": seed,
        "workers": settings.workers, "projection_workers": settings.projection_workers,
        "processing_guarantee": settings.processing_guarantee, "broker": "embedded noida-db"}}
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                      transient=True) as progress:
            setup = progress.add_task("starting the private stack (2 ledger workers, projector, API)", total=None)
            ready = await _bring_up(chaos.stack)
            progress.remove_task(setup)
            load = LoadProcess(chaos.stack.api_url, ready.token, ready.accounts, ready.closed, ready.dollars, rate,
                               seed)
            load.start()
            await asyncio.to_thread(load.wait_running)
            watching = asyncio.create_task(chaos.watchdog.run())
            chaos.started = time.monotonic()
            # the savers' days pass while the faults land: the scheduler pays each day's orders meanwhile
            days = asyncio.create_task(orders.days_pass(chaos.stack.api_url, ready.admin, orders.PAYMENTS, gap,
                                                        GIVE_UP_S))
            await _schedule(chaos, Injector(chaos.stack, chaos.started), faults, duration, gap, load, progress)
            result["days_passed"] = await days
            chaos.load = await _drain(load, progress)
            chaos.checks = await _verify(chaos, progress)
            chaos.checks.append(await orders.paid_check(chaos.stack.api_url, ready.savers, SETTLE_TIMEOUT_S))
    except (StackError, OSError, httpx.HTTPError, queue.Empty) as error:
        chaos.checks.append(Check("the run completed", "", [f"{type(error).__name__}: {error}"], 1))
    finally:
        if watching is not None:
            watching.cancel()
        if load is not None:
            load.kill()
        await asyncio.to_thread(chaos.stack.stop)
    kept = keep_home or not chaos.held
    if not kept:
        shutil.rmtree(home, ignore_errors=True)
    return result | {"injections": [i.as_dict() for i in chaos.injections], "load": _load_summary(chaos.load),
                     "answer_windows": _windows(chaos.load, chaos.injections, chaos.started),
                     "checks": [c.as_dict() for c in chaos.checks], "held": chaos.held,
                     "home": str(home) if kept else None}


@dataclass(frozen=True)
class Ready:
    """What the load and the checks start from."""

    accounts: list[str]          # funded euro accounts
    closed: str                  # transfers to it are reversed
    dollars: list[str]           # exchanges pay into these
    token: str                   # the load's teller
    admin: str                   # moves business time, set the EUR/USD rate
    savers: list[orders.Saver]   # customers with a daily standing order each


async def _bring_up(stack: Stack) -> Ready:
    """Infra, topics, migrations, workers, projector, API, scheduler; then the accounts, the rate and the standing
    orders the run works with."""
    settings = stack.settings
    await asyncio.to_thread(stack.start_infra)
    await apply_topics(settings.kafka, load_registry(settings.topics_file, settings.topic_replication))
    await migrate(settings.pg, settings.migrations_dir)
    await asyncio.to_thread(stack.start_workers)
    await asyncio.to_thread(stack.start_projectors)
    await asyncio.to_thread(stack.start_api)
    await asyncio.to_thread(stack.start_rail)
    await asyncio.to_thread(stack.start_gateway)
    await asyncio.to_thread(stack.start_scheduler)
    token, accounts = await bench_token(settings, stack.api_url)
    admin = await admin_token(settings, stack.api_url)
    closed, funded = accounts[0], accounts[1:]
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        async def command(path: str, body: dict[str, str]) -> None:
            """Until it is decided: an account opened with a 202 (still pending) is unknown (404) for a moment."""
            deadline = time.monotonic() + SETTLE_TIMEOUT_S
            while True:
                response = await http.post(path, json=body, params={"wait": "true"},
                                           headers={"Idempotency-Key": f"chaos-setup-{path}"})
                if response.status_code == 200 or time.monotonic() > deadline:
                    response.raise_for_status()
                    return
                await asyncio.sleep(1.0)

        await command(f"/v1/accounts/{closed}/close", {"reason": "chaos: transfers to it are reversed"})
        async with httpx.AsyncClient(base_url=settings.rail, timeout=30) as rail:   # payments to it are returned
            (await rail.put(f"/rules/{RETURNED_CREDITOR}", json={"reason_code": "AC01"})).raise_for_status()
        for start in range(0, len(funded), 50):
            await asyncio.gather(*(command(f"/v1/accounts/{a}/deposits", {"amount": FUNDING, "currency": "EUR"})
                                   for a in funded[start:start + 50]))
        dollars = []
        for n in range(DOLLAR_ACCOUNTS):
            opened = await http.post("/v1/accounts", params={"wait": "true"}, json={
                "customer_id": f"bench-api-{n}", "currency": "USD"}, headers={"Idempotency-Key": f"chaos-usd-{n}"})
            opened.raise_for_status()
            dollars.append(str(opened.json()["account_id"]))
        savers = await orders.set_up(stack.api_url, settings.pg, http, admin)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60,
                                 headers={"Authorization": f"Bearer {admin}"}) as http:
        (await http.put("/v1/admin/fx/rates", json={"rates": [
            {"base": "EUR", "quote": "USD", "mid": "1.0850", "spread_basis_points": 50}]})).raise_for_status()
    return Ready(funded, closed, dollars, token, admin, savers)


async def _schedule(chaos: Run, injector: Injector, faults: tuple[str, ...], duration: float, gap: float,
                    load: LoadProcess, progress: Progress) -> None:
    """A quiet start, then faults in turn, `gap` seconds apart, until `duration` has passed and each fault
    asked for has been injected at least once."""
    phase = ["load only"]
    task = progress.add_task(phase[0], total=max(duration, 1.0))
    ticker = asyncio.create_task(_tick(injector.started, load, progress, task, phase))
    try:
        await asyncio.sleep(gap)
        n = 0
        while n < len(faults) or time.monotonic() - injector.started < duration:
            fault = faults[n % len(faults)]
            phase[0] = f"fault {n + 1}: {fault}"
            chaos.watchdog.paused = True   # the process it kills is not dying unasked
            try:
                chaos.injections.append(await injector.inject(fault))
            finally:
                chaos.watchdog.paused = False
            n += 1
            phase[0] = f"after fault {n}: {fault}"
            await asyncio.sleep(gap)
    finally:
        ticker.cancel()
        progress.remove_task(task)


async def _tick(started: float, load: LoadProcess, progress: Progress, task: TaskID, phase: list[str]) -> None:
    while True:
        progress.update(task, completed=time.monotonic() - started, description=f"{phase[0]} | {_figures(load.poll())}")
        await asyncio.sleep(TICK_S)


def _figures(figures: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in figures.items() if isinstance(v, int))


class Watchdog:
    """Outside injections, a process that died though nobody killed it is recorded and restarted."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.paused = False
        self.unasked: list[str] = []

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if self.paused:
                continue
            for name, code in self.stack.dead().items():
                problem = f"{name} exited on its own (code {code})"
                try:
                    await asyncio.to_thread(self.stack.start, self.stack.children[name].spec)
                    self.unasked.append(f"{problem}; restarted")
                except StackError as error:
                    self.unasked.append(f"{problem}; could not restart: {str(error).splitlines()[0]}")
                    self.stack.forget(name)


async def _drain(load: LoadProcess, progress: Progress) -> dict[str, Any]:
    """Stop sending and wait for every outstanding command to be answered (or given up)."""
    load.stop()
    task = progress.add_task("load stopped: waiting for outstanding commands", total=None)
    deadline = time.monotonic() + GIVE_UP_S + 60
    while load.result is None and time.monotonic() < deadline:
        figures = await asyncio.to_thread(load.poll, TICK_S)
        progress.update(task, description=f"waiting for outstanding commands | {_figures(figures)}")
    progress.remove_task(task)
    if load.result is None:
        raise OSError("the load process did not report its result")
    return load.result


async def _verify(chaos: Run, progress: Progress) -> list[Check]:
    settings = chaos.stack.settings
    answers: dict[str, int] = chaos.load["answers"]
    task = progress.add_task("settling: sagas and outstanding commands", total=None)
    # the embedded broker restarted under load may append a retried batch twice (its defect 7)
    copies_allowed = settings.kafka_bootstrap is None and any(i.fault == "broker" for i in chaos.injections)
    audit = await _settled(settings.kafka, set(answers), progress, task, copies_allowed)
    checks = audit.settled_checks() + answered_checks(audit.events, answers)
    gave_up = chaos.load["gave_up_ids"]
    chaos.load["gave_up_on_log"] = len(set(gave_up) & audit.outcome_command_ids())
    progress.update(task, description="read models: catching up, then a fresh rebuild of each")
    checks += await _read_models(settings)
    progress.remove_task(task)
    unasked = Check(UNASKED, f"{len(chaos.stack.children)} processes watched between faults")
    for problem in chaos.watchdog.unasked:
        unasked.fail(problem)
    back = Check(CAME_BACK, f"{len(chaos.injections)} faults injected")
    for injection in chaos.injections:
        if not injection.came_back:
            back.fail(f"{injection.target} after fault {injection.fault}: {injection.detail}")
    return [*checks, unasked, back]


async def _settled(bootstrap: str, answered: set[str], progress: Progress, task: TaskID,
                   identical_copies_allowed: bool) -> LedgerAudit:
    """The audit once nothing is in flight and every answered command has events. A loaded machine may take
    minutes to work off the backlog the faults left, so wait as long as the log keeps growing; give up (the
    audit's in-flight transfers and missing commands are then the findings) after SETTLE_TIMEOUT_S without."""
    events, grew_at = -1, time.monotonic()
    while True:
        audit = await settled_audit(bootstrap, answered, timeout=0, identical_copies_allowed=identical_copies_allowed)
        missing = len(answered - audit.outcome_command_ids())
        if (audit.quiet and not missing) or time.monotonic() - grew_at > SETTLE_TIMEOUT_S:
            return audit
        if len(audit.events) > events:
            events, grew_at = len(audit.events), time.monotonic()
        progress.update(task, description=f"settling: {len(audit.events):,} events, {len(audit.in_flight):,} "
                                          f"transfers in flight, {len(audit.awaiting_completion):,} awaiting "
                                          f"completion, {missing:,} answered commands not yet on the log")
        await asyncio.sleep(2.0)


async def _read_models(settings: Settings) -> list[Check]:
    """Each live model, once caught up with the log, against a rebuild from offset 0 (not swapped in)."""
    try:
        # Generous: on a loaded machine the projections may have minutes of backlog; caught up, it returns at once.
        await wait_caught_up(settings.kafka, settings.pg, settings.redis, settings.mongo, timeout=4 * SETTLE_TIMEOUT_S)
    except AssertionError as error:
        return [Check("read models caught up with the log", "", [str(error)], 1)]
    checks = []
    for name in PROJECTIONS:
        live = await live_dump(name, settings)
        _report, rebuilt = await rebuilt_dump(name, settings, settings.kafka)
        checks.append(compare_models(name, live, rebuilt))
    return checks


def _load_summary(load: dict[str, Any]) -> dict[str, Any]:
    """The client's side, without the per-command lists."""
    if not load:
        return {}
    by_kind = Counter(load["kinds"].values())
    return {"sent": load["sent"], "answered": len(load["answers"]),
            "by_status": {str(k): v for k, v in sorted(Counter(load["answers"].values()).items())},
            "by_kind": dict(sorted(by_kind.items())), "answered_after_retry": len(load["retried"]),
            "retries": load["retries"], "refused": {str(k): v for k, v in load["refused"].items()},
            "gave_up": len(load["gave_up_ids"]), "gave_up_on_log": load.get("gave_up_on_log", 0),
            "answer_s": _spread([seconds for _due, seconds in load["answer_times"]])}


def _windows(load: dict[str, Any], injections: list[Injection], started: float) -> list[dict[str, Any]]:
    """How long commands waited for their answer, by when they were due: before the first fault, then from
    each fault to the next (what each fault cost the client)."""
    if not load:
        return []
    bounds = [0.0, *(i.at_s for i in injections), float("inf")]
    names = ["load only", *(f"fault {n}: {i.fault}" for n, i in enumerate(injections, 1))]
    windows = []
    for name, low, high in zip(names, bounds, bounds[1:], strict=False):
        seconds = [s for due, s in load["answer_times"] if low <= due - started < high]
        windows.append({"window": name, "from_s": low, "commands": len(seconds)} | _spread(seconds))
    return windows


def _spread(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(seconds)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 99
    return {"p50": round(cuts[49], 3), "p99": round(cuts[98], 3), "max": round(ordered[-1], 3)}


# ---------------------------------------------------------------- output

def render(result: dict[str, Any], out: Console) -> None:
    windows = result["answer_windows"]
    injected = Table(title="injected (answer times: commands due from this fault to the next, due → final answer)")
    for column in ("#", "at", "fault", "target", "how", "back after", "answers", "p50", "max", "detail"):
        injected.add_column(column, justify="left" if column in {"fault", "target", "how", "detail"} else "right")
    if windows:
        first = windows[0]
        injected.add_row("", "0.0s", "(none: load only)", "", "", "", f"{first['commands']:,}", f"{first['p50']:.2f}s",
                         f"{first['max']:.2f}s", "")
    for n, i in enumerate(result["injections"], 1):
        window = windows[n] if n < len(windows) else {"commands": 0, "p50": 0.0, "max": 0.0}
        injected.add_row(str(n), f"{i['at_s']:.1f}s", i["fault"], i["target"], i["how"], f"{i['back_after_s']:.1f}s",
                         f"{window['commands']:,}", f"{window['p50']:.2f}s", f"{window['max']:.2f}s", i["detail"])
    out.print(injected)
    load = result["load"]
    if load:
        out.print(f"load: {load['sent']:,} commands sent at {result['settings']['rate_per_s']:g}/s "
                  f"({', '.join(f'{k} {v:,}' for k, v in load['by_kind'].items())}); answered {load['answered']:,} "
                  f"(HTTP {', '.join(f'{k}: {v:,}' for k, v in load['by_status'].items())}); "
                  f"{load['answered_after_retry']:,} answered after a retry ({load['retries']:,} retries); "
                  f"refused {sum(load['refused'].values()):,}; gave up {load['gave_up']:,} "
                  f"({load['gave_up_on_log']:,} of them on the log anyway); answer time p50 {load['answer_s']['p50']}s, "
                  f"p99 {load['answer_s']['p99']}s, max {load['answer_s']['max']}s")
    held = Table(title="what held")
    for column in ("invariant", "result", "figures", "first problems"):
        held.add_column(column)
    for check in result["checks"]:
        verdict = "[green]PASS[/]" if check["held"] else f"[red]FAIL[/] ({check['broken']:,})"
        held.add_row(check["name"], verdict, check["figures"], "\n".join(check["problems"][:3]))
    out.print(held)
    if result["home"]:
        out.print(f"stack home kept (data and logs/): {result['home']}")


def chaos(
    duration: Annotated[float, typer.Option(help="Seconds of faults under load (each fault asked for is "
                                                 "injected at least once, however short).")] = 300.0,
    rate: Annotated[float, typer.Option(help="Commands per second the load offers (open loop).")] = 20.0,
    gap: Annotated[float, typer.Option(help="Seconds of load between faults (and before the first).")] = 10.0,
    faults: Annotated[str, typer.Option(help=f"Faults in turn, comma-separated, among {', '.join(FAULTS)}.")]
        = ",".join(FAULTS),
    seed: Annotated[int, typer.Option(help="Seed of the load's choices.")] = 7,
    keep_home: Annotated[bool, typer.Option(help="Keep the stack's data and logs (kept anyway on a failure).")]
        = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Kill -9 workers, the projector and the API, restart the broker, pause a worker, all under load; then
    check that the books balance, nothing was posted twice or lost, and the read models equal a rebuild."""
    chosen = tuple(f.strip() for f in faults.split(",") if f.strip())
    unknown = set(chosen) - set(FAULTS)
    if unknown or not chosen:
        raise typer.BadParameter(f"unknown fault(s) {', '.join(sorted(unknown))}; choose among {', '.join(FAULTS)}")
    result = asyncio.run(run(duration, rate, gap, chosen, seed, keep_home))
    render(result, console)
    if as_json:
        print(json.dumps(result, indent=2))
    if not result["held"]:
        raise typer.Exit(1)
