"""`bank books trial-balance [--currency] [--as-of]`: the bank's books as they are or were, folded from
bank.ledger.events with core/books.py (the legs every money-moving event implies). The same answer as
GET /v1/admin/books/trial-balance, read straight from the log."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.ledger_history import read_ledger_until
from core.books import Books, TrialBalance, books_as_of
from core.money import CURRENCY_DIGITS, format_amount
from core.pointintime import Cutoff, CutoffError, LoggedEvent, describe, parse_cutoff, whole_log_cutoff
from core.settings import get_settings
from core.topics import LEDGER_EVENTS

app = typer.Typer(help="The bank's double-entry books, derived from the ledger's events.", no_args_is_help=True)


@app.command("trial-balance")
def trial_balance(
    currency: Annotated[str | None, typer.Option(help="An ISO-4217 code; default: every currency with entries.")]
    = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="An RFC 3339 moment (2026-12-01T10:00:00Z), a "
                                              "duration ago (1h, 2d) or a log position (0:12,3:40). Default: now.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the trial balances as JSON.")] = False,
) -> None:
    """Every ledger account's debits, credits and balance per currency; the total must be zero. Exits 1 when
    the books do not balance or an account breaks its constraint."""
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    cutoff = _cutoff(err, currency, as_of)
    log = _read(err, cutoff, quiet=as_json)
    cutoff = whole_log_cutoff(log, cutoff)   # the cut the answer is of, every partition named
    books = books_as_of(log, cutoff)
    trials = [books.trial_balance(of) for of in ([currency] if currency else books.currencies)]
    if as_json:
        print(json.dumps({"as_of": describe(cutoff), "events": books.events,
                          "currencies": [_as_dict(trial) for trial in trials]}, indent=2))
    else:
        _render(Console(soft_wrap=True, highlight=False), books, cutoff, trials)
    if any(trial.total or trial.violations for trial in trials):
        raise typer.Exit(1)


def _cutoff(err: Console, currency: str | None, as_of: str | None) -> Cutoff:
    if currency is not None and currency not in CURRENCY_DIGITS:
        err.print(f"[red]✗[/] --currency: {escape(currency)!r} is not a supported ISO-4217 code")
        raise typer.Exit(2)
    now = datetime.now(UTC)
    try:
        return parse_cutoff(as_of, now) if as_of is not None else now
    except (CutoffError, ValueError) as error:
        err.print(f"[red]✗[/] --as-of: {escape(str(error))}")
        raise typer.Exit(2) from None


def _read(err: Console, cutoff: Cutoff, quiet: bool) -> list[LoggedEvent]:
    settings = get_settings()
    with Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=quiet) as bar:
        task = bar.add_task(f"reading {LEDGER_EVENTS}", total=None)
        try:
            return asyncio.run(read_ledger_until(settings.kafka, cutoff,
                                                 lambda done, total: bar.update(task, completed=done, total=total)))
        except (KafkaError, RuntimeError) as error:
            err.print(f"[red]✗[/] Kafka at {settings.kafka}: {type(error).__name__}: {escape(str(error))}")
            raise typer.Exit(1) from None


def _as_dict(trial: TrialBalance) -> dict[str, Any]:
    def money(minor: int) -> str:
        return format_amount(minor, trial.currency)

    return {"currency": trial.currency, "total_debits": money(trial.debits), "total_credits": money(trial.credits),
            "total": money(trial.total), "balanced": trial.total == 0,
            "accounts": [{"ledger_account_id": row.ledger_account_id, "type": row.kind.type,
                          "normal_side": row.kind.normal_side, "debits": money(row.debits),
                          "credits": money(row.credits), "balance": money(row.balance)} for row in trial.rows],
            "constraints_broken": [{"ledger_account_id": v.ledger_account_id, "rule": v.rule,
                                    "normal_balance": money(v.balance)} for v in trial.violations]}


def _render(out: Console, books: Books, cutoff: Cutoff, trials: list[TrialBalance]) -> None:
    out.print(f"[bold]the books as of {describe(cutoff)}[/]: {books.events:,} events folded")
    for trial in trials:
        table = Table(title=f"trial balance, {trial.currency}")
        for column in ("ledger account", "type", "normal", "debits", "credits", "balance"):
            table.add_column(column, justify="right" if column in {"debits", "credits", "balance"} else "left")
        for row in trial.rows:
            table.add_row(row.ledger_account_id, row.kind.type, row.kind.normal_side,
                          *(format_amount(m, trial.currency) for m in (row.debits, row.credits)),
                          _balance(row.balance, trial.currency))
        table.add_section()
        total = format_amount(trial.total, trial.currency)
        table.add_row("total", "", "", format_amount(trial.debits, trial.currency),
                      format_amount(trial.credits, trial.currency),
                      "[green]balanced[/]" if trial.total == 0 else f"[red]off by {total}[/]")
        out.print(table)
        for violation in trial.violations:
            out.print(f"[red]✗[/] {escape(violation.describe())}")


def _balance(signed: int, currency: str) -> str:
    """As a trial balance shows it: the amount and the side it lies on (Dr, Cr)."""
    side = " Dr" if signed > 0 else " Cr" if signed < 0 else ""
    return f"{format_amount(abs(signed), currency)}{side}"
