"""Rail adapters: how the payment gateway talks to a payment rail. One is chosen by BANK_RAIL_ADAPTER.

The interface (`RailAdapter`) is one call, `submit(instruction) -> Submission`, with two ways to fail:

- `RailUnavailable`: the rail could not be reached or answered with a server error (5xx, timeout). The gateway
  retries the same instruction with backoff, without limit: the instruction id makes a retry harmless, since a
  rail must treat a second submission of an id it knows as the first one (idempotent by instruction id).
- `RailRefused(reason_code)`: the rail refused the instruction outright (a 4xx: malformed, unknown currency). The
  gateway reports the payment returned with that ISO 20022 reason code, and the ledger gives the money back.

A `Submission` says the rail took the instruction (its own reference, and whether it knew it already). The outcome,
settled or returned, comes later from the rail itself (for the HTTP rail: POST /v1/rail/notifications on the
bank's API). A real rail (an ISO 20022 pacs.008 gateway, a PSP's API) plugs in as another adapter registered in
`ADAPTERS` under a name BANK_RAIL_ADAPTER selects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from core.money import format_amount
from core.payments import PaymentInstruction
from core.settings import Settings


class RailUnavailable(Exception):
    """Try again later: nothing is known to have happened to the instruction."""


class RailRefused(Exception):
    def __init__(self, reason_code: str, detail: str) -> None:
        super().__init__(detail)
        self.reason_code = reason_code


@dataclass(frozen=True, slots=True)
class Submission:
    instruction_id: str
    rail_reference: str | None
    duplicate: bool          # the rail knew the instruction already (a resubmission after a crash)


class RailAdapter(Protocol):
    async def submit(self, instruction: PaymentInstruction) -> Submission: ...

    async def close(self) -> None: ...


class HttpRailAdapter:
    """A rail speaking the sandbox rail's HTTP API (simulators/rail.py): POST {url}/instructions."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self._client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s)

    async def submit(self, instruction: PaymentInstruction) -> Submission:
        body = {"instruction_id": instruction.instruction_id,
                "amount": format_amount(instruction.amount, instruction.currency), "currency": instruction.currency,
                "creditor_iban": instruction.creditor_iban, "creditor_name": instruction.creditor_name,
                "creditor_bic": instruction.creditor_bic,
                "remittance_information": instruction.remittance_information,
                "debtor_account": instruction.account_id}
        try:
            response = await self._client.post("/instructions", json=body)
        except httpx.HTTPError as error:
            raise RailUnavailable(f"{type(error).__name__}: {error}") from None
        if response.status_code >= 500:
            raise RailUnavailable(f"the rail answered {response.status_code}")
        if response.status_code >= 400:
            raise RailRefused("MS03", f"the rail refused the instruction ({response.status_code}): "
                                      f"{response.text[:200]}")
        answer = response.json()
        return Submission(instruction.instruction_id, answer.get("rail_reference"), bool(answer.get("duplicate")))

    async def close(self) -> None:
        await self._client.aclose()


def _http(settings: Settings) -> RailAdapter:
    return HttpRailAdapter(settings.rail, settings.rail_timeout.total_seconds())


ADAPTERS = {"http": _http}


def adapter_for(settings: Settings) -> RailAdapter:
    return ADAPTERS[settings.rail_adapter](settings)
