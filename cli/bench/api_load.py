"""End-to-end load through the API: an open-loop generator in a process of its own.

Open loop: request i is due at start + i / rate whatever happened to the earlier ones, and its latency is
measured from when it was due, not from when it was sent. A closed-loop client slows down when the server
does and so hides the queueing it causes (coordinated omission); this one does not. Each request is a
deposit with `?wait=true`, so its latency runs from the HTTP request to the ledger's event reaching the API.
Saturation is measured separately, closed loop with many concurrent clients: the most the API sustains, with
`?wait=true` (answered with the outcome) and with `?wait=false` (answered 202 once the command is on its topic).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import aiohttp


def percentiles(samples: list[float]) -> dict[str, float]:
    if len(samples) < 2:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 1), "p95_ms": round(cuts[94] * 1000, 1),
            "p99_ms": round(cuts[98] * 1000, 1)}


async def _deposit(session: aiohttp.ClientSession, api_url: str, account: str, wait: bool) -> int:
    async with session.post(f"{api_url}/v1/accounts/{account}/deposits", params={"wait": str(wait).lower()},
                            json={"amount": "1.00", "currency": "EUR"},
                            headers={"Idempotency-Key": str(uuid.uuid4())}) as response:
        await response.read()
        return response.status


def _answered(wait: bool) -> int:
    """The status of a deposit answered as asked: posted (wait=true), or accepted onto its topic (wait=false)."""
    return 200 if wait else 202


async def _measured_deposit(session: aiohttp.ClientSession, api_url: str, account: str, since: float,
                            statuses: dict[int, int], latencies: list[float], wait: bool = True) -> None:
    """One deposit, its status counted (0: timed out or failed to connect) and, if answered as asked, its latency
    from `since`."""
    try:
        status = await _deposit(session, api_url, account, wait)
    except (TimeoutError, aiohttp.ClientError):
        status = 0
    statuses[status] = statuses.get(status, 0) + 1
    if status == _answered(wait):
        latencies.append(time.monotonic() - since)


def _session(token: str, connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"},
                                 connector=aiohttp.TCPConnector(limit=connections),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def _open_loop(api_url: str, token: str, accounts: list[str], rate: float, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)

    async with _session(token, 1000) as session:
        async def one(i: int, due: float) -> None:
            await _measured_deposit(session, api_url, accounts[i % len(accounts)], due, statuses, latencies)

        start = time.monotonic() + 0.1
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    ok = statuses.get(200, 0)
    return {"offered_per_s": rate, "requests": total, "achieved_per_s": round(ok / elapsed),
            "errors": total - ok, "statuses": {str(k): v for k, v in sorted(statuses.items())},
            **percentiles(latencies)}


async def _closed_loop(api_url: str, token: str, accounts: list[str], clients: int, seconds: float,
                       wait: bool = True) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    async with _session(token, clients) as session:
        async def client(n: int) -> None:
            i = n
            while time.monotonic() < deadline:
                await _measured_deposit(session, api_url, accounts[i % len(accounts)], time.monotonic(), statuses,
                                        latencies, wait)
                i += clients

        started = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.monotonic() - started
    ok = statuses.get(_answered(wait), 0)
    return {"offered_per_s": None, "clients": clients, "wait": wait, "requests": sum(statuses.values()),
            "achieved_per_s": round(ok / elapsed), "errors": sum(statuses.values()) - ok,
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, **percentiles(latencies)}


def _run(kind: str, *args: Any) -> dict[str, Any]:
    """Entry point of the generator process."""
    if kind == "open":
        return asyncio.run(_open_loop(*args))
    return asyncio.run(_closed_loop(*args, wait=kind == "closed"))   # "closed-no-wait": wait=false


async def run_in_own_process(kind: str, *args: Any) -> dict[str, Any]:
    """Run one load in a separate process, so the generator does not share the caller's event loop."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return await asyncio.get_running_loop().run_in_executor(pool, _run, kind, *args)
