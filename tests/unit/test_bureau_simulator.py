"""The credit bureau simulator (simulators/bureau.py) and the platform's adapter to it (infra/credit_bureau.py), without a
server: the simulator's app is called over httpx's ASGI transport, through the same client the adapter uses on the
network. A subject nobody set scores the same on every run, a file set through the sandbox is reported (and kept
across a restart), a wrong key is refused, an outage is a 503 the adapter turns into BureauUnavailable, and every
report request is on the simulator's list. tests/integration/test_credit_bureau.py runs it as the dev stack does."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from cli.devstack import LOCALHOST, free_port
from core.settings import Settings
from infra.credit_bureau import (BureauReport, BureauUnavailable, HttpCreditBureau, UnknownSubject,
                                 credit_bureau_from)
from simulators.bureau import Bureau, create_app, derived_file

pytestmark = pytest.mark.unit

KEY = "bureau-test-key"
BASE = "http://bureau.test"


def _client(bureau: Bureau, key: str | None = KEY) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(bureau)), base_url=BASE, headers=headers)


def _adapter(bureau: Bureau, key: str | None = KEY) -> HttpCreditBureau:
    return HttpCreditBureau(BASE, key, 5.0, transport=httpx.ASGITransport(app=create_app(bureau)))


async def _get(bureau: Bureau, path: str, key: str | None = KEY) -> httpx.Response:
    async with _client(bureau, key) as client:
        return await client.get(path)


async def _put(bureau: Bureau, path: str, body: dict[str, Any]) -> httpx.Response:
    async with _client(bureau) as client:
        return await client.put(path, json=body)


async def _report(bureau: Bureau, subject_id: str, key: str | None = KEY) -> BureauReport:
    adapter = _adapter(bureau, key)
    try:
        return await adapter.report(subject_id)
    finally:
        await adapter.close()


def test_a_new_subject_scores_the_same_on_every_run_within_range(tmp_path: Path) -> None:
    first = asyncio.run(_get(Bureau(tmp_path / "a", KEY), "/v1/reports/cust-42"))
    again = asyncio.run(_get(Bureau(tmp_path / "b", KEY), "/v1/reports/cust-42"))
    assert first.status_code == again.status_code == 200
    one, two = first.json(), again.json()
    assert one["subject_id"] == "cust-42"
    assert (one["score"], one["open_credit_lines"], one["defaults"]) == (two["score"], two["open_credit_lines"], 0)
    assert one["report_id"].startswith("CB-") and one["report_id"] != two["report_id"]   # one per request
    assert datetime.fromisoformat(one["generated_at"]).utcoffset().total_seconds() == 0
    # derived from sha256 of the id: the same on any machine, not Python's salted hash()
    assert derived_file("cust-42") == {"score": 709, "open_credit_lines": 2, "defaults": 0}
    files = [derived_file(f"subject-{n}") for n in range(500)]
    assert all(560 <= f["score"] <= 800 and 0 <= f["open_credit_lines"] <= 3 and f["defaults"] == 0 for f in files)
    assert len({f["score"] for f in files}) > 100   # spread over the range, not one value


def test_a_file_set_through_the_sandbox_is_reported_and_survives_a_restart(tmp_path: Path) -> None:
    bureau = Bureau(tmp_path, KEY)
    file = {"score": 412, "open_credit_lines": 7, "defaults": 2}
    put = asyncio.run(_put(bureau, "/sandbox/subjects/risky-1", file))
    assert put.status_code == 200 and put.json() == {"subject_id": "risky-1"} | file
    report = asyncio.run(_report(Bureau(tmp_path, KEY), "risky-1"))   # a restarted bureau
    assert (report.subject_id, report.score, report.open_credit_lines, report.defaults) == ("risky-1", 412, 7, 2)
    assert report.report_id.startswith("CB-")


@pytest.mark.parametrize("path, body", [
    ("/sandbox/subjects/x", {"score": 900, "open_credit_lines": 0, "defaults": 0}),
    ("/sandbox/subjects/x", {"score": 299, "open_credit_lines": 0, "defaults": 0}),
    ("/sandbox/subjects/x", {"score": 700, "open_credit_lines": -1, "defaults": 0}),
    ("/sandbox/subjects/x", {"score": 700, "open_credit_lines": 0}),
    ("/sandbox/subjects/x", {"score": "high", "open_credit_lines": 0, "defaults": 0}),
    ("/sandbox/subjects/not%20an%20id", {"score": 700, "open_credit_lines": 0, "defaults": 0}),
    ("/sandbox/config", {"available": "maybe"}),
    ("/sandbox/config", {}),
])
def test_nonsense_for_the_sandbox_is_422(tmp_path: Path, path: str, body: dict[str, Any]) -> None:
    bureau = Bureau(tmp_path, KEY)
    assert asyncio.run(_put(bureau, path, body)).status_code == 422
    assert bureau.state["subjects"] == {} and bureau.state["available"] is True


@pytest.mark.parametrize("key", [None, "wrong-key", ""])
def test_a_wrong_or_missing_key_is_401_and_the_adapter_says_so(tmp_path: Path, key: str | None) -> None:
    bureau = Bureau(tmp_path, KEY)
    response = asyncio.run(_get(bureau, "/v1/reports/cust-1", key))
    assert response.status_code == 401 and response.json() == {"detail": "invalid api key"}
    with pytest.raises(BureauUnavailable, match="401"):
        asyncio.run(_report(bureau, "cust-1", key))


def test_an_outage_is_503_until_the_bureau_is_available_again(tmp_path: Path) -> None:
    bureau = Bureau(tmp_path, KEY)
    assert asyncio.run(_put(bureau, "/sandbox/config", {"available": False})).json() == {"available": False}
    response = asyncio.run(_get(bureau, "/v1/reports/cust-1"))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    with pytest.raises(BureauUnavailable, match="503"):
        asyncio.run(_report(bureau, "cust-1"))
    assert not Bureau(tmp_path, KEY).state["available"]   # an outage survives a restart too
    asyncio.run(_put(bureau, "/sandbox/config", {"available": True}))
    assert asyncio.run(_report(bureau, "cust-1")).score == derived_file("cust-1")["score"]


def test_every_report_request_is_recorded_oldest_first(tmp_path: Path) -> None:
    bureau = Bureau(tmp_path, KEY)
    ok = asyncio.run(_get(bureau, "/v1/reports/cust-1")).json()
    asyncio.run(_get(bureau, "/v1/reports/cust-2", key="wrong"))
    asyncio.run(_get(bureau, "/v1/reports/bad%20id"))
    asyncio.run(_put(bureau, "/sandbox/config", {"available": False}))
    asyncio.run(_get(bureau, "/v1/reports/cust-3"))
    requests = asyncio.run(_get(bureau, "/sandbox/requests")).json()
    assert [(r["subject_id"], r["report_id"], r["status"]) for r in requests] == [
        ("cust-1", ok["report_id"], 200), ("cust-2", None, 401), ("bad id", None, 404), ("cust-3", None, 503)]
    assert [r["at"] for r in requests] == sorted(r["at"] for r in requests)
    assert Bureau(tmp_path, KEY).state["requests"] == requests   # kept across a restart


def test_an_id_the_bureau_has_no_file_for_is_unknown_to_the_adapter(tmp_path: Path) -> None:
    bureau = Bureau(tmp_path, KEY)
    for subject_id in ("has space", "x" * 65, "a/b"):
        with pytest.raises(UnknownSubject):
            asyncio.run(_report(bureau, subject_id))
    assert issubclass(UnknownSubject, ValueError)


def test_the_adapter_reports_the_bureau_unavailable_when_nothing_listens() -> None:
    adapter = HttpCreditBureau(f"http://{LOCALHOST}:{free_port()}", KEY, 2.0)

    async def ask() -> BureauReport:
        try:
            return await adapter.report("cust-1")
        finally:
            await adapter.close()

    with pytest.raises(BureauUnavailable, match="ConnectError"):
        asyncio.run(ask())


def test_the_adapter_is_chosen_and_configured_by_the_settings() -> None:
    settings = Settings(credit_bureau_url="http://bureau.example:9000/", credit_bureau_api_key=SecretStr(KEY))
    assert settings.credit_bureau == "http://bureau.example:9000/"
    assert Settings(credit_bureau_url=None, credit_bureau_port=18123).credit_bureau == "http://127.0.0.1:18123"
    bureau = credit_bureau_from(settings)
    assert isinstance(bureau, HttpCreditBureau)
    asyncio.run(bureau.close())
