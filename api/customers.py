"""Customers as people, in PostgreSQL (migrations/0011_kyc.sql): staff-assisted onboarding, identity verification
(KYC cases and their documents), the sanctions screening of a customer's name, forgotten-password tokens, and
erasure. Personal data stays here; the ledger knows a customer only by id."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import asyncpg

from api.identity import _COLUMNS as USER_COLUMNS, EmailTaken, User
from core.identity import normalise_email
from core.kyc import DocumentKind, KycStatus, reset_token_hash
from core.risk.sanctions import SanctionsList, load_sanctions


@lru_cache(maxsize=4)
def sanctions_list(path: Path) -> SanctionsList:
    """The list the risk engine screens counterparties with (rules/sanctions.csv), read once per process."""
    return load_sanctions(path.read_text(encoding="utf-8"), path.name)


def screen(sanctions: SanctionsList, legal_name: str) -> list[dict[str, Any]]:
    """The list's entries matching a person's legal name (normalised, fuzzy: core/risk/sanctions.py). The
    hits name listed entries (public data), never the customer."""
    return [{"uid": m.uid, "listed_name": m.listed_name, "matched_name": m.matched_name, "score": m.score,
             "program": m.program, "country": m.country} for m in sanctions.screen(legal_name)]


@dataclass(frozen=True, slots=True)
class NewCustomer:
    email: str
    name: str
    password_hash: str
    legal_name: str
    date_of_birth: date | None
    address_lines: list[str]
    postcode: str | None
    city: str | None
    country: str | None
    phone: str | None


@dataclass(frozen=True, slots=True)
class KycCase:
    customer_id: str
    status: KycStatus
    reason: str | None
    submitted_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    screening: list[dict[str, Any]]
    screened_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> KycCase:
        screening = row["screening"]
        return cls(customer_id=row["customer_id"], status=row["status"], reason=row["reason"],
                   submitted_at=row["submitted_at"], decided_at=row["decided_at"],
                   decided_by=str(row["decided_by"]) if row["decided_by"] else None,
                   screening=json.loads(screening) if isinstance(screening, str) else list(screening),
                   screened_at=row["screened_at"], updated_at=row["updated_at"])

    @classmethod
    def empty(cls, customer_id: str, now: datetime) -> KycCase:
        return cls(customer_id, "not_started", None, None, None, None, [], None, now)


@dataclass(frozen=True, slots=True)
class Document:
    document_id: str
    customer_id: str
    kind: DocumentKind
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_at: datetime


_CASE = "customer_id, status, reason, submitted_at, decided_at, decided_by, screening, screened_at, updated_at"
_DOCUMENT = "document_id, customer_id, kind, content_type, size_bytes, sha256, uploaded_at"


def _document(row: asyncpg.Record) -> Document:
    return Document(**{**dict(row), "document_id": str(row["document_id"])})


ERASED_REVIEW_REASON = "closed unverified: the customer was erased"


class CustomerStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # ------------------------------------------------------------ customers

    async def exists(self, customer_id: str) -> bool:
        """A customer the bank knows and has not erased: staff open accounts only for one of these."""
        return bool(await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users u WHERE u.customer_id = $1 AND u.role = 'customer' AND NOT EXISTS "
            "(SELECT 1 FROM erasures e WHERE e.customer_id = u.customer_id))", customer_id))

    async def user_of(self, customer_id: str) -> str | None:
        value = await self._pool.fetchval("SELECT user_id FROM users WHERE customer_id = $1", customer_id)
        return str(value) if value else None

    async def onboard(self, customer: NewCustomer, customer_id: str, screening: list[dict[str, Any]]) -> User:
        """The user (a temporary password, changed at first login), the profile and the KYC case, in one
        transaction. Raises EmailTaken."""
        async with self._pool.acquire() as connection, connection.transaction():
            try:
                row = await connection.fetchrow(
                    f"""INSERT INTO users (user_id, email, email_key, name, password_hash, role, customer_id,
                                           must_change_password)
                        VALUES ($1, $2, $3, $4, $5, 'customer', $6, true) RETURNING {USER_COLUMNS}""",
                    uuid.uuid4(), customer.email, normalise_email(customer.email), customer.name,
                    customer.password_hash, customer_id)
            except asyncpg.UniqueViolationError:
                raise EmailTaken(customer.email) from None
            await connection.execute(
                "INSERT INTO profiles (user_id, legal_name, date_of_birth, address_lines, postcode, city, country, "
                "phone) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", row["user_id"], customer.legal_name,
                customer.date_of_birth, customer.address_lines, customer.postcode, customer.city, customer.country,
                customer.phone)
            await connection.execute(
                "INSERT INTO kyc_cases (customer_id, screening, screened_at) VALUES ($1, $2::jsonb, now())",
                customer_id, json.dumps(screening))
        return User.of(row)

    # ------------------------------------------------------------ KYC

    async def case(self, customer_id: str) -> KycCase | None:
        row = await self._pool.fetchrow(f"SELECT {_CASE} FROM kyc_cases WHERE customer_id = $1", customer_id)
        return KycCase.of(row) if row else None

    async def status(self, customer_id: str) -> KycStatus:
        value = await self._pool.fetchval("SELECT status FROM kyc_cases WHERE customer_id = $1", customer_id)
        return value or "not_started"

    async def record_screening(self, customer_id: str, screening: list[dict[str, Any]]) -> None:
        await self._pool.execute(
            "INSERT INTO kyc_cases (customer_id, screening, screened_at) VALUES ($1, $2::jsonb, now()) "
            "ON CONFLICT (customer_id) DO UPDATE SET screening = EXCLUDED.screening, screened_at = now(), "
            "updated_at = now()", customer_id, json.dumps(screening))

    async def add_document(self, customer_id: str, kind: DocumentKind, content_type: str, content: bytes,
                           sha256: str, uploaded_by: str, status_after: KycStatus) -> Document:
        """The document, and the case moved to `status_after` (pending: its review's age counts from now)."""
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                f"INSERT INTO kyc_documents (document_id, customer_id, kind, content_type, size_bytes, sha256, content, "
                f"uploaded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_DOCUMENT}",
                uuid.uuid4(), customer_id, kind, content_type, len(content), sha256, content, uuid.UUID(uploaded_by))
            await connection.execute(
                """INSERT INTO kyc_cases (customer_id, status, submitted_at) VALUES ($1, $2, now())
                   ON CONFLICT (customer_id) DO UPDATE SET status = EXCLUDED.status, updated_at = now(),
                       submitted_at = CASE WHEN kyc_cases.status = 'pending' THEN kyc_cases.submitted_at
                                           WHEN EXCLUDED.status = 'pending' THEN now()
                                           ELSE kyc_cases.submitted_at END""",
                customer_id, status_after)
        return _document(row)

    async def documents(self, customer_id: str) -> list[Document]:
        rows = await self._pool.fetch(f"SELECT {_DOCUMENT} FROM kyc_documents WHERE customer_id = $1 "
                                      "ORDER BY uploaded_at, document_id", customer_id)
        return [_document(r) for r in rows]

    async def document_content(self, customer_id: str, document_id: str) -> tuple[Document, bytes] | None:
        try:
            key = uuid.UUID(document_id)
        except ValueError:
            return None
        row = await self._pool.fetchrow(f"SELECT {_DOCUMENT}, content FROM kyc_documents "
                                        "WHERE customer_id = $1 AND document_id = $2", customer_id, key)
        if row is None:
            return None
        return _document({k: v for k, v in row.items() if k != "content"}), bytes(row["content"])

    async def decide(self, customer_id: str, expected: KycStatus, status: KycStatus, reason: str | None,
                     reviewer: str) -> KycCase | None:
        """Move the case from `expected` (None when another decision got there first)."""
        row = await self._pool.fetchrow(
            f"""UPDATE kyc_cases SET status = $3, reason = $4, decided_at = now(), decided_by = $5, updated_at = now(),
                    submitted_at = CASE WHEN $3 = 'pending' THEN submitted_at ELSE NULL END
                WHERE customer_id = $1 AND status = $2 RETURNING {_CASE}""",
            customer_id, expected, status, reason, uuid.UUID(reviewer))
        return KycCase.of(row) if row else None

    async def queue(self, status: KycStatus | None, flagged_only: bool, limit: int) -> list[KycCase]:
        """Pending reviews oldest first, and customers whose name matched the sanctions list, whatever their status."""
        where, args = [], []
        if status is not None:
            args.append(status)
            where.append(f"status = ${len(args)}")
        if flagged_only:
            where.append("jsonb_array_length(screening) > 0")
        if status is None and not flagged_only:
            where.append("(status = 'pending' OR jsonb_array_length(screening) > 0)")
        args.append(limit)
        rows = await self._pool.fetch(
            f"SELECT {_CASE} FROM kyc_cases WHERE {' AND '.join(where)} "
            f"ORDER BY submitted_at NULLS LAST, created_at, customer_id LIMIT ${len(args)}", *args)
        return [KycCase.of(r) for r in rows]

    async def report(self) -> tuple[dict[str, int], list[datetime], int]:
        """Customers by KYC status (customers without a case are not_started), the submission times of pending
        reviews, and how many customers matched the sanctions list."""
        rows = await self._pool.fetch(
            "SELECT coalesce(k.status, 'not_started') AS status, count(*) AS n FROM users u "
            "LEFT JOIN kyc_cases k ON k.customer_id = u.customer_id WHERE u.role = 'customer' "
            "AND NOT EXISTS (SELECT 1 FROM erasures e WHERE e.customer_id = u.customer_id) GROUP BY 1")
        pending = await self._pool.fetch("SELECT submitted_at FROM kyc_cases WHERE status = 'pending' "
                                         "ORDER BY submitted_at")
        flagged = await self._pool.fetchval("SELECT count(*) FROM kyc_cases WHERE jsonb_array_length(screening) > 0")
        return ({r["status"]: r["n"] for r in rows}, [r["submitted_at"] for r in pending if r["submitted_at"]],
                int(flagged))

    # ------------------------------------------------------------ forgotten passwords

    async def issue_reset(self, user_id: str, token: str, ttl: timedelta, email: str, body: str) -> None:
        """The token (hashed) and its email in the outbox, in one transaction: earlier tokens of the user die."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("DELETE FROM password_resets WHERE user_id = $1", uuid.UUID(user_id))
            await connection.execute("INSERT INTO password_resets (token_hash, user_id, expires_at) "
                                     "VALUES ($1, $2, now() + $3)", reset_token_hash(token), uuid.UUID(user_id), ttl)
            await connection.execute(
                "INSERT INTO outbox (message_id, user_id, channel, recipient, purpose, body) "
                "VALUES ($1, $2, 'email', $3, 'password_reset', $4)", uuid.uuid4(), uuid.UUID(user_id), email, body)

    async def reset_holder(self, token: str) -> str | None:
        """The user a live, unused token was issued to (not consuming it)."""
        value = await self._pool.fetchval("SELECT user_id FROM password_resets WHERE token_hash = $1 "
                                          "AND used_at IS NULL AND expires_at > now()", reset_token_hash(token))
        return str(value) if value else None

    async def use_reset(self, token: str) -> str | None:
        """The user a live, unused token was issued to, consuming it (once, atomically); None otherwise."""
        value = await self._pool.fetchval(
            "UPDATE password_resets SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL "
            "AND expires_at > now() RETURNING user_id", reset_token_hash(token))
        return str(value) if value else None

    # ------------------------------------------------------------ erasure

    async def erase(self, customer_id: str, user_id: str, erased_by: str, tombstone_email: str) -> None:
        """Remove the customer's personal data from PostgreSQL in one transaction, keeping an anonymised users row
        (the id stays taken and names an erased customer) and the erasure's own record."""
        key = uuid.UUID(user_id)
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "UPDATE users SET email = $2, email_key = $2, name = 'erased', password_hash = '!erased', "
                "active = false, mfa_secret = NULL, mfa_enabled = false, totp_last_step = NULL, "
                "recovery_codes = '{}', updated_at = now() WHERE user_id = $1", key, tombstone_email)
            # notify_inbox_seq stays: a counter, and the ids it gave are never reused
            for table in ("profiles", "contact_changes", "outbox", "password_resets", "notifications",
                          "notification_outbox", "notification_preferences", "notify_devices"):
                await connection.execute(f"DELETE FROM {table} WHERE user_id = $1", key)
            await connection.execute("DELETE FROM kyc_documents WHERE customer_id = $1", customer_id)
            # A review still waiting is closed unverified: nobody is left to verify, and the compliance queue
            # and the KYC report must not count an erased customer forever.
            await connection.execute(
                "UPDATE kyc_cases SET status = CASE WHEN status = 'pending' THEN 'rejected' ELSE status END, "
                "reason = CASE WHEN status = 'pending' THEN $2 END, "
                "decided_at = CASE WHEN status = 'pending' THEN now() ELSE decided_at END, "
                "decided_by = CASE WHEN status = 'pending' THEN $3 ELSE decided_by END, "
                "screening = '[]', updated_at = now() WHERE customer_id = $1",
                customer_id, ERASED_REVIEW_REASON, uuid.UUID(erased_by))
            await connection.execute("DELETE FROM payees WHERE customer_id = $1", customer_id)
            await connection.execute("INSERT INTO erasures (customer_id, user_id, erased_by) VALUES ($1, $2, $3)",
                                     customer_id, key, uuid.UUID(erased_by))

    async def erased(self, customer_id: str) -> bool:
        return bool(await self._pool.fetchval("SELECT EXISTS (SELECT 1 FROM erasures WHERE customer_id = $1)",
                                              customer_id))
