"""An SMS gateway simulator with an HTTP API like a real provider's: `python -m simulators.sms`.

- `POST /v1/messages` (Bearer API key, JSON `{to, from, body, reference}`): 201 `{id, status: "queued", ...}`;
  the message is "delivered" a moment later (its status turns `delivered`). `reference` is the sender's
  idempotency key, as real providers take one: the same reference again answers 200 with the message already
  accepted, and sends nothing twice.
- `PUT /v1/control` `{"fail": N, "status": 503}`: the next N sends (-1: every send until told otherwise, 0: none)
  answer that status, like a provider that is down.
- `GET /v1/messages?to=<E.164>`: every message accepted, oldest first (JSON); `GET /` the same as a page.

Every accepted message is appended to <data-dir>/messages.jsonl. `bank sms` prints them.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from simulators.store import MessageLog

DELIVERY_DELAY_S = 0.05
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


class Gateway:
    def __init__(self, log: MessageLog, api_key: str) -> None:
        self.log = log
        self.api_key = api_key
        self.fail_next = 0           # -1: always
        self.fail_status = 503
        self.refused = 0             # sends refused by the failure switch

    async def send(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid API key")
        if self.fail_next:
            self.fail_next -= 1 if self.fail_next > 0 else 0
            self.refused += 1
            return _error(self.fail_status, "the gateway is unavailable (simulated)")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body must be JSON")
        to, text = body.get("to"), body.get("body")
        if not isinstance(to, str) or not E164.fullmatch(to):
            return _error(400, "to: an E.164 number")
        if not isinstance(text, str) or not text:
            return _error(400, "body: text")
        reference = body.get("reference")
        if reference:
            same = next((m for m in self.log.messages if m.get("reference") == reference), None)
            if same is not None:
                return web.json_response(same, status=200)
        message = {"id": f"SM{uuid.uuid4().hex}", "to": to, "from": body.get("from") or "bankstream",
                   "body": text, "reference": reference, "status": "queued",
                   "accepted_at": datetime.now(UTC).isoformat(), "delivered_at": None}
        self.log.append(message)
        asyncio.get_running_loop().call_later(DELIVERY_DELAY_S, self._deliver, message)
        return web.json_response(message, status=201)

    def _deliver(self, message: dict[str, Any]) -> None:
        message.update(status="delivered", delivered_at=datetime.now(UTC).isoformat())
        self.log.rewrite()

    async def control(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fail_next = int(body.get("fail", 0))
        self.fail_status = int(body.get("status", 503))
        return web.json_response(self.state())

    def state(self) -> dict[str, Any]:
        return {"fail": self.fail_next, "status": self.fail_status, "refused": self.refused,
                "messages": len(self.log.messages)}

    async def messages(self, request: web.Request) -> web.Response:
        return web.json_response({"messages": self.log.select(request.query.get("to"))})

    async def page(self, _request: web.Request) -> web.Response:
        rows = "".join(f"<tr><td>{html.escape(m['accepted_at'])}</td><td>{html.escape(m['to'])}</td>"
                       f"<td>{html.escape(m['status'])}</td><td>{html.escape(m['body'])}</td></tr>"
                       for m in reversed(self.log.messages[-500:]))
        return web.Response(content_type="text/html", text=(
            "<!doctype html><title>bankstream SMS gateway simulator</title><h1>SMS sent</h1>"
            f"<p>{len(self.log.messages)} message(s); JSON at <a href='/v1/messages'>/v1/messages</a></p>"
            f"<table border=1 cellpadding=4><tr><th>accepted</th><th>to</th><th>status</th><th>text</th></tr>{rows}"
            "</table>"))

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"} | self.state())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)


def gateway_app(gateway: Gateway) -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/messages", gateway.send)
    app.router.add_get("/v1/messages", gateway.messages)
    app.router.add_put("/v1/control", gateway.control)
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/", gateway.page)
    return app


async def serve(host: str, port: int, data_dir: Path, api_key: str) -> None:
    gateway = Gateway(MessageLog(data_dir / "messages.jsonl"), api_key)
    runner = web.AppRunner(gateway_app(gateway), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"SMS gateway simulator on http://{host}:{port}/", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--api-key", default="sim-key")
    args: Any = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.data_dir, args.api_key))


if __name__ == "__main__":
    main()
