"""`bank catalog`: writes the topic catalogue, docs/topics.md, from topics.yaml and schemas/*.avsc."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.catalog import render_markdown
from schemas.catalog import CATALOG_FILE, current_catalog

console = Console()


def catalog(
    output: Annotated[Path, typer.Option(help="Where to write the markdown.")] = CATALOG_FILE,
    check: Annotated[bool, typer.Option("--check", help="Write nothing; fail if the file is out of date.")] = False,
) -> None:
    """Generate the topic catalogue (every topic, its record types, their fields and an example message)."""
    text = render_markdown(current_catalog())
    current = output.read_text() if output.exists() else None
    if check:
        if current != text:
            console.print(f"[red]✗[/] {output} is out of date: run `bank catalog`")
            raise typer.Exit(1)
        console.print(f"[green]✓[/] {output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    console.print(f"{'unchanged' if current == text else 'wrote'} {output}")
