"""Identity verification (KYC) in a browser: the customer sends a document; a wrong file is refused next to the
field; compliance sees the case pending."""

from __future__ import annotations

import base64
import zlib
from typing import Any

from playwright.sync_api import expect

from tests.browser.test_admin import staff_sign_in
from tests.support import Bank, create_staff
from tests.support.browser import check_page, register, run, sign_in


def _png() -> bytes:
    """A real 1×1 PNG (the API checks a file's first bytes against its type)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    header = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff"))
            + chunk(b"IEND", b""))


async def _case(api_url: str, customer_id: str) -> dict[str, Any]:
    compliance = Bank(api_url, role="analyst")
    try:
        response = await compliance.get(f"/v1/admin/kyc/{customer_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())
    finally:
        await compliance.close()


def test_send_an_identity_document_and_see_the_check_pending(page: Any, web_url: str, api_url: str) -> None:
    identity = register(api_url, "Kim Verify")
    sign_in(page, web_url, identity)
    page.goto(f"{web_url}/app/settings")
    page.get_by_role("link", name="Identity verification").click()
    expect(page.get_by_role("heading", name="Not verified yet")).to_be_visible()
    expect(page.get_by_text("None yet.")).to_be_visible()
    check_page(page, "verification")

    # a text file named like a photo: refused next to the field, nothing stored
    page.get_by_label("File").set_input_files(files=[{"name": "passport.png", "mimeType": "image/png",
                                                      "buffer": b"not a picture at all"}])
    page.get_by_role("button", name="Send document").click()
    expect(page.locator("#document-error")).to_be_visible()
    expect(page.get_by_label("File")).to_have_attribute("aria-invalid", "true")
    check_page(page, "verification-errors")

    page.get_by_label("What it is").select_option("identity_document")
    page.get_by_label("File").set_input_files(files=[{"name": "passport.png", "mimeType": "image/png",
                                                      "buffer": _png()}])
    page.get_by_role("button", name="Send document").click()
    expect(page.get_by_text("your identity document is sent")).to_be_visible()
    expect(page.get_by_role("heading", name="We are checking your documents")).to_be_visible()
    expect(page.get_by_role("cell", name="Identity document (passport or ID card)")).to_be_visible()

    case = run(_case(api_url, identity.customer_id))
    assert case["status"] == "pending"
    assert [(d["kind"], d["content_type"], d["size_bytes"]) for d in case["documents"]] == [
        ("identity_document", "image/png", len(_png()))]


async def _upload(api_url: str, identity: Any) -> None:
    customer = Bank(api_url, identity=identity)
    try:
        response = await customer.http.post("/v1/me/kyc/documents", json={
            "kind": "proof_of_address", "content_type": "image/png",
            "content_base64": base64.b64encode(_png()).decode()})
        assert response.status_code == 201, response.text
    finally:
        await customer.close()


def test_compliance_reviews_the_case_in_the_admin_panel(page: Any, web_url: str, api_url: str, pg_dsn: str) -> None:
    identity = register(api_url, "Lee Reviewed")
    run(_upload(api_url, identity))
    analyst = run(create_staff(pg_dsn, tag="-kyc", roles=("analyst",)))["analyst"]
    staff_sign_in(page, web_url, analyst)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="KYC").click()
    page.get_by_role("link", name=identity.customer_id).click()
    expect(page.get_by_role("link", name="Proof of address")).to_be_visible()
    check_page(page, "admin-kyc-case")
    page.get_by_role("button", name="Reject").click()                 # a rejection needs its reason
    expect(page.locator("#reason-error")).to_be_visible()
    check_page(page, "admin-kyc-case-errors")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("The customer is verified.")).to_be_visible()
    expect(page.locator(".section-head .badge")).to_have_text("Verified")
    assert run(_case(api_url, identity.customer_id))["status"] == "verified"
    page.get_by_role("link", name="← KYC queue").click()
    expect(page.get_by_role("link", name=identity.customer_id)).to_have_count(0)   # no longer pending
    check_page(page, "admin-kyc-queue")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Identity verification (KYC)")).to_be_visible()
    exported = page.request.get(f"{web_url}/admin/reports/kyc.csv")
    assert exported.ok and exported.text().splitlines()[0] == "measure,key,count"
    assert any(line.startswith("status,verified,") for line in exported.text().splitlines())
