"""A development SMTP server that keeps every message and shows it: `python -m simulators.smtp`.

SMTP on --smtp-port (aiosmtpd: the real protocol, what aiosmtplib speaks to any mail server); every message
accepted is appended to <data-dir>/messages.jsonl, so stopping and restarting it loses none. The mailbox on
--http-port: `GET /` an HTML page, `GET /messages?to=<address>` JSON (newest last), `GET /healthz`.
`bank mail` prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import html
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from simulators.store import MessageLog


class Mailbox:
    """aiosmtpd's handler: each DATA becomes one stored message."""

    def __init__(self, log: MessageLog) -> None:
        self.log = log

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        body = parsed.get_body(preferencelist=("plain", "html"))
        self.log.append({
            "id": str(uuid.uuid4()), "received_at": datetime.now(UTC).isoformat(),
            "mail_from": envelope.mail_from, "to": list(envelope.rcpt_tos),
            "subject": str(parsed.get("Subject", "")), "message_id": str(parsed.get("Message-ID", "")),
            "notification_id": str(parsed.get("X-Bank-Notification-Id", "")),
            "body": body.get_content() if body is not None else "",
        })
        return "250 Message accepted for delivery"


def mailbox_app(log: MessageLog) -> web.Application:
    async def messages(request: web.Request) -> web.Response:
        return web.json_response({"messages": log.select(request.query.get("to"))})

    async def page(_request: web.Request) -> web.Response:
        rows = "".join(f"<tr><td>{html.escape(m['received_at'])}</td><td>{html.escape(', '.join(m['to']))}</td>"
                       f"<td>{html.escape(m['subject'])}</td><td><pre>{html.escape(m['body'])}</pre></td></tr>"
                       for m in reversed(log.messages[-500:]))
        return web.Response(content_type="text/html", text=(
            "<!doctype html><title>bankstream dev mailbox</title><h1>Dev mailbox</h1>"
            f"<p>{len(log.messages)} message(s); JSON at <a href='/messages'>/messages</a></p>"
            f"<table border=1 cellpadding=4><tr><th>received</th><th>to</th><th>subject</th><th>body</th></tr>{rows}"
            "</table>"))

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "messages": len(log.messages)})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/messages", messages)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(host: str, smtp_port: int, http_port: int, data_dir: Path) -> None:
    log = MessageLog(data_dir / "messages.jsonl")
    loop = asyncio.get_running_loop()
    handler = Mailbox(log)
    smtp = await loop.create_server(lambda: SMTP(handler, hostname="bank-dev-smtp"), host, smtp_port)
    runner = web.AppRunner(mailbox_app(log), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, http_port).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"dev SMTP server on {host}:{smtp_port}, mailbox on http://{host}:{http_port}/", flush=True)
    try:
        await stop.wait()
    finally:
        smtp.close()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args: Any = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.smtp_port, args.http_port, args.data_dir))


if __name__ == "__main__":
    main()
