"""The platform's public REST API, as the web app calls it: over HTTP, with the signed-in user's bearer token.

The web app has no other way in (no database, no Kafka, no import of api/ or streams/: an import-linter contract
checks it), so every page is authorised by the API's own policy table and every page exercises the API.

`ApiClient` is one pooled `httpx.AsyncClient` per process. `Api` binds it to one browser session: it adds the
access token, refreshes it through `POST /v1/auth/refresh` shortly before it expires, forwards the browser's
address and User-Agent (the API's session list shows the person's device, not ours; uvicorn trusts
X-Forwarded-For from 127.0.0.1 only), and turns problem+json answers into `ApiError`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.readmodel import PositionError, format_positions, parse_positions
from web.session import WebSession

REFRESH_MARGIN_S = 30.0      # refresh an access token this long before it expires
# Commands wait for their outcome (?wait=true) up to the API's BANK_COMMAND_TIMEOUT; the page waits a bit longer.
DEFAULT_TIMEOUT_S = 90.0
FIELD_PREFIX = re.compile(r"^([a-z_]+): ")
POSITION_HEADER = "Bank-Position"     # a command's place in the log, which queries can wait for (min_position)


@dataclass(frozen=True)
class Browser:
    """Who is on the other end of the web request: forwarded to the API."""

    ip: str
    user_agent: str

    def headers(self) -> dict[str, str]:
        return {"X-Forwarded-For": self.ip, "User-Agent": self.user_agent or "unknown browser"}


@dataclass
class ApiError(Exception):
    """A 4xx/5xx answer of the API, with its problem+json document (RFC 7807)."""

    status: int
    problem: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.detail}"

    @property
    def reason(self) -> str:
        return str(self.problem.get("reason") or "")

    @property
    def title(self) -> str:
        return str(self.problem.get("title") or "Something went wrong")

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.title)

    def field(self) -> str | None:
        """The request field the problem concerns, when the API says (a validation error's `loc`)."""
        for error in self.problem.get("errors") or []:
            location = [str(part) for part in error.get("loc", []) if part not in ("body", "query", "path")]
            if location:
                return location[0]
        named = FIELD_PREFIX.match(self.detail)   # the API's details name their field first: "min_amount: ..."
        return named.group(1) if named else None

    def messages(self) -> list[str]:
        """What to show: a weak password lists every rule it broke; anything else, its detail."""
        problems = self.problem.get("problems")
        if isinstance(problems, list) and problems:
            return [str(p) for p in problems]
        return [self.detail]


@dataclass
class ServerEvent:
    """One Server-Sent Event of an API stream."""

    event: str = "message"
    id: str | None = None
    data: str = ""


class SignInRequired(Exception):
    """No usable session: not signed in, the session ended, was revoked, or its refresh token was refused."""


class ApiClient:
    """The process's connection pool to the API."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport,
                                      headers={"Accept": "application/json"})

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, browser: Browser, token: str | None = None,
                   **kwargs: Any) -> httpx.Response:
        headers = browser.headers() | dict(kwargs.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.http.request(method, path, headers=headers, **kwargs)

    # ---- the anonymous endpoints

    async def token(self, browser: Browser, email: str, password: str, otp: str | None = None) -> dict[str, Any]:
        form = {"username": email, "password": password} | ({"otp": otp} if otp else {})
        return checked(await self.call("POST", "/v1/auth/token", browser, data=form))

    async def register(self, browser: Browser, name: str, email: str, password: str) -> dict[str, Any]:
        body = {"name": name, "email": email, "password": password}
        return checked(await self.call("POST", "/v1/auth/register", browser, json=body))


def checked(response: httpx.Response) -> Any:
    """The JSON body of a 2xx answer (None for 204); ApiError otherwise."""
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"title": response.reason_phrase, "detail": response.text[:200]}
        raise ApiError(response.status_code, problem if isinstance(problem, dict) else {})
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


class Api:
    """The API as one signed-in browser session uses it."""

    def __init__(self, client: ApiClient, session: WebSession, browser: Browser) -> None:
        self.client, self.session, self.browser = client, session, browser

    @property
    def signed_in(self) -> bool:
        return self.session.auth is not None

    async def _token(self) -> str:
        auth = self.session.auth
        if auth is None:
            raise SignInRequired()
        if auth.expires_at - time.time() < REFRESH_MARGIN_S:
            response = await self.client.call("POST", "/v1/auth/refresh", self.browser,
                                              json={"refresh_token": auth.refresh_token})
            if response.status_code != 200:
                self.session.sign_out()
                raise SignInRequired()
            self.session.signed_in(response.json())
            auth = self.session.auth
            assert auth is not None
        return auth.access_token

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.call(method, path, self.browser, token=await self._token(), **kwargs)
        if response.status_code == 401:   # revoked elsewhere (another device, an admin, a password change)
            self.session.sign_out()
            raise SignInRequired()
        return response

    def _seen(self, response: httpx.Response) -> httpx.Response:
        """Remembers the log position of every command outcome, so the next page reads its own writes."""
        if position := response.headers.get(POSITION_HEADER):
            try:
                for partition, offset in parse_positions(position).items():
                    self.session.positions[partition] = max(self.session.positions.get(partition, 0), offset)
            except PositionError:
                pass
        return response

    async def get(self, path: str, **params: Any) -> Any:
        """A query: waits (up to the API's read-your-writes timeout) for the read model to reflect every command
        this session sent, so a transfer just made is in the history the page shows."""
        clean = {key: value for key, value in params.items() if value not in (None, "")}
        if self.session.positions:
            clean.setdefault("min_position", format_positions(self.session.positions))
        return checked(await self.request("GET", path, params=clean))

    async def get_raw(self, path: str, **params: Any) -> httpx.Response:
        """A query whose body is passed on as it is (a CSV export)."""
        clean = {key: value for key, value in params.items() if value not in (None, "")}
        response = await self.request("GET", path, params=clean)
        if response.status_code >= 400:
            checked(response)   # raises the problem
        return response

    async def post(self, path: str, body: dict[str, Any] | None = None, *, command: bool = False,
                   idempotency_key: str | None = None) -> Any:
        """A JSON POST. Commands wait for their outcome and carry an Idempotency-Key, so a retried form post
        (the same key) never moves money twice."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())} if command or idempotency_key else {}
        params = {"wait": "true"} if command else None
        return checked(self._seen(await self.request("POST", path, json=body, headers=headers, params=params)))

    async def put(self, path: str, body: dict[str, Any]) -> Any:
        return checked(await self.request("PUT", path, json=body))

    async def patch(self, path: str, body: dict[str, Any]) -> Any:
        return checked(await self.request("PATCH", path, json=body))

    async def delete(self, path: str) -> Any:
        return checked(await self.request("DELETE", path))

    async def events(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> AsyncIterator[ServerEvent]:
        """An API stream of Server-Sent Events (text/event-stream), event by event, until the API ends it."""
        sent = self.browser.headers() | {"Authorization": f"Bearer {await self._token()}",
                                         "Accept": "text/event-stream"} | (headers or {})
        timeout = httpx.Timeout(30.0, read=None)   # a quiet stream is not a dead one: the API pings it
        async with self.client.http.stream("GET", path, params=params, headers=sent, timeout=timeout) as response:
            if response.status_code == 401:
                self.session.sign_out()
                raise SignInRequired()
            if response.status_code >= 400:
                await response.aread()
                checked(response)
            event = ServerEvent()
            async for line in response.aiter_lines():
                if not line:                        # a blank line ends an event
                    if event.data:
                        yield ServerEvent(event.event, event.id, event.data.removesuffix("\n"))
                    event = ServerEvent()
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event.event = value
                elif name == "id":
                    event.id = value
                elif name == "data":
                    event.data += value + "\n"
