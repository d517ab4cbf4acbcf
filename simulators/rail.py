"""A sandbox payment rail, run as its own process: `python -m simulators.rail --port 18090 --data-dir DIR --bank-url URL`.

It behaves like a payment service provider's sandbox: it speaks HTTP only (it imports nothing of the bank's),
keeps its state in a JSON file under its data dir (so it can be stopped and restarted), and calls the bank back.

    POST   /instructions           an outbound instruction from the bank's gateway. Idempotent by instruction_id:
                                   201 the first time, 200 with `duplicate: true` after (nothing changes).
                                   It settles `settle_delay_ms` later, or is returned if a rule names its
                                   creditor IBAN; then the rail notifies the bank (POST {bank}/v1/rail/notifications)
                                   until the bank answers 2xx.
    GET    /instructions/{id}      one instruction: status accepted | settled | returned, reason_code, notified,
                                   submissions (how many times the bank sent it: dedupe shows here)
    GET    /instructions           all of them, oldest first
    PUT    /rules/{iban}           {"reason_code": "AC01"}: instructions to this creditor IBAN are returned with it
    DELETE /rules/{iban}           GET /rules: the rules
    PUT    /config                 {"settle_delay_ms": 200}
    POST   /inbound                originate an inbound credit transfer to the bank: {creditor_iban, amount,
                                   currency, debtor_iban?, debtor_name?, remittance_information?, instruction_id?};
                                   202 with its id. The rail delivers it (POST {bank}/v1/rail/inbound) until the
                                   bank answers credited or returned (with a reason code).
    GET    /inbound/{id}           status pending | credited | returned, reason_code
    GET    /health

Every call to the bank carries the shared secret in header `Rail-Secret` (BANK_RAIL_SECRET in the environment).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

log = logging.getLogger("simulators.rail")
STATE_FILE = "rail-state.json"
TICK_SECONDS = 0.05
RETRY_MAX_SECONDS = 2.0


class Instruction(BaseModel):
    instruction_id: str = Field(min_length=1, max_length=64)
    amount: str
    currency: str
    creditor_iban: str
    creditor_name: str
    creditor_bic: str | None = None
    remittance_information: str | None = None
    debtor_account: str | None = None


class Rule(BaseModel):
    reason_code: str = Field(pattern=r"^[A-Z0-9]{4}$")


class Config(BaseModel):
    settle_delay_ms: int = Field(ge=0)


class Inbound(BaseModel):
    creditor_iban: str
    amount: str
    currency: str
    debtor_iban: str | None = None
    debtor_name: str | None = None
    remittance_information: str | None = None
    instruction_id: str | None = None


def _compact(iban: str) -> str:
    return "".join(iban.split()).upper()


class Rail:
    """The rail's state and its background work (settling, notifying, delivering inbound credits)."""

    def __init__(self, data_dir: Path, bank_url: str, secret: str, settle_delay_ms: int) -> None:
        self.path = data_dir / STATE_FILE
        self.bank_url = bank_url.rstrip("/")
        self.secret = secret
        self.state: dict[str, Any] = {"instructions": {}, "inbound": {}, "rules": {},
                                      "settle_delay_ms": settle_delay_ms}
        if self.path.exists():
            self.state.update(json.loads(self.path.read_text()))
        data_dir.mkdir(parents=True, exist_ok=True)
        self._retry_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {}

    def save(self) -> None:
        """Atomically: a rail killed mid-write restarts from the previous state, never a torn file."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)

    # ---- outbound

    def accept(self, instruction: Instruction) -> tuple[dict[str, Any], bool]:
        known = self.state["instructions"].get(instruction.instruction_id)
        if known is not None:
            known["submissions"] += 1
            self.save()
            return known, True
        record = instruction.model_dump() | {
            "status": "accepted", "reason_code": None, "rail_reference": f"RAIL-{uuid.uuid4().hex[:12].upper()}",
            "received_at": time.time(), "due_at": time.time() + self.state["settle_delay_ms"] / 1000,
            "notified": False, "submissions": 1}
        self.state["instructions"][instruction.instruction_id] = record
        self.save()
        return record, False

    def settle_due(self) -> bool:
        changed = False
        now = time.time()
        for record in self.state["instructions"].values():
            if record["status"] == "accepted" and record["due_at"] <= now:
                code = self.state["rules"].get(_compact(record["creditor_iban"]))
                record["status"], record["reason_code"] = ("returned", code) if code else ("settled", None)
                changed = True
        return changed

    # ---- calling the bank

    def _due(self, key: str) -> bool:
        return self._retry_at.get(key, 0.0) <= time.time()

    def _failed(self, key: str) -> None:
        backoff = min(RETRY_MAX_SECONDS, self._backoff.get(key, 0.05) * 2)
        self._backoff[key] = backoff
        self._retry_at[key] = time.time() + backoff

    async def notify(self, client: httpx.AsyncClient, record: dict[str, Any]) -> bool:
        body = {"instruction_id": record["instruction_id"], "status": record["status"],
                "reason_code": record["reason_code"], "rail_reference": record["rail_reference"]}
        response = await self._post(client, f"n:{record['instruction_id']}", "/v1/rail/notifications", body,
                                    "the notification of", accepted=range(200, 300))
        if response is None:
            return False
        record["notified"] = True
        return True

    async def _post(self, client: httpx.AsyncClient, key: str, path: str, body: dict[str, Any], what: str,
                    accepted: range) -> httpx.Response | None:
        """POST to the bank, when `key` is due, backing it off on a failure; the answer if its status is
        `accepted`, else None."""
        if not self._due(key):
            return None
        try:
            response = await client.post(f"{self.bank_url}{path}", json=body, headers={"Rail-Secret": self.secret})
        except httpx.HTTPError as error:
            log.warning("%s %s failed: %s", what, body["instruction_id"], error)
            self._failed(key)
            return None
        if response.status_code not in accepted:
            log.warning("bank answered %s to %s %s: %s", response.status_code, what, body["instruction_id"],
                        response.text[:200])
            self._failed(key)
            return None
        return response

    def originate(self, inbound: Inbound) -> dict[str, Any]:
        instruction_id = inbound.instruction_id or f"IN-{uuid.uuid4().hex}"
        known = self.state["inbound"].get(instruction_id)
        if known is not None:
            return known
        record = inbound.model_dump() | {"instruction_id": instruction_id, "status": "pending", "reason_code": None,
                                         "created_at": time.time()}
        self.state["inbound"][instruction_id] = record
        self.save()
        return record

    async def deliver(self, client: httpx.AsyncClient, record: dict[str, Any]) -> bool:
        body = {name: record[name] for name in ("instruction_id", "creditor_iban", "amount", "currency",
                                                "debtor_iban", "debtor_name", "remittance_information")}
        response = await self._post(client, f"i:{record['instruction_id']}", "/v1/rail/inbound", body, "inbound",
                                    accepted=range(200, 201))
        if response is None:
            return False
        answer = response.json()
        record["status"], record["reason_code"] = answer["status"], answer.get("reason_code")
        return True

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                changed = self.settle_due()
                work = [self.notify(client, r) for r in self.state["instructions"].values()
                        if r["status"] != "accepted" and not r["notified"]]
                work += [self.deliver(client, r) for r in self.state["inbound"].values() if r["status"] == "pending"]
                if work:
                    changed = any(await asyncio.gather(*work)) or changed
                if changed:
                    self.save()
                await asyncio.sleep(TICK_SECONDS)


def create_app(rail: Rail) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        task = asyncio.create_task(rail.run())
        try:
            yield
        finally:
            task.cancel()

    app = FastAPI(title="bankstream sandbox payment rail", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/instructions", status_code=201)
    async def submit(instruction: Instruction) -> JSONResponse:
        record, duplicate = rail.accept(instruction)
        return JSONResponse(_public(record) | {"duplicate": duplicate}, status_code=200 if duplicate else 201)

    @app.get("/instructions")
    async def instructions() -> list[dict[str, Any]]:
        return [_public(r) for r in sorted(rail.state["instructions"].values(), key=lambda r: r["received_at"])]

    @app.get("/instructions/{instruction_id}")
    async def instruction(instruction_id: str) -> dict[str, Any]:
        record = rail.state["instructions"].get(instruction_id)
        if record is None:
            raise HTTPException(404, "unknown instruction")
        return _public(record)

    @app.get("/rules")
    async def rules() -> dict[str, str]:
        return dict(rail.state["rules"])

    @app.put("/rules/{iban}")
    async def set_rule(iban: str, rule: Rule) -> dict[str, str]:
        rail.state["rules"][_compact(iban)] = rule.reason_code
        rail.save()
        return {"creditor_iban": _compact(iban), "reason_code": rule.reason_code}

    @app.delete("/rules/{iban}", status_code=204)
    async def delete_rule(iban: str) -> None:
        rail.state["rules"].pop(_compact(iban), None)
        rail.save()

    @app.put("/config")
    async def config(body: Config) -> dict[str, int]:
        rail.state["settle_delay_ms"] = body.settle_delay_ms
        rail.save()
        return {"settle_delay_ms": body.settle_delay_ms}

    @app.post("/inbound", status_code=202)
    async def inbound(body: Inbound) -> dict[str, Any]:
        return rail.originate(body)

    @app.get("/inbound/{instruction_id}")
    async def inbound_status(instruction_id: str) -> dict[str, Any]:
        record = rail.state["inbound"].get(instruction_id)
        if record is None:
            raise HTTPException(404, "unknown inbound transfer")
        return record

    return app


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("due_at",)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--data-dir", type=Path, default=Path(".bank/rail"))
    parser.add_argument("--bank-url", default="http://127.0.0.1:8000")
    parser.add_argument("--settle-delay-ms", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    secret = os.environ.get("BANK_RAIL_SECRET", "")
    if not secret:
        parser.error("BANK_RAIL_SECRET must be set: the rail authenticates to the bank with it")
    rail = Rail(args.data_dir, args.bank_url, secret, args.settle_delay_ms)
    uvicorn.run(create_app(rail), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
