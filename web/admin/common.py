"""What every admin page shares: who may see which part of the panel (the navigation follows the API's policy
table; the API itself still refuses what a role may not do), and a render that adds the staff navigation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from web.client import Api, ApiError
from web.templating import render

REVIEWERS = frozenset({"analyst", "admin"})
STAFF = frozenset({"teller", "analyst", "admin"})


@dataclass(frozen=True)
class Section:
    path: str
    label: str
    roles: frozenset[str]


SECTIONS = (
    Section("/admin/", "Overview", STAFF),
    Section("/admin/cases", "Review queue", REVIEWERS),
    Section("/admin/alerts", "Alerts", REVIEWERS),
    Section("/admin/feed", "Live feed", STAFF),
    Section("/admin/customers", "Customers", STAFF),
    Section("/admin/users", "Users", REVIEWERS),
    Section("/admin/audit", "Audit", REVIEWERS),
    Section("/admin/kyc", "KYC", REVIEWERS),
    Section("/admin/loans", "Loans", STAFF),
    Section("/admin/reports", "Reports", REVIEWERS),
    Section("/admin/sign-ins", "Sign-ins", REVIEWERS),
    Section("/admin/books", "Books", STAFF),
    Section("/admin/fx", "FX rates", STAFF),
    Section("/admin/billers", "Billers", STAFF),
    Section("/admin/health", "System", STAFF),
)


def role_of(api: Api) -> str:
    return api.session.auth.role if api.session.auth is not None else ""


def sections_for(role: str) -> list[Section]:
    return [section for section in SECTIONS if role in section.roles]


def layout_context(request: Request, api: Api) -> dict[str, Any]:
    """What admin/layout.html needs: the sections this role may open, the current one, the role."""
    role = role_of(api)
    here = request.url.path
    current = max((s for s in SECTIONS if here == s.path or (s.path != "/admin/" and here.startswith(s.path))),
                  key=lambda s: len(s.path), default=None)
    return {"sections": sections_for(role), "current": current, "role": role, "is_admin": role == "admin",
            "is_reviewer": role in REVIEWERS}


def page(request: Request, api: Api, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """An admin page: the template with the sections this role may open and the current one marked."""
    return render(request, f"admin/{template}", status_code, **layout_context(request, api), **context)


async def optional(call: Any) -> Any:
    """A part of a page this role may not see (the API's 403): None instead of an error page."""
    try:
        return await call
    except ApiError as error:
        if error.status in (403, 404):
            return None
        raise
