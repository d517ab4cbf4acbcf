"""`bank projections rebuild|status|retry`: operate the read models."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.readmodel import PROJECTIONS, format_positions
from core.settings import get_settings
from streams.projections import create_store
from streams.projections.admin import StatusReport, rebuild, retry_parked, status

app = typer.Typer(help="Read models (postgres, redis, mongo) derived from the event log.", no_args_is_help=True)
console = Console()

Name = Annotated[str, typer.Argument(help=f"{', '.join(PROJECTIONS)} or all")]


def _names(name: str) -> list[str]:
    if name == "all":
        return list(PROJECTIONS)
    if name not in PROJECTIONS:
        console.print(f"[red]unknown projection {name!r}[/]; choose from {', '.join(PROJECTIONS)} or all")
        raise typer.Exit(2)
    return [name]


@app.command("rebuild")
def rebuild_command(name: Name, swap: Annotated[bool, typer.Option(help="Swap the rebuilt model in.")] = True) -> None:
    """Replay the event log from offset 0 into a fresh copy, then swap it in atomically.

    The live projection keeps serving and writing meanwhile; after the swap it continues on the new copy."""
    settings = get_settings()
    for projection in _names(name):
        with Progress(TextColumn(f"[bold]{projection}[/]"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]} events/s"), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(projection, total=None, rate="-")

            def progress(done: int, total: int, task: int = task, bar: Progress = bar) -> None:
                elapsed = bar.tasks[task].elapsed or 0.0
                rate = f"{done / elapsed:,.0f}" if elapsed > 0 else "-"
                bar.update(task, completed=done, total=total, rate=rate)

            report = asyncio.run(rebuild(create_store(projection, settings), settings.kafka, progress, swap))
        verb = "swapped in" if swap else "left unswapped"
        console.print(f"[green]✓[/] {projection}: {report.events:,} events in {report.seconds:.1f}s "
                      f"({report.events_per_second:,.0f} events/s); {verb}: {report.generation}")


@app.command("status")
def status_command(name: Annotated[str, typer.Argument(help="projection or all")] = "all",
                   as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Each projection's position, lag per partition, parked events and last error."""
    settings = get_settings()
    reports = [asyncio.run(status(create_store(p, settings), settings.kafka)) for p in _names(name)]
    if as_json:
        print(json.dumps([_as_json(r) for r in reports], indent=2))
        return
    table = Table(title="projections")
    for column in ("projection", "model", "position", "lag (events)", "parked", "last error"):
        table.add_column(column)
    for report in reports:
        s = report.status
        lag = report.lag
        lag_text = f"{sum(lag.values())} total\n" + " ".join(f"p{p}:{n}" for p, n in lag.items())
        error = f"{s.last_error}\n(at {s.last_error_at:%Y-%m-%d %H:%M:%S})" if s.last_error and s.last_error_at else "-"
        parked = f"[red]{s.parked}[/]" if s.parked else "0"
        table.add_row(s.projection, s.generation, format_positions(s.offsets) or "-", lag_text, parked, error)
    console.print(table)


def _as_json(report: StatusReport) -> dict[str, Any]:
    s = report.status
    return {"projection": s.projection, "model": s.generation, "position": {str(p): o for p, o in s.offsets.items()},
            "lag": {str(p): n for p, n in report.lag.items()}, "lag_total": sum(report.lag.values()),
            "parked": s.parked, "last_error": s.last_error,
            "last_error_at": s.last_error_at.isoformat() if s.last_error_at else None}


@app.command("retry")
def retry_command(name: Annotated[str, typer.Argument(help="projection or all")] = "all") -> None:
    """Re-apply parked events (e.g. after deploying a version that can read them)."""
    settings = get_settings()
    failed = 0
    for projection in _names(name):
        report = asyncio.run(retry_parked(create_store(projection, settings)))
        failed += len(report.still_parked)
        console.print(f"{projection}: {len(report.applied)} re-applied, {len(report.still_parked)} still parked")
        for parked in report.still_parked:
            console.print(f"  [red]✗[/] {parked.partition}:{parked.offset} {parked.schema_name or '?'}: {parked.reason}")
    if failed:
        raise typer.Exit(1)
