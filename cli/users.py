"""`bank users create-admin`: the first staff account, created straight in PostgreSQL (then everything else goes
through the API: the admin logs in, enrols MFA and creates the other staff with POST /v1/admin/users)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import asyncpg
import typer
from rich.console import Console

from api.audit import AuditLog
from api.identity import EmailTaken, UserStore
from api.security import hash_password
from infra.producer import create_producer
from core.identity import password_problems
from core.settings import get_settings

app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
console = Console()
PASSWORD_VARIABLE = "BANK_ADMIN_PASSWORD"
AUDIT_TIMEOUT_S = 15.0


def _password(email: str, name: str) -> str:
    """From the terminal (hidden, twice), or from BANK_ADMIN_PASSWORD when there is no terminal."""
    if not sys.stdin.isatty():
        password = os.environ.get(PASSWORD_VARIABLE)
        if not password:
            console.print(f"[red]no terminal to ask for the password: set {PASSWORD_VARIABLE}[/]")
            raise typer.Exit(2)
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if problems := password_problems(password, email, name):
        console.print("[red]password refused:[/] " + "; ".join(problems))
        raise typer.Exit(2)
    return password


async def _create(email: str, name: str, password: str) -> str:
    settings = get_settings()
    pool = await asyncpg.create_pool(settings.pg, min_size=1, max_size=2)
    try:
        user = await UserStore(pool).create(email=email, name=name, password_hash=await hash_password(password),
                                            role="admin")
    finally:
        await pool.close()
    await _record(settings.kafka, user.user_id)
    return user.user_id


async def _record(bootstrap: str, user_id: str) -> None:
    """On the audit trail like any user creation; a broker that is down does not stop the bootstrap."""
    producer = create_producer(bootstrap)
    audit = AuditLog(producer)
    try:
        await asyncio.wait_for(producer.start(), AUDIT_TIMEOUT_S)
        await asyncio.wait_for(audit.record("user_created", subject_user_id=user_id,
                                            details={"role": "admin", "via": "bank users create-admin"}),
                               AUDIT_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - the account exists; say the record is missing
        console.print(f"[yellow]warning: not recorded on bank.audit ({type(error).__name__}: {error})[/]")
    finally:
        await producer.stop()


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's email (their login).")],
    name: Annotated[str, typer.Option(help="The admin's name.")] = "Administrator",
) -> None:
    """Create an admin account. The password is asked for (or read from BANK_ADMIN_PASSWORD without a terminal).
    At first login the admin must enrol two-factor authentication (POST /v1/auth/mfa/setup, /verify)."""
    email, name = email.strip(), name.strip()
    password = _password(email, name)
    try:
        user_id = asyncio.run(_create(email, name, password))
    except EmailTaken:
        console.print(f"[red]an account with the email {email} exists already[/]")
        raise typer.Exit(1) from None
    console.print(f"[green]admin {email} created[/] (user id {user_id}). Log in with POST /v1/auth/token, then "
                  "enrol MFA: POST /v1/auth/mfa/setup and /v1/auth/mfa/verify.")
