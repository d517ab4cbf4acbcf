"""`bank cob status`: how far the close of business has accrued interest: savings accounts, read straight from
bank.interest (core/savings.py), and active loans, from bank.loans and the loans' postings on bank.ledger.events
(core/lending.py), on business time (bank.clock): the same answer as GET /v1/admin/cob."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from core.lending import LOAN_POSTING_NAMES, Loan, LoanBook, LoanPostings, accrual_due, loan_of
from core.money import format_amount
from core.savings import SavingsBook, progress
from core.schedules import local_date
from core.settings import get_settings
from core.topics import INTEREST, LEDGER_EVENTS, LOANS
from infra.clock import BusinessTime
from infra.kafka import read_topic
from infra.topics import record_types
from schemas.codec import get_codec

app = typer.Typer(help="The close of business: interest accrued per savings account and per loan, by business date.",
                  no_args_is_help=True)


@dataclass(frozen=True, slots=True)
class Books:
    savings: SavingsBook
    loans: list[Loan]      # active ones
    today: date


async def _fold(topic: str, apply: Callable[[Any], None], names: frozenset[str] | None = None) -> None:
    """Every record of `topic` into `apply` (only the record types `names`, when given: the rest is not decoded);
    records the jobs would not take either are skipped."""
    settings, codec, types = get_settings(), get_codec(), record_types(topic)
    for record in (await read_topic(settings.kafka, topic)).records:
        if names is not None and codec.schema_name(record.value, record.headers) not in names:
            continue
        try:
            apply(codec.decode(record.value, record.headers, types))
        except ValueError:
            continue


async def _read() -> Books:
    settings, codec = get_settings(), get_codec()
    time = BusinessTime(settings.kafka, settings.clock_control, codec)
    await time.start()
    try:
        today = local_date(time.now(), settings.customer_time_zone)
    finally:
        await time.stop()
    savings, book, postings = SavingsBook(), LoanBook(), LoanPostings()
    await asyncio.gather(_fold(INTEREST, savings.apply), _fold(LOANS, book.apply),
                         _fold(LEDGER_EVENTS, postings.apply, LOAN_POSTING_NAMES))
    loans = [loan_of(state, book, postings, today) for state in book.loans.values() if state.loan_id in postings.disbursed]
    return Books(savings, [loan for loan in loans if loan.status == "active"], today)


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False) -> None:
    """Per enrolled savings account and per active loan: the last date accrued and whether it is behind. Exits 1
    when one is behind (the job is catching up, or not running)."""
    err = Console(stderr=True)
    try:
        books = asyncio.run(_read())
    except (KafkaError, OSError) as error:
        err.print(f"[red]cannot read the log: {error}[/red]")
        raise typer.Exit(2) from None
    book, today = books.savings, books.today
    done = progress(book, today)
    loans_behind = [loan for loan in books.loans if accrual_due(loan, done.closing_through) is not None]
    if as_json:
        typer.echo(json.dumps(asdict(done) | {"loans": len(books.loans), "loans_behind": len(loans_behind)},
                              default=str))
    else:
        table = Table(title=f"close of business: business date {today}, closing through {done.closing_through}")
        for column in ("account", "product", "enrolled on", "accrued through", "dates behind"):
            table.add_column(column)
        for account_id, account in sorted(book.accounts.items()):
            behind = max(0, (done.closing_through - account.next_date).days + 1)
            table.add_row(account_id, account.enrolment.product_id, account.enrolment.enrolled_on,
                          account.last.accrual_date if account.last else "-", str(behind))
        Console().print(table)
        Console().print(f"{done.accounts} account(s), {done.accounts_behind} behind, {done.accruals} accrual(s)")
        loans = Table(title="loans' interest accrual")
        for column in ("loan", "account", "accrued through", "interest receivable", "behind"):
            loans.add_column(column)
        for loan in sorted(books.loans, key=lambda loan: loan.state.loan_id):
            currency = loan.state.application.currency
            loans.add_row(loan.state.loan_id, loan.state.application.account_id, str(loan.accrued_through or "-"),
                          f"{format_amount(loan.interest_receivable, currency)} {currency}",
                          "yes" if loan in loans_behind else "no")
        Console().print(loans)
        Console().print(f"{len(books.loans)} active loan(s), {len(loans_behind)} behind")
    if done.accounts_behind or loans_behind:
        raise typer.Exit(1)
