"""Credit bureau adapters: how the platform asks a credit bureau for an external score. One is chosen by
BANK_CREDIT_BUREAU_ADAPTER.

The interface (`CreditBureau`) is one call, `report(subject_id) -> BureauReport`, plus `close()`:

- `BureauReport`: the bureau's file on the subject: `score` (300..850), `open_credit_lines`, `defaults`, and the
  bureau's `report_id` for this answer (keep it with the decision it fed: it is what an auditor asks the bureau about).
- `BureauUnavailable`: the bureau cannot answer now (no connection, a timeout, a 5xx, an answer that is not a
  report); try again later. A refusal (a 4xx other than 404: a wrong API key, a bad URL) raises it too, with the
  status in its message: nothing the applicant did, a misconfiguration the operator must see in the logs.
- `UnknownSubject` (a `ValueError`): the bureau has no file on the subject (404).

`HttpCreditBureau` speaks the HTTP API of the credit bureau simulator (simulators/bureau.py; `bank up` and the test
stack run it): `GET {url}/v1/reports/{subject_id}` with `Authorization: Bearer <BANK_CREDIT_BUREAU_API_KEY>`.
A real bureau plugs in as another class registered in `ADAPTERS` under a name BANK_CREDIT_BUREAU_ADAPTER selects.

    bureau = credit_bureau_from(settings)
    try:
        report = await bureau.report(customer_id)
    finally:
        await bureau.close()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from core.settings import Settings


@dataclass(frozen=True, slots=True)
class BureauReport:
    subject_id: str
    score: int
    open_credit_lines: int
    defaults: int
    report_id: str


class BureauUnavailable(Exception):
    """The bureau cannot answer now: try again later."""


class UnknownSubject(ValueError):
    """The bureau has no file on this subject."""


class CreditBureau(Protocol):
    async def report(self, subject_id: str) -> BureauReport: ...

    async def close(self) -> None: ...


class HttpCreditBureau:
    """A bureau speaking the simulator's HTTP API (simulators/bureau.py). `transport`: httpx's, when not the network
    (the unit tests pass an ASGITransport onto the simulator's app)."""

    def __init__(self, url: str, api_key: str | None, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s,
                                         transport=transport)

    async def report(self, subject_id: str) -> BureauReport:
        try:
            response = await self._client.get(f"/v1/reports/{quote(subject_id, safe='')}")
        except httpx.HTTPError as error:
            raise BureauUnavailable(f"{type(error).__name__}: {error}") from None
        if response.status_code == 404:
            raise UnknownSubject(f"the bureau has no file on {subject_id!r}")
        if response.status_code >= 500:
            raise BureauUnavailable(f"the bureau answered {response.status_code}")
        if response.status_code >= 400:
            raise BureauUnavailable(f"the bureau refused the request ({response.status_code}; check "
                                    f"BANK_CREDIT_BUREAU_URL and BANK_CREDIT_BUREAU_API_KEY): {response.text[:200]}")
        try:
            return _report(response.json())
        except (ValueError, KeyError, TypeError) as error:
            raise BureauUnavailable(f"the bureau's answer is not a report: {error}") from None

    async def close(self) -> None:
        await self._client.aclose()


def _report(body: Any) -> BureauReport:
    """The fields the platform relies on, checked: a report with a score out of range is no report."""
    score = int(body["score"])
    if not 300 <= score <= 850:
        raise ValueError(f"score {score} out of 300..850")
    return BureauReport(subject_id=str(body["subject_id"]), score=score,
                        open_credit_lines=int(body["open_credit_lines"]), defaults=int(body["defaults"]),
                        report_id=str(body["report_id"]))


def _http(settings: Settings) -> CreditBureau:
    key = settings.credit_bureau_api_key
    return HttpCreditBureau(settings.credit_bureau, key.get_secret_value() if key is not None else None,
                            settings.credit_bureau_timeout.total_seconds())


ADAPTERS: dict[str, Callable[[Settings], CreditBureau]] = {"http": _http}


def credit_bureau_from(settings: Settings) -> CreditBureau:
    return ADAPTERS[settings.credit_bureau_adapter](settings)
