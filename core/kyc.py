"""Know your customer: the verification workflow's statuses and moves, the documents it accepts, the tiers that
gate what a customer may do, and the single-use tokens of a forgotten password. Pure: no storage, no I/O.

Statuses: not_started -> pending (documents uploaded, waiting for compliance) -> verified | rejected. A reviewer
may also ask for more: the case goes back to the customer (not_started, with what is asked), and their next
upload makes it pending again. A verified customer is in the `verified` tier (no KYC limits); everyone else is
`unverified`: one account, and at most the unverified receive limit credited to it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

KycStatus = Literal["not_started", "pending", "verified", "rejected"]
KYC_STATUSES: tuple[KycStatus, ...] = ("not_started", "pending", "verified", "rejected")
Decision = Literal["verify", "reject", "request_more"]
DocumentKind = Literal["identity_document", "proof_of_address"]
Tier = Literal["unverified", "verified"]

# What a reviewer's decision does, from the statuses it may be taken in.
_MOVES: dict[Decision, tuple[frozenset[KycStatus], KycStatus]] = {
    "verify": (frozenset({"pending"}), "verified"),
    "reject": (frozenset({"pending", "verified"}), "rejected"),
    "request_more": (frozenset({"pending"}), "not_started"),
}
UNVERIFIED_MAX_ACCOUNTS = 1

# The first bytes of each accepted file type: the declared type must be what the file is.
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
CONTENT_TYPES = tuple(_MAGIC)


class KycError(ValueError):
    """A refused move or document; `reason` is the problem's reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decide(status: KycStatus, decision: Decision) -> KycStatus:
    """The status a reviewer's decision leads to; KycError(`invalid_transition`) when it cannot be taken now."""
    allowed, target = _MOVES[decision]
    if status not in allowed:
        raise KycError("invalid_transition", f"a case that is {status} cannot be given `{decision}` "
                                             f"(only a {' or '.join(sorted(allowed))} one)")
    return target


def after_upload(status: KycStatus) -> KycStatus:
    """A document makes a case pending, unless it is decided already (a verified customer stays verified;
    a rejected one stays rejected: a new review is the bank's decision, not an upload's)."""
    return "pending" if status in ("not_started", "pending") else status


def check_document(content: bytes, content_type: str, max_bytes: int) -> str:
    """The document's SHA-256, once its type and size are acceptable."""
    if content_type not in _MAGIC:
        raise KycError("unsupported_document_type",
                       f"content_type: {content_type!r} is not accepted (one of {', '.join(CONTENT_TYPES)})")
    if not content:
        raise KycError("empty_document", "content: the document is empty")
    if len(content) > max_bytes:
        raise KycError("document_too_large", f"content: {len(content)} bytes, at most {max_bytes}")
    if not content.startswith(_MAGIC[content_type]):
        raise KycError("document_type_mismatch", f"content: the file is not a {content_type} document")
    return hashlib.sha256(content).hexdigest()


def tier(status: KycStatus | None) -> Tier:
    return "verified" if status == "verified" else "unverified"


@dataclass(frozen=True, slots=True)
class TierCheck:
    """What an unverified customer may still do: None when allowed, else the refusal's detail."""

    detail: str | None

    @property
    def allowed(self) -> bool:
        return self.detail is None


def may_open_account(status: KycStatus | None, open_accounts: int) -> TierCheck:
    if tier(status) == "verified" or open_accounts < UNVERIFIED_MAX_ACCOUNTS:
        return TierCheck(None)
    return TierCheck(f"an unverified customer may hold {UNVERIFIED_MAX_ACCOUNTS} account; verify the customer's "
                     f"identity first (KYC)")


def may_receive(status: KycStatus | None, received: int, amount: int, limit: int) -> TierCheck:
    """`received`: what the account has been credited so far; `limit`: the unverified receive limit (minor units)."""
    if tier(status) == "verified" or received + amount <= limit:
        return TierCheck(None)
    return TierCheck("the receiving customer's identity is not verified: their account may receive no more "
                     "until KYC is complete")


# ---------------------------------------------------------------- forgotten passwords


def new_reset_token() -> str:
    return secrets.token_urlsafe(32)


def reset_token_hash(token: str) -> str:
    """Tokens are 256 random bits: a plain hash is enough (no guessing, nothing to salt against)."""
    return hashlib.sha256(token.strip().encode()).hexdigest()
