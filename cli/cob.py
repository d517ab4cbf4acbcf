"""`bank cob status`: how far the close-of-business job has accrued savings interest, read straight from
bank.interest (core/savings.py) and business time (bank.clock): the same answer as GET /v1/admin/cob."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import date
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from core.savings import SavingsBook, progress
from core.schedules import local_date
from core.settings import get_settings
from core.topics import INTEREST
from infra.clock import BusinessTime
from infra.kafka import read_topic
from infra.topics import record_types
from schemas.codec import get_codec

app = typer.Typer(help="The close-of-business job: savings interest accrued per account and business date.",
                  no_args_is_help=True)


async def _read() -> tuple[SavingsBook, date]:
    settings, codec = get_settings(), get_codec()
    time = BusinessTime(settings.kafka, settings.clock_control, codec)
    await time.start()
    try:
        today = local_date(time.now(), settings.customer_time_zone)
    finally:
        await time.stop()
    book, types = SavingsBook(), record_types(INTEREST)
    for record in (await read_topic(settings.kafka, INTEREST)).records:
        try:
            book.apply(codec.decode(record.value, record.headers, types))
        except ValueError:
            continue   # a record the job would not take either
    return book, today


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False) -> None:
    """Per enrolled account: its product, the last date accrued and how many dates it is behind. Exits 1 when an
    account is behind (the job is catching up, or not running)."""
    err = Console(stderr=True)
    try:
        book, today = asyncio.run(_read())
    except (KafkaError, OSError) as error:
        err.print(f"[red]cannot read the log: {error}[/red]")
        raise typer.Exit(2) from None
    done = progress(book, today)
    if as_json:
        typer.echo(json.dumps(asdict(done), default=str))
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
    if done.accounts_behind:
        raise typer.Exit(1)
