"""Errors as RFC 7807 problem+json documents."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
UNPARSABLE_BODY = "There was an error parsing the body"   # fastapi.routing's detail for an undecodable body

log = logging.getLogger(__name__)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, reason: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.reason, self.extra = status, title, detail, reason, extra
        self.headers: dict[str, str] = {}

    def body(self, instance: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": f"/problems/{self.reason}" if self.reason else "about:blank",
            "title": self.title, "status": self.status, "detail": self.detail, "instance": instance,
        }
        if self.reason:
            doc["reason"] = self.reason
        return doc | self.extra


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    return JSONResponse(problem.body(request.url.path), status_code=problem.status, media_type=PROBLEM_JSON,
                        headers=problem.headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(err.get("loc", ())), "type": err.get("type"), "msg": err.get("msg")} for err in exc.errors()]


_REFUSAL_HOOKS = "bank_refusal_hooks"


def on_refusal(request: Request, undo: Callable[[], Awaitable[None]]) -> None:
    """Have `undo` run if this request ends in a problem: what the route reserved before it refused (an
    idempotency key, say) is given back. `undo` decides for itself whether there is anything to give back."""
    hooks: list[Callable[[], Awaitable[None]]] | None = getattr(request.state, _REFUSAL_HOOKS, None)
    if hooks is None:
        hooks = []
        setattr(request.state, _REFUSAL_HOOKS, hooks)
    hooks.append(undo)


async def _undo_reservations(request: Request) -> None:
    for undo in getattr(request.state, _REFUSAL_HOOKS, ()):
        try:
            await undo()
        except Exception:  # noqa: BLE001 - the refusal is the answer; what was not given back expires
            log.warning("could not give back what %s %s reserved", request.method, request.url.path, exc_info=True)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        await _undo_reservations(request)
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            problem = Problem(400, "Malformed JSON", "the request body is not valid JSON", "malformed_json")
        else:
            first = errors[0]
            where = ".".join(str(p) for p in first["loc"] if p != "body")
            problem = Problem(422, "Invalid request", f"{where}: {first['msg']}" if where else first["msg"],
                              str(first["type"]), errors=errors)
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == UNPARSABLE_BODY:
            # FastAPI's answer to a body it cannot decode at all (e.g. JSON that is not UTF-8): same as bad JSON
            json_body = request.headers.get("content-type", "").split(";")[0].strip().endswith("json")
            problem = (Problem(400, "Malformed JSON", "the request body is not valid JSON (UTF-8)", "malformed_json")
                       if json_body else Problem(400, "Malformed body", "the request body does not parse",
                                                 "malformed_body"))
            return problem_response(problem, request)
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        problem = Problem(exc.status_code, str(exc.detail), str(exc.detail), reason)
        problem.headers = dict(exc.headers or {})
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        return problem_response(Problem(500, "Internal error", "an unexpected error occurred", "internal"), request)
