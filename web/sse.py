"""Server-Sent Events as the pages' live parts receive them (htmx's SSE extension swaps each event's HTML)."""

from __future__ import annotations


def sse(event: str, html: str, event_id: str | None = None) -> str:
    """One event: its name, its id (what the browser resends as Last-Event-ID), its HTML one `data:` line per line."""
    lines = "".join(f"data: {line}\n" for line in html.strip().splitlines() or [""])
    return f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "") + f"{lines}\n"
