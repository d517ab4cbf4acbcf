"""The admin panel for staff, mounted at /admin/ by web/app.py (`router`, included with prefix "/admin").

Its routes take `StaffApi` (web/deps.py): signed in, staff role; a customer gets the 404 page. Templates extend
"base.html" from web/templates/admin/. The CSRF check and the security headers apply to it as to every page.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
