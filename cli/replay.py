"""`bank replay --until <time|offsets>`: the whole ledger as it was at a moment or a log position, folded from
bank.ledger.events with core.ledger.apply (core/pointintime.py): every account's balance, the transfers in flight,
the movements held for review, and the totals per currency with whether the books balanced."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.ledger_history import read_ledger_until
from core.books import books_as_of
from core.money import format_amount
from core.pointintime import CutoffError, LedgerAsOf, describe, ledger_as_of, parse_cutoff, report
from core.settings import get_settings
from core.topics import LEDGER_EVENTS


def replay(
    until: Annotated[str, typer.Option(help="An RFC 3339 moment (2026-12-01T10:00:00Z), a duration ago (1h, 2d) "
                                            "or a log position (0:12,3:40: the events before those offsets).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rebuild the whole ledger's state as of a moment or a log position, from the event log."""
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        cutoff = parse_cutoff(until, datetime.now(UTC))
    except (CutoffError, ValueError) as error:
        err.print(f"[red]✗[/] --until: {escape(str(error))}")
        raise typer.Exit(2) from None
    settings = get_settings()
    with Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=as_json) as bar:
        task = bar.add_task(f"reading {LEDGER_EVENTS}", total=None)
        try:
            log = asyncio.run(read_ledger_until(settings.kafka, cutoff,
                                                lambda done, total: bar.update(task, completed=done, total=total)))
        except (KafkaError, RuntimeError) as error:
            err.print(f"[red]✗[/] Kafka at {settings.kafka}: {type(error).__name__}: {escape(str(error))}")
            raise typer.Exit(1) from None
    ledger = ledger_as_of(log, cutoff)
    books = books_as_of(log, cutoff)
    trial_balance = {currency: books.trial_balance(currency).total for currency in books.currencies}
    if as_json:
        print(json.dumps(report(ledger, trial_balance), indent=2))
        return
    _render(Console(soft_wrap=True, highlight=False), ledger, trial_balance)


def _render(out: Console, ledger: LedgerAsOf, trial_balance: dict[str, int]) -> None:
    out.print(f"[bold]the ledger as of {describe(ledger.cutoff)}[/]: {ledger.events:,} events folded "
              f"(log positions {describe(ledger.positions) or '-'})")
    accounts = Table(title="accounts")
    for column in ("account", "customer", "status", "balance", "available", "held", "overdraft", "in flight out"):
        accounts.add_column(column, justify="right" if column in {"balance", "available", "held", "overdraft"} else "left")
    for account_id, state in sorted(ledger.accounts.items()):
        figures = (state.balance, state.available_balance, state.held_debits, state.overdraft_limit)
        accounts.add_row(account_id, state.customer_id, state.status, *(_money(m, state.currency) for m in figures),
                         str(state.transfers_out_in_flight))
    out.print(accounts)
    if ledger.in_flight:
        transfers = Table(title="transfers in flight")
        for column in ("transfer", "from", "to", "amount", "debited at"):
            transfers.add_column(column)
        for transfer in sorted(ledger.in_flight.values(), key=lambda t: t.debited_at):
            transfers.add_row(transfer.transfer_id, transfer.from_account_id, transfer.to_account_id,
                              _money(transfer.amount, transfer.currency),
                              transfer.debited_at.isoformat())
        out.print(transfers)
    if holds := ledger.holds():
        held = Table(title="movements held for review")
        for column in ("account", "case", "command", "amount"):
            held.add_column(column)
        for hold in holds:
            held.add_row(hold["account_id"], hold["case_id"], hold["command_type"],
                         _money(hold["amount"], hold["currency"]))
        out.print(held)
    _render_totals(out, ledger, trial_balance)


def _render_totals(out: Console, ledger: LedgerAsOf, trial_balance: dict[str, int]) -> None:
    totals = Table(title="totals per currency")
    for column in ("currency", "accounts", "balances", "held", "in flight", "deposited", "withdrawn", "books"):
        totals.add_column(column, justify="left" if column in {"currency", "books"} else "right")
    for currency, row in ledger.totals().items():
        balanced = trial_balance.get(currency, 0) == 0   # the double-entry books, see core.pointintime.report
        totals.add_row(currency, str(row["accounts"]),
                       *(format_amount(row[k], currency) for k in ("balance", "held", "in_flight", "deposited",
                                                                   "withdrawn")),
                       "[green]balance[/]" if balanced else "[red]do not balance[/]")
    out.print(totals)


def _money(minor: int, currency: str) -> str:
    return f"{format_amount(minor, currency)} {currency}"
