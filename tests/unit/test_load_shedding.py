"""The API sheds load past its in-flight limit (api/middleware.py InFlightLimit): a request over it is answered 503
problem+json with Retry-After before any work, health and metrics never are, and a slot freed takes the next one.
A small Starlette app whose endpoint waits holds requests in flight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from api.middleware import InFlightLimit

LIMIT = 2


def held_app(release: asyncio.Event, entered: list[str]) -> Starlette:
    async def work(request: Request) -> JSONResponse:
        entered.append(request.url.path)
        await release.wait()
        return JSONResponse({"done": True})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def stream(request: Request) -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            yield b"first\n"
            await release.wait()
            yield b"last\n"
        return StreamingResponse(lines())

    return Starlette(routes=[Route("/work", work, methods=["POST"]), Route("/healthz", healthz),
                             Route("/stream", stream)])


def test_requests_past_the_limit_are_shed_at_once_and_health_never_is() -> None:
    async def scenario() -> None:
        release, entered = asyncio.Event(), []
        limited = InFlightLimit(held_app(release, entered), limit=LIMIT, exempt_paths={"/healthz"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://api") as client:
            held = [asyncio.create_task(client.post("/work")) for _ in range(LIMIT)]
            while len(entered) < LIMIT:
                await asyncio.sleep(0.01)
            shed = await client.post("/work")
            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "1"
            assert shed.headers["content-type"] == "application/problem+json"
            assert shed.json()["reason"] == "overloaded"
            assert len(entered) == LIMIT                 # the shed request reached no endpoint
            assert (await client.get("/healthz")).status_code == 200
            release.set()
            assert [response.status_code for response in await asyncio.gather(*held)] == [200] * LIMIT
            assert limited.in_flight == 0
            assert (await client.post("/work")).status_code == 200   # a freed slot takes the next request

    asyncio.run(scenario())


def test_a_stream_holds_no_slot_once_its_answer_has_started() -> None:
    """Driven at the ASGI level: httpx's ASGI transport would read the whole stream before answering."""
    async def scenario() -> None:
        release, entered = asyncio.Event(), []
        limited = InFlightLimit(held_app(release, entered), limit=1)
        started = asyncio.Event()

        async def receive() -> dict[str, object]:
            await release.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                started.set()

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": "/stream", "raw_path": b"/stream", "query_string": b"", "headers": [],
                 "client": ("127.0.0.1", 1), "server": ("api", 80)}
        streaming = asyncio.create_task(limited(scope, receive, send))
        await asyncio.wait_for(started.wait(), 5)
        assert limited.in_flight == 0                        # answered: the stream flows without a slot
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://api") as client:
            working = asyncio.create_task(client.post("/work"))   # the one slot is free for it
            while not entered:
                await asyncio.sleep(0.01)
            release.set()
            assert (await working).status_code == 200
        await asyncio.wait_for(streaming, 5)
        assert limited.in_flight == 0

    asyncio.run(scenario())


def test_a_limit_of_zero_takes_everything() -> None:
    async def scenario() -> None:
        release, entered = asyncio.Event(), []
        unlimited = InFlightLimit(held_app(release, entered), limit=0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=unlimited), base_url="http://api") as client:
            held = [asyncio.create_task(client.post("/work")) for _ in range(20)]
            while len(entered) < 20:
                await asyncio.sleep(0.01)
            release.set()
            assert {response.status_code for response in await asyncio.gather(*held)} == {200}

    asyncio.run(scenario())
