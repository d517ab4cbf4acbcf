"""The Jinja2 environment every page renders with (customer app and admin panel): autoescaping on, the formatting
filters, and the CSRF token and session in every template's context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from web import formatting
from web.csrf import FIELD as CSRF_FIELD
from web.csrf import HEADER as CSRF_HEADER

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["money"] = formatting.money
templates.env.filters["when"] = formatting.when
templates.env.filters["day"] = lambda value: formatting.when(value, with_time=False)
templates.env.filters["short_id"] = formatting.short_id
templates.env.filters["duration"] = formatting.duration
templates.env.filters["describe"] = formatting.describe
templates.env.tests["negative"] = formatting.is_negative
templates.env.globals["csrf_field"] = CSRF_FIELD
templates.env.globals["csrf_header"] = CSRF_HEADER


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page: the template with the session (its CSRF token, who is signed in, messages to show once)."""
    session = getattr(request.state, "web_session", None)
    context.setdefault("session", session)
    context.setdefault("auth", session.auth if session is not None else None)
    context.setdefault("csrf_token", session.csrf_token if session is not None else "")
    context.setdefault("flashes", session.take_flashes() if session is not None else [])
    context.setdefault("errors", {})
    context.setdefault("form", {})
    return templates.TemplateResponse(request, template, context, status_code=status_code)
