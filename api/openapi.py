"""The OpenAPI document tells every answer a route can give, not only the ones its handler writes.

FastAPI documents what a route declares (its response model, its `responses=`). The answers that come from
elsewhere are added here, derived from where they come from, so a new route is documented like the others:

- api/authz.py's policy (POLICIES): 401 without a valid token, 403 for a role (or staff without MFA, or a
  temporary password), 404 for a customer's ownership, 429 for the rate limits, 503 when the session store is
  down or, for commands, in maintenance mode; public routes need no token (`security: []`);
- api/middleware.py's InFlightLimit: 503 on every route but health and metrics when the process is overloaded;
  its RequestGuard: 413 and 415 on every body method, 400 for a body that does not parse;
- dependencies and parameters: `min_position` (400, 422 past the log's end, 503 read model behind, and the
  Bank-Read-* headers), the ledger view (503 while it reads the log), `cursor` (400), `Idempotency-Key` (400).

Every error is RFC 7807 problem+json (api/problems.py): error responses without a schema of their own get the
Problem schema, which also replaces FastAPI's default 422 body (HTTPValidationError), never sent here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from api.authz import POLICIES, Policy
from api.deps import READ_LAG_HEADER, READ_MODEL_HEADER, READ_POSITION_HEADER, get_freshness, get_ready_view
from api.middleware import NEVER_SHED
from api.problems import PROBLEM_JSON

PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 7807 problem details. `reason` is machine-readable; some problems add fields "
                   "(`errors` for invalid requests, `retry_after`, a rejected command's `command_id`, ...).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "reason": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "type": {"type": ["string", "null"]}, "msg": {"type": ["string", "null"]}}}},
    },
    "additionalProperties": True,
}
# For routes that stream CSV (`responses=CSV`): FastAPI documents no body for a StreamingResponse.
CSV: dict[int | str, dict[str, Any]] = {
    200: {"description": "CSV (RFC 4180), a header line first", "content": {"text/csv": {"schema": {"type": "string"}}}}}
_DEFAULT_422 = "#/components/schemas/HTTPValidationError"
_BODY_METHODS = {"post", "put", "patch"}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "required": True,
                                "schema": {"type": "string"}}}
_FRESHNESS_HEADERS = {
    READ_MODEL_HEADER: {"description": "the read model that answered", "required": True, "schema": {"type": "string"}},
    READ_POSITION_HEADER: {"description": "per partition, the offset after the last event it reflects",
                           "required": True, "schema": {"type": "string"}},
    READ_LAG_HEADER: {"description": "events it is behind the head of the log", "required": True,
                      "schema": {"type": "string"}},
}


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the completed document (built once, like FastAPI's own)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            complete(generate(), app.routes)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], routes: Sequence[BaseRoute]) -> dict[str, Any]:
    document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for route in iter_route_contexts(routes):   # routes of included routers too, with their prefixes
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _complete_operation(operation, route, method.lower())
    _drop_unused_validation_schemas(document)
    return document


def _complete_operation(operation: dict[str, Any], route: Any, method: str) -> None:
    policy = POLICIES.get(route.name)
    calls = set(_dependency_calls(route.dependant))
    params = {p.alias for p in route.dependant.query_params} | {p.alias for p in route.dependant.header_params}
    add = _Adder(operation)
    if policy is None:   # refused to everyone (api/authz.py fails closed)
        add(403, "no access policy: nobody may call this route")
    elif policy.public:
        operation["security"] = []
    else:
        _authenticated(add, policy)
    if policy is None or policy.limit != "none":
        add(429, "rate limited (see Retry-After)", _RETRY_AFTER)
        add(503, "the session store is unreachable (`auth_unavailable`); retry later", _RETRY_AFTER)
    if route.path not in NEVER_SHED:
        add(503, "overloaded: the API process has BANK_API_MAX_IN_FLIGHT requests in hand (`overloaded`); retry "
                 "after Retry-After with the same Idempotency-Key", _RETRY_AFTER)
    if method in _BODY_METHODS:
        add(413, "the body is larger than BANK_MAX_BODY_BYTES")
        add(415, "the body is not JSON (the token endpoint: not a form)")
        if route.body_field is not None:
            add(400, "the body does not parse (`malformed_json`)")
    if get_freshness in calls:
        add(400, "`min_position` is not <partition>:<offset>,... (`invalid_position`)")
        add(422, "`min_position` is past the end of the event log (`position_beyond_log`)")
        add(503, "the read model did not reach `min_position` in time (`read_model_behind`)", _RETRY_AFTER)
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                response.setdefault("headers", {}).update(_FRESHNESS_HEADERS)
    if get_ready_view in calls or (policy is not None and policy.own in ("account", "transfer", "command", "iban")):
        add(503, "the API is still reading the ledger at start-up (`not_ready`)", _RETRY_AFTER)
    if "cursor" in params:
        add(400, "`cursor` is not one this API returned (`invalid_cursor`)")
    if "Idempotency-Key" in params:
        add(400, "the Idempotency-Key is not 1..255 printable characters (`invalid_idempotency_key`)")
    for status, response in operation["responses"].items():
        if status[0] in "45":
            _problem_content(response)
    operation["responses"] = dict(sorted(operation["responses"].items()))


def _authenticated(add: _Adder, policy: Policy) -> None:
    add(401, "no valid access token, or its session has ended", {"WWW-Authenticate": {
        "description": "Bearer", "required": True, "schema": {"type": "string"}}})
    if not policy.self_service:
        add(403, "not allowed: the role may not call this route, or the caller must enrol MFA or change a "
                 "temporary password first")
    if policy.own is not None:
        add(404, "not found (for customers, also another customer's resource: it looks the same)")
    if policy.command:
        add(503, "maintenance mode: commands are paused (`maintenance`)", _RETRY_AFTER)


class _Adder:
    """Adds a documented response, or extends the description of one the route already documents."""

    def __init__(self, operation: dict[str, Any]) -> None:
        self.responses: dict[str, Any] = operation.setdefault("responses", {})

    def __call__(self, status: int, description: str, headers: dict[str, Any] | None = None) -> None:
        response = self.responses.get(str(status))
        if response is None:
            self.responses[str(status)] = response = {"description": description}
        elif description not in response.get("description", ""):
            response["description"] = f"{response.get('description', '')}; {description}".lstrip("; ")
        if headers:
            response.setdefault("headers", {}).update(headers)


def _problem_content(response: dict[str, Any]) -> None:
    """problem+json with the Problem schema, unless the route documents a body of its own for this status."""
    content = response.get("content") or {}
    own = {media: body for media, body in content.items() if body.get("schema") and
           body["schema"].get("$ref") != _DEFAULT_422}
    if not own:
        response["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}


def _dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _dependency_calls(sub)


def _drop_unused_validation_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    text = str(document["paths"])
    if _DEFAULT_422 not in text:
        schemas.pop("HTTPValidationError", None)
        if "#/components/schemas/ValidationError" not in str(schemas):
            schemas.pop("ValidationError", None)
