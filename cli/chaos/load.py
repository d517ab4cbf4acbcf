"""The chaos run's client: a steady open-loop load of commands through the API, in a process of its own.

Open loop: command i is due at start + i / rate whatever became of the earlier ones, so a stalled API or
ledger piles up outstanding requests instead of quietly slowing the load down. Mostly transfers, some to a
closed account (the saga must reverse them), plus deposits, withdrawals, payments to other banks (some to a
creditor IBAN the rail returns with AC01) and currency exchanges (a quote, then the transfer that executes it
into a dollar account), each `?wait=true`.

A good client: a transport error, a timeout or a 5xx is retried with the SAME Idempotency-Key (backing off,
for up to GIVE_UP_S), so a command whose first attempt died with the API is not posted twice. An exchange's key is
its quote (the API executes a quote once): a quote that expired before any attempt got through is asked for
again, as the API tells a client to. What it
finally got is its answer: a 2xx, or a 4xx naming the command (a rejection) — the commands the run's checks
hold the ledger to. A 4xx without a command id (the request itself was refused) is counted, not followed.
"""

from __future__ import annotations

import asyncio
import queue
import random
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.synchronize import Event as StopEvent
from typing import Any

import aiohttp

from api.idempotency import command_id_for, user_scope, window_of
from core.settings import get_settings

GIVE_UP_S = 240.0          # a command still unanswered this long after it was due is given up
REQUEST_TIMEOUT_S = 60.0   # above the API's command timeout: a `?wait=true` answers 202 before this
BACKOFF_S = (0.2, 0.5, 1.0, 2.0)
# Valid IBANs of another bank (Commerzbank's examples' bank code): payments to the first settle, to the second the
# chaos run's rail returns them (a rule set at start).
SETTLED_CREDITOR = "DE89370400440532013000"
RETURNED_CREDITOR = "DE62370400440532013001"
PROGRESS_EVERY_S = 1.0


@dataclass
class Mix:
    """What the load sends: shares of transfers to the closed account, deposits and withdrawals (the rest are
    transfers between open accounts), amounts in minor units."""

    to_closed: float = 0.03
    deposits: float = 0.10
    withdrawals: float = 0.10
    payments: float = 0.05
    exchanges: float = 0.05
    min_amount: int = 100
    max_amount: int = 5_000


@dataclass
class Tally:
    sent: int = 0
    retries: int = 0
    outstanding: int = 0
    answers: dict[str, int] = field(default_factory=dict)          # command id -> final HTTP status
    kinds: dict[str, str] = field(default_factory=dict)            # command id -> deposit | withdrawal | transfer
    retried: set[str] = field(default_factory=set)                 # command ids answered after a retry
    refused: dict[str, int] = field(default_factory=dict)          # "status reason" -> requests refused without a command
    gave_up: list[str] = field(default_factory=list)               # command ids (derived from their keys)
    # (when it was due, time.monotonic() — the same clock in every process —, seconds from due to answer)
    answer_times: list[tuple[float, float]] = field(default_factory=list)

    def progress(self) -> dict[str, Any]:
        return {"sent": self.sent, "answered": len(self.answers), "outstanding": self.outstanding,
                "retries": self.retries, "gave_up": len(self.gave_up)}

    def result(self) -> dict[str, Any]:
        return self.progress() | {"answers": self.answers, "kinds": self.kinds, "retried": sorted(self.retried),
                                  "refused": self.refused, "gave_up_ids": self.gave_up, "answer_times": self.answer_times}


class Client:
    def __init__(self, session: aiohttp.ClientSession, api_url: str, tally: Tally, key_scope: str) -> None:
        self.session, self.api_url, self.tally = session, api_url, tally
        self.key_scope = key_scope   # the API scopes Idempotency-Keys by caller: the command ids are the user's

    async def command(self, kind: str, path: str, body: dict[str, str], due: float) -> None:
        self.tally.sent += 1
        self.tally.outstanding += 1
        try:
            if kind == "exchange":
                await self._exchange(path, body, due)
            else:
                key = str(uuid.uuid4())
                await self._until_answered(kind, key, self._command_id(key), path, body, due)
        finally:
            self.tally.outstanding -= 1

    async def _exchange(self, path: str, body: dict[str, str], due: float) -> None:
        """A quote, then the transfer executing it; a new quote when the last one expired unexecuted."""
        while (quote_id := await self._quote(body, due)) is not None:
            # the API keys an exchange by its quote, whatever Idempotency-Key it carries
            command_id = self._command_id(f"fx-quote:{quote_id}")
            if not await self._until_answered("exchange", str(uuid.uuid4()), command_id, path,
                                              body | {"quote_id": quote_id}, due, renew_on="quote_expired"):
                return

    def _command_id(self, key: str) -> str:
        """The command id the API derives from a new key, so a command given up on can be looked for on the log."""
        return command_id_for(key, self.key_scope, window_of(time.time(), get_settings().processed_retention))

    async def _quote(self, body: dict[str, str], due: float) -> str | None:
        """A quote's id; None when it was refused (counted) or never came (given up)."""
        quote = {"sell_currency": "EUR", "buy_currency": "USD", "amount": body["amount"], "side": "sell"}
        attempt = 0
        while time.monotonic() - due < GIVE_UP_S:
            await self._pause_before(attempt)
            attempt += 1
            try:
                async with self.session.post(f"{self.api_url}/v1/fx/quotes", json=quote) as response:
                    payload = await response.json(content_type=None)
                    if response.status == 201:
                        return str(payload["quote_id"])
                    if response.status < 500:
                        refusal = f"{response.status} {payload.get('reason')}"
                        self.tally.refused[refusal] = self.tally.refused.get(refusal, 0) + 1
                        return None
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, AttributeError):
                pass   # no answer, or no JSON: ask again
        self.tally.gave_up.append(f"exchange due at {due:.3f}: no quote")
        return None

    async def _pause_before(self, attempt: int, at_least: float = 0.0) -> None:
        """Before a retry (attempt 1 on): counted, and a full-jitter pause, so the retries of a crowd of clients
        spread out instead of hitting a restarted API at once; after a Retry-After (`at_least` seconds), that long
        and up to as long again."""
        if attempt:
            self.tally.retries += 1
            longest = max(BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1], 2 * at_least)
            await asyncio.sleep(random.uniform(max(0.05, at_least), longest))

    async def _until_answered(self, kind: str, key: str, command_id: str, path: str, body: dict[str, str],
                              due: float, renew_on: str | None = None) -> bool:
        """Posts until answered or given up (False); True when refused for `renew_on` (nothing was posted)."""
        attempt, retry_after = 0, 0.0
        while time.monotonic() - due < GIVE_UP_S:
            await self._pause_before(attempt, retry_after)
            attempt += 1
            answer = await self._post(key, path, body)
            if isinstance(answer, float):
                retry_after = answer
                continue   # no answer, or a 5xx: the same key again
            status, answered_id, reason = answer
            if answered_id is None:
                if renew_on is not None and reason == renew_on:
                    return True
                refusal = f"{status} {reason}"
                self.tally.refused[refusal] = self.tally.refused.get(refusal, 0) + 1
                return False
            self.tally.answers[answered_id], self.tally.kinds[answered_id] = status, kind
            self.tally.answer_times.append((due, time.monotonic() - due))
            if attempt > 1:
                self.tally.retried.add(answered_id)
            return False
        self.tally.gave_up.append(command_id)
        return False

    async def _post(self, key: str, path: str, body: dict[str, str]) -> tuple[int, str | None, str | None] | float:
        """(status, command id, problem reason) of an answer; for no answer or a 5xx, the seconds its Retry-After
        asks to wait (0.0 without one)."""
        try:
            async with self.session.post(f"{self.api_url}{path}", params={"wait": "true"}, json=body,
                                         headers={"Idempotency-Key": key}) as response:
                if response.status >= 500:
                    retry_after = response.headers.get("Retry-After", "")
                    return float(retry_after) if retry_after.isdigit() else 0.0
                payload = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return 0.0
        if not isinstance(payload, dict):
            return response.status, None, None
        return response.status, payload.get("command_id"), payload.get("reason")


async def _key_scope(session: aiohttp.ClientSession, api_url: str) -> str:
    """The scope of this token's Idempotency-Keys (the user it belongs to), as the API derives command ids."""
    async with session.get(f"{api_url}/v1/auth/me") as response:
        response.raise_for_status()
        return user_scope((await response.json())["user_id"])


def _plan(rng: random.Random, accounts: list[str], closed: str, dollars: list[str],
          mix: Mix) -> tuple[str, str, dict[str, str]]:
    cents = rng.randint(mix.min_amount, mix.max_amount)
    amount = f"{cents // 100}.{cents % 100:02d}"
    money = {"amount": amount, "currency": "EUR"}
    roll = rng.random()
    a, b = rng.sample(accounts, 2)
    if roll < mix.deposits:
        return "deposit", f"/v1/accounts/{a}/deposits", money
    if roll < mix.deposits + mix.withdrawals:
        return "withdrawal", f"/v1/accounts/{a}/withdrawals", money
    if roll < mix.deposits + mix.withdrawals + mix.payments:
        creditor = RETURNED_CREDITOR if rng.random() < 0.3 else SETTLED_CREDITOR
        return "payment", "/v1/payments", money | {"from_account_id": a, "creditor_iban": creditor,
                                                   "creditor_name": "Chaos Creditor GmbH"}
    if roll < mix.deposits + mix.withdrawals + mix.payments + mix.exchanges and dollars:
        return "exchange", "/v1/transfers", money | {"from_account_id": a, "to_account_id": rng.choice(dollars)}
    if roll < mix.deposits + mix.withdrawals + mix.payments + mix.exchanges + mix.to_closed:
        b = closed
    return "transfer", "/v1/transfers", money | {"from_account_id": a, "to_account_id": b}


async def open_loop(api_url: str, token: str, accounts: list[str], closed: str, dollars: list[str], rate: float,
                    seed: int, stop: StopEvent, report: Any, mix: Mix | None = None) -> dict[str, Any]:
    """Send commands at `rate`/s until `stop` is set, then wait for every outstanding one to be answered or
    given up. Progress dicts go to `report` (a queue) every second; returns the tally."""
    rng, tally, mix = random.Random(seed), Tally(), mix or Mix()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=2_000)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, connector=connector,
                                     timeout=timeout) as session:
        client = Client(session, api_url, tally, await _key_scope(session, api_url))
        tasks: set[asyncio.Task[None]] = set()
        start = last_report = time.monotonic()
        report.put(tally.progress())   # the first report says the load runs
        i = 0
        while not stop.is_set():
            due = start + i / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(client.command(*_plan(rng, accounts, closed, dollars, mix), due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                report.put(tally.progress())
                last_report = time.monotonic()
        while tasks:
            await asyncio.wait(set(tasks), timeout=PROGRESS_EVERY_S)
            report.put(tally.progress())
    return tally.result()


def _main(api_url: str, token: str, accounts: list[str], closed: str, dollars: list[str], rate: float, seed: int,
          stop: StopEvent, report: Any) -> None:
    """Entry point of the load process: the final tally is the last thing put on `report`."""
    result = asyncio.run(open_loop(api_url, token, accounts, closed, dollars, rate, seed, stop, report))
    report.put({"done": result})


class LoadProcess:
    """The load generator in a spawned process, so it shares neither the event loop nor the GIL of the
    process injecting faults."""

    def __init__(self, api_url: str, token: str, accounts: list[str], closed: str, dollars: list[str], rate: float,
                 seed: int) -> None:
        ctx = get_context("spawn")
        self.stop_event, self.queue = ctx.Event(), ctx.Queue()
        self.process = ctx.Process(target=_main, name="bank-chaos-load", daemon=True,
                                   args=(api_url, token, accounts, closed, dollars, rate, seed, self.stop_event,
                                         self.queue))
        self.latest: dict[str, Any] = {"sent": 0, "answered": 0, "outstanding": 0, "retries": 0, "gave_up": 0}
        self.result: dict[str, Any] | None = None

    def start(self) -> None:
        self.process.start()

    def poll(self, timeout: float = 0.0) -> dict[str, Any]:
        """The latest progress (and the result, once the process has put it)."""
        try:
            while True:
                message = self.queue.get(timeout=timeout)
                timeout = 0.0
                if "done" in message:
                    self.result = message["done"]
                    self.latest = {k: v for k, v in self.result.items() if k in self.latest}
                else:
                    self.latest = message
        except queue.Empty:
            return self.latest

    def wait_running(self, timeout: float = 60.0) -> None:
        """Block until the process reports it is sending (a spawned interpreter takes seconds to import)."""
        message = self.queue.get(timeout=timeout)
        self.latest = message

    def stop(self) -> None:
        self.stop_event.set()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)
