"""Prometheus metrics of the API process, served on its /metrics.

HTTP metrics are labelled by route *template* (`/v1/accounts/{account_id}`), never by raw path, so the label
set stays bounded whatever clients send.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter("bank_http_requests_total", "HTTP requests by method, route template and status",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("bank_http_request_duration_seconds", "HTTP request latency by method and route template",
                         ["method", "route"], buckets=LATENCY_BUCKETS)
API_COMMANDS = Counter("bank_api_commands_total", "Commands submitted through the API, by type and the outcome the "
                       "client saw (pending, accepted, rejected)", ["type", "outcome"])


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


class HttpMetrics:
    """ASGI middleware: count and time every request under its matched route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        streaming = False

        async def send_with_status(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                streaming = any(name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                                for name, value in message.get("headers", []))
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(method, template, str(status)).inc()
            if not streaming:   # an event stream lasts minutes by design: it is no request latency
                HTTP_LATENCY.labels(method, template).observe(time.perf_counter() - started)
