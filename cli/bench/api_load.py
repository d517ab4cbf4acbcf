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
import json
import statistics
import time
import uuid
from urllib.parse import urlsplit
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

REQUEST_TIMEOUT_S = 60.0



def percentiles(samples: list[float]) -> dict[str, float]:
    if len(samples) < 2:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 1), "p95_ms": round(cuts[94] * 1000, 1),
            "p99_ms": round(cuts[98] * 1000, 1)}


class Connections:
    """Keep-alive HTTP/1.1 connections to the API, at most `limit` open at once. A lean client on purpose: the
    generator shares this 2-core machine with the platform, and an HTTP library's client (aiohttp's took a whole
    core at 300 requests/s) would measure itself. Each request is a small JSON POST whose answer has a
    Content-Length, as the API's always do."""

    def __init__(self, api_url: str, token: str, limit: int) -> None:
        url = urlsplit(api_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.headers = (f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
                        "Content-Type: application/json\r\n").encode()
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes, idempotency_key: str) -> int:
        """The answer's status; raises OSError, TimeoutError or ValueError when there is none."""
        request = (f"POST {path} HTTP/1.1\r\n".encode() + self.headers
                   + f"Idempotency-Key: {idempotency_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        async with self.slots:
            while self.idle:
                # An idle connection the server has closed meanwhile (its keep-alive timeout) fails before any answer:
                # the request goes again on another (the Idempotency-Key makes a second send harmless anyway).
                connection = self.idle.pop()
                try:
                    return await self._send(connection, request)
                except (ConnectionError, asyncio.IncompleteReadError):
                    continue
            return await self._send(await asyncio.open_connection(self.host, self.port), request)

    async def _send(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes) -> int:
        try:
            status, reusable = await asyncio.wait_for(_exchange(*connection, request), REQUEST_TIMEOUT_S)
        except BaseException:
            connection[1].close()
            raise
        if reusable:
            self.idle.append(connection)
        else:
            connection[1].close()
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bool]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status, length, reusable = int(head[9:12]), None, True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            reusable = False
    if length is None:
        raise ValueError("an answer without Content-Length")
    await reader.readexactly(length)
    return status, reusable


DEPOSIT = json.dumps({"amount": "1.00", "currency": "EUR"}).encode()


async def _deposit(connections: Connections, account: str, wait: bool) -> int:
    return await connections.post(f"/v1/accounts/{account}/deposits?wait={str(wait).lower()}", DEPOSIT,
                                  str(uuid.uuid4()))


def _answered(wait: bool) -> int:
    """The status of a deposit answered as asked: posted (wait=true), or accepted onto its topic (wait=false)."""
    return 200 if wait else 202


async def _measured_deposit(connections: Connections, account: str, since: float, statuses: dict[int, int],
                            latencies: list[float], wait: bool = True) -> None:
    """One deposit, its status counted (0: timed out or failed to connect) and, if answered as asked, its latency
    from `since`."""
    try:
        status = await _deposit(connections, account, wait)
    except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        status = 0
    statuses[status] = statuses.get(status, 0) + 1
    if status == _answered(wait):
        latencies.append(time.monotonic() - since)


async def _open_loop(api_url: str, token: str, accounts: list[str], rate: float, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)

    connections = Connections(api_url, token, 1000)
    try:
        async def one(i: int, due: float) -> None:
            await _measured_deposit(connections, accounts[i % len(accounts)], due, statuses, latencies)

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
    finally:
        connections.close()
    ok = statuses.get(200, 0)
    return {"offered_per_s": rate, "requests": total, "achieved_per_s": round(ok / elapsed),
            "errors": total - ok, "statuses": {str(k): v for k, v in sorted(statuses.items())},
            **percentiles(latencies)}


async def _closed_loop(api_url: str, token: str, accounts: list[str], clients: int, seconds: float,
                       wait: bool = True) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    connections = Connections(api_url, token, clients)
    try:
        async def client(n: int) -> None:
            i = n
            while time.monotonic() < deadline:
                await _measured_deposit(connections, accounts[i % len(accounts)], time.monotonic(), statuses,
                                        latencies, wait)
                i += clients

        started = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.monotonic() - started
    finally:
        connections.close()
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
