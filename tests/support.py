"""Test helpers: an HTTP client for the API, a reader of the whole event log, and the ledger invariants."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from api.deps import POSITION_HEADER

from core import events as e
from core.ledger import AccountState, apply
from core.readmodel import Positions, format_positions, parse_positions
from core.topics import LEDGER_EVENTS
from schemas.codec import get_codec

JSON = {"content-type": "application/json"}


def installed(tool: str) -> str:
    """The path of a system tool the set-up installs (prometheus, promtool). Missing: a failure under CI,
    where scripts/setup must have installed it, and a skip on a developer's machine where it could not."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (Debian: apt-get install prometheus; scripts/setup does it as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Bank:
    """The REST API, as a customer's client would call it.

    Like a well-behaved client of an eventually consistent API, it remembers the position of every command
    outcome it saw (Bank-Position) and passes it as `min_position` to its queries: it reads its own writes."""

    def __init__(self, base_url: str, timeout: float = 90.0) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self.position: Positions = {}

    def seen(self, response: httpx.Response) -> httpx.Response:
        if position := response.headers.get(POSITION_HEADER):
            for partition, offset in parse_positions(position).items():
                self.position[partition] = max(self.position.get(partition, 0), offset)
        return response

    def fresh(self, **params: Any) -> dict[str, Any]:
        """Query parameters plus min_position = everything this client has written."""
        return params | ({"min_position": format_positions(self.position)} if self.position else {})

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=self.fresh(**params))

    async def close(self) -> None:
        await self.http.aclose()

    async def post(self, path: str, body: dict[str, Any] | None = None, key: str | None = None,
                   wait: bool = True, attempts: int = 3) -> httpx.Response:
        """POST a command. Like any good client, it retries transport errors with the same Idempotency-Key
        (e.g. the server closing an idle keep-alive connection just as it is reused)."""
        headers = dict(JSON) | {"Idempotency-Key": key or str(uuid.uuid4())}
        for attempt in range(1, attempts + 1):
            try:
                return self.seen(await self.http.post(path, json=body, headers=headers,
                                                      params={"wait": "true"} if wait else None))
            except httpx.TransportError:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    async def open(self, currency: str = "EUR", overdraft: str | None = None, customer: str = "cust-1") -> str:
        body = {"customer_id": customer, "currency": currency} | ({"overdraft_limit": overdraft} if overdraft else {})
        response = await self.post("/v1/accounts", body)
        assert response.status_code == 201, response.text
        return response.json()["account_id"]

    async def deposit(self, account: str, amount: str, currency: str = "EUR", reference: str | None = None,
                      **kw: Any) -> httpx.Response:
        body = {"amount": amount, "currency": currency} | ({"reference": reference} if reference else {})
        return await self.post(f"/v1/accounts/{account}/deposits", body, **kw)

    async def withdraw(self, account: str, amount: str, currency: str = "EUR", reference: str | None = None,
                       **kw: Any) -> httpx.Response:
        body = {"amount": amount, "currency": currency} | ({"reference": reference} if reference else {})
        return await self.post(f"/v1/accounts/{account}/withdrawals", body, **kw)

    async def transfer(self, source: str, dest: str, amount: str, currency: str = "EUR",
                       reference: str | None = None, **kw: Any) -> httpx.Response:
        body = {"from_account_id": source, "to_account_id": dest, "amount": amount, "currency": currency}
        return await self.post("/v1/transfers", body | ({"reference": reference} if reference else {}), **kw)

    async def account(self, account: str) -> dict[str, Any]:
        response = await self.get(f"/v1/accounts/{account}")
        assert response.status_code == 200, response.text
        return response.json()

    async def command(self, command_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/commands/{command_id}")
        assert response.status_code == 200, response.text
        return response.json()


async def read_log(bootstrap: str) -> list[e.Event]:
    """Every committed event on the ledger topic, in per-partition order."""
    codec = get_codec()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(LEDGER_EVENTS, p) for p in sorted(consumer.partitions_for_topic(LEDGER_EVENTS))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        events: list[e.Event] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                events.extend(codec.decode(r.value, r.headers) for r in records)
        return events
    finally:
        await consumer.stop()


@dataclass
class LedgerAudit:
    """What the log says, folded with the ledger's own `apply`."""

    events: list[e.Event]
    accounts: dict[str, AccountState] = field(default_factory=dict)
    deposited: int = 0
    withdrawn: int = 0
    in_flight: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        ids = Counter(ev.event_id for ev in self.events)
        self.violations += [f"event id {i} appears {n} times" for i, n in ids.items() if n > 1]
        postings = Counter((ev.command_id, type(ev).__name__) for ev in self.events if type(ev) in e.POSTING_SIGN)
        self.violations += [f"command {k[0]} posted {k[1]} {n} times" for k, n in postings.items() if n > 1]
        debited: dict[str, int] = {}
        settled: defaultdict[str, list[str]] = defaultdict(list)
        for ev in self.events:
            state = apply(self.accounts.get(ev.account_id), ev)
            if state is not None:
                self.accounts[ev.account_id] = state
                if state.balance < -state.overdraft_limit:
                    self.violations.append(f"{ev.account_id} went to {state.balance} past its overdraft")
            if isinstance(ev, e.FundsDeposited):
                self.deposited += ev.amount
            elif isinstance(ev, e.FundsWithdrawn):
                self.withdrawn += ev.amount
            elif isinstance(ev, e.TransferDebited):
                debited[ev.transfer_id] = ev.amount
            elif isinstance(ev, (e.TransferCredited, e.TransferReversed)):
                settled[ev.transfer_id].append(type(ev).__name__)
        for transfer_id in debited:
            ends = settled.get(transfer_id, [])
            if not ends:
                self.in_flight.add(transfer_id)
            elif len(ends) > 1:
                self.violations.append(f"transfer {transfer_id} settled twice: {ends}")
        self.violations += [f"transfer {t} settled but never debited" for t in set(settled) - set(debited)]
        in_flight_money = sum(debited[t] for t in self.in_flight)
        total = sum(a.balance for a in self.accounts.values())
        if total + in_flight_money != self.deposited - self.withdrawn:
            self.violations.append(f"money created or destroyed: balances {total} + in flight {in_flight_money} "
                                   f"!= deposits {self.deposited} - withdrawals {self.withdrawn}")

    def outcome_command_ids(self) -> set[str]:
        return {ev.correlation_id for ev in self.events}


async def settled_audit(bootstrap: str, expected_commands: set[str] | None = None,
                        timeout: float = 90.0) -> LedgerAudit:
    """Waits until no transfer is in flight and every expected command has events, then audits the log."""
    deadline = time.monotonic() + timeout
    while True:
        audit = LedgerAudit(await read_log(bootstrap))
        missing = (expected_commands or set()) - audit.outcome_command_ids()
        if (not audit.in_flight and not missing) or time.monotonic() > deadline:
            return audit
        await asyncio.sleep(0.5)
