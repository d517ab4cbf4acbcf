"""core/kyc.py: the review's moves, the document checks, the tiers' limits and the reset tokens."""

from __future__ import annotations

import hashlib

import pytest

from core import kyc

PDF = b"%PDF-1.7\n"


@pytest.mark.parametrize(("status", "decision", "after"), [
    ("pending", "verify", "verified"), ("pending", "reject", "rejected"), ("verified", "reject", "rejected"),
    ("pending", "request_more", "not_started")])
def test_a_decision_moves_the_case(status: kyc.KycStatus, decision: kyc.Decision, after: kyc.KycStatus) -> None:
    assert kyc.decide(status, decision) == after


@pytest.mark.parametrize(("status", "decision"), [
    ("not_started", "verify"), ("verified", "verify"), ("rejected", "verify"), ("not_started", "reject"),
    ("rejected", "reject"), ("verified", "request_more"), ("not_started", "request_more")])
def test_a_decision_out_of_turn_is_refused(status: kyc.KycStatus, decision: kyc.Decision) -> None:
    with pytest.raises(kyc.KycError) as refused:
        kyc.decide(status, decision)
    assert refused.value.reason == "invalid_transition"


def test_an_upload_makes_an_open_case_pending_and_leaves_a_decided_one() -> None:
    assert [kyc.after_upload(s) for s in kyc.KYC_STATUSES] == ["pending", "pending", "verified", "rejected"]


@pytest.mark.parametrize(("content", "content_type", "reason"), [
    (PDF, "text/html", "unsupported_document_type"), (b"", "application/pdf", "empty_document"),
    (PDF + b"x" * 100, "application/pdf", "document_too_large"), (PDF, "image/png", "document_type_mismatch"),
    (b"\x89PNG\r\n\x1a\n", "image/jpeg", "document_type_mismatch")])
def test_documents_are_checked(content: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(kyc.KycError) as refused:
        kyc.check_document(content, content_type, 64)
    assert refused.value.reason == reason


def test_an_accepted_document_has_its_digest() -> None:
    assert kyc.check_document(b"\xff\xd8\xff\xe0", "image/jpeg", 64) == hashlib.sha256(b"\xff\xd8\xff\xe0").hexdigest()


def test_an_unverified_customer_has_one_account_and_a_receive_limit() -> None:
    assert kyc.may_open_account("pending", 0).allowed and not kyc.may_open_account("pending", 1).allowed
    assert kyc.may_open_account("verified", 5).allowed
    assert kyc.may_receive(None, 6000, 4000, 10000).allowed                 # exactly the limit
    assert not kyc.may_receive("rejected", 6000, 4001, 10000).allowed
    assert kyc.may_receive("verified", 10**12, 1, 10000).allowed
    assert [kyc.tier(s) for s in (*kyc.KYC_STATUSES, None)] == ["unverified", "unverified", "verified",
                                                                "unverified", "unverified"]


def test_reset_tokens_are_random_and_kept_hashed() -> None:
    first, second = kyc.new_reset_token(), kyc.new_reset_token()
    assert first != second and len(first) >= 43
    assert kyc.reset_token_hash(first) == kyc.reset_token_hash(f" {first} ") != kyc.reset_token_hash(second)
