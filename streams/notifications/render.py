"""Notifications rendered from the Jinja2 templates in templates/: one file per type, one block per channel."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).parent / "templates"
BLOCKS = ("title", "in_app", "email", "sms")


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str        # the in-app title and the email subject
    body: str         # for the channel asked for


@lru_cache(maxsize=1)
def environment() -> Environment:
    # Text, not HTML: nothing is escaped (emails are text/plain; the web app escapes what it shows).
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=False,
                       keep_trailing_newline=False)


def render(kind: str, channel: str, values: dict[str, Any]) -> Rendered:
    """The title and the channel's text of a notification type (a missing value is an error, not a blank)."""
    template = environment().get_template(f"{kind}.j2")
    context = template.new_context(dict(values))
    title = "".join(template.blocks["title"](context)).strip()
    body = "".join(template.blocks[channel](context)).strip()
    return Rendered(title, body)


def template_kinds() -> set[str]:
    return {path.stem for path in TEMPLATES.glob("*.j2") if not path.stem.startswith("_")}
