"""`bank mail` and `bank sms`: what the dev SMTP server and the SMS gateway simulator received (the simulators of
`bank up`, simulators/smtp.py and simulators/sms.py), newest last."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from core.settings import get_settings

console = Console(soft_wrap=True, highlight=False)

To = Annotated[str | None, typer.Option("--to", help="Only messages to this address or number.")]
Limit = Annotated[int, typer.Option("--limit", help="The last N messages.")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object a line.")]


def _fetch(url: str, to: str | None) -> list[dict[str, Any]]:
    try:
        response = httpx.get(url, params={"to": to} if to else None, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as error:
        console.print(f"[red]cannot read {url}: {error}[/] (is `bank up` running?)")
        raise typer.Exit(1) from None
    return list(response.json()["messages"])


def mail(to: To = None, limit: Limit = 20, as_json: AsJson = False) -> None:
    """The dev mailbox: every email the platform sent through the dev SMTP server (also at its mailbox page)."""
    messages = _fetch(f"{get_settings().mailbox_url}/messages", to)[-limit:]
    for message in messages:
        if as_json:
            print(json.dumps(message))
            continue
        console.print(f"[bold]{escape(message['received_at'])}[/] to {escape(', '.join(message['to']))}: "
                      f"[bold]{escape(message['subject'])}[/]")
        console.print(escape(message["body"].strip()), "\n")
    if not as_json:
        console.print(f"{len(messages)} message(s); mailbox: {get_settings().mailbox_url}/")


def sms(to: To = None, limit: Limit = 20, as_json: AsJson = False) -> None:
    """The SMS gateway simulator's log: every SMS the platform sent, with its delivery status."""
    messages = _fetch(f"{get_settings().sms}/v1/messages", to)[-limit:]
    for message in messages:
        if as_json:
            print(json.dumps(message))
            continue
        console.print(f"[bold]{escape(message['accepted_at'])}[/] to {escape(message['to'])} "
                      f"({escape(message['status'])}): {escape(message['body'])}")
    if not as_json:
        console.print(f"{len(messages)} message(s); gateway: {get_settings().sms}/")
