"""One origin: `uvicorn server.main:app` serves the API and, beside it, the customer app at /app/ and the admin
panel at /admin/ (`/` leads to the app). This is what `bank up`, the test stack and docker-compose run.

The two apps stay apart: the web app is built by `web.create_app(api_base_url)` and calls the API over HTTP like
any client (here, in the same process, through the server's own port), so api/ never imports web/ and web/ never
imports api/. Only this module knows both. Requests for `/`, `/app...` and `/admin...` go to the web app, the rest
to the API (with its own middleware: request guards, trace ids, metrics); both apps' start-up and shut-down run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

import web
from api.main import create_app as create_api
from core.settings import Settings, get_settings

WEB_PREFIXES = ("/app", "/admin")
ANY_ADDRESS = {"0.0.0.0", "::", ""}


def api_base_url(settings: Settings) -> str:
    """Where the web app reaches the API: BANK_WEB_API_URL, else this server's own port on loopback."""
    if settings.web_api_url:
        return settings.web_api_url
    host = "127.0.0.1" if settings.api_host in ANY_ADDRESS else settings.api_host
    return f"http://{host}:{settings.api_port}"


def is_web_path(path: str) -> bool:
    return path == "/" or any(path == prefix or path.startswith(prefix + "/") for prefix in WEB_PREFIXES)


class Site:
    """Dispatches each request to the web app or the API by its path; runs both apps' lifespans."""

    def __init__(self, api: FastAPI, web_app: FastAPI) -> None:
        self.api, self.web = api, web_app

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(api.router.lifespan_context(api))
                await stack.enter_async_context(web_app.router.lifespan_context(web_app))
                yield

        self._lifespan = Starlette(lifespan=lifespan)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        elif is_web_path(scope.get("path", "")):
            await self.web(scope, receive, send)
        else:
            await self.api(scope, receive, send)


def create_app(settings: Settings | None = None) -> Site:
    settings = settings or get_settings()
    return Site(create_api(settings), web.create_app(api_base_url(settings),
                                                     idle_timeout_s=settings.web_session_idle.total_seconds()))


app = create_app()
