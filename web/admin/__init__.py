"""The admin panel for staff, mounted at /admin/ by web/app.py (`router`, included with prefix "/admin").

Its routes take `StaffApi` (web/deps.py): signed in, staff role; a customer gets the 404 page. Templates extend
"admin/layout.html" (itself "base.html") from web/templates/admin/. The CSRF check and the security headers apply
to it as to every page. Each part shows what the API lets the signed-in role read or do, and no more: the
navigation follows the API's policy table (web/admin/common.py), and the API's own 403 is the last word.

- overview.py: the front page, system health, read-model freshness, maintenance mode, business time
- risk.py: the fraud and AML review queue, a case's evidence, approve or reject
- feed.py: the live feed of postings (SSE)
- customers.py: customer 360, onboarding a customer at the counter, erasing one's personal data
- people.py: users (search, create staff, roles, activate/deactivate, password and MFA resets, sessions)
- audit.py: the audit trail, searched and exported as CSV
- reports.py: compliance reports (CTR, SAR candidates) and sign-in patterns
- money.py: the trial balance, a ledger account's entries, FX rates
- billers.py: the billers directory customers pay bills to
- alerts.py: staff alerts (their own notifications, live)
- kyc.py: identity verification: the queue, a case with its documents, verify, reject, ask for more
- loans.py: loan applications (the queue, the assessment, decisions), products and rates, the portfolio
- savings.py: savings products and their rates (beside the loan products; its router before loans')
"""

from __future__ import annotations

from fastapi import APIRouter

from web.admin import (alerts, audit, billers, customers, feed, kyc, loans, money, overview, people, reports, risk,
                       savings)

router = APIRouter()
for part in (overview, risk, feed, customers, people, audit, reports, money, billers, kyc, savings, loans, alerts):
    router.include_router(part.router)
