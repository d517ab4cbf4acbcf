"""An embedded schema registry: the subset of the Confluent Schema Registry REST API that readers use.

    python -m uvicorn --factory schemas.registry_server:create_app --port 18081   (what `bank up` runs)

It serves the project's own schemas (schemas/registry.py: ids from schemas/schema_ids.json, subjects from
topics.yaml), so the ids writers put in messages resolve without any registration step, and answers:

    GET  /subjects                                  GET /schemas/ids/{id}      GET /schemas/types
    GET  /subjects/{subject}/versions               GET /config
    GET  /subjects/{subject}/versions/{version|latest}
    POST /compatibility/subjects/{subject}/versions/{version|latest}   -> {"is_compatible": ...}
    POST /subjects/{subject}/versions               -> {"id": ...}
    PUT  /config/{subject}                          (BACKWARD_TRANSITIVE only)

Compatibility is the project's rule (schemas/compat.py, the one `bank schemas check` and CI enforce): a schema is
compatible when it reads data written with the given version and every version before it (Confluent's
BACKWARD_TRANSITIVE). A registered schema that the files do not have lives in memory until the process stops:
the files, released with `bank schemas release`, are the record.
"""

from __future__ import annotations

import json
from typing import Any

import fastavro
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from infra.topics import load_registry
from schemas.codec import schema_fingerprint
from schemas.compat import incompatibility
from schemas.registry import COMPATIBILITY_LEVEL, MEDIA_TYPE, SchemaCatalog, SchemaVersion


def _answer(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def _error(status: int, code: int, message: str) -> JSONResponse:
    return _answer({"error_code": code, "message": message}, status)


class RegistryApi:
    def __init__(self, catalog: SchemaCatalog) -> None:
        self.catalog = catalog

    async def subjects(self, _request: Request) -> JSONResponse:
        return _answer(sorted(self.catalog.subjects))

    async def versions(self, request: Request) -> JSONResponse:
        subject = request.path_params["subject"]
        if subject not in self.catalog.subjects:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        return _answer(list(range(1, len(self.catalog.subjects[subject]) + 1)))

    async def version(self, request: Request) -> JSONResponse:
        subject, version = request.path_params["subject"], request.path_params["version"]
        if subject not in self.catalog.subjects:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        found = self._subject_version(subject, version)
        if found is None:
            return _error(404, 40402, f"Version {version} not found.")
        number, item = found
        return _answer({"subject": subject, "version": number, "id": item.schema_id, "schema": item.text})

    async def schema_by_id(self, request: Request) -> JSONResponse:
        item = self.catalog.by_id.get(int(request.path_params["schema_id"]))
        if item is None:
            return _error(404, 40403, "Schema not found")
        return _answer({"schema": item.text})

    async def schema_types(self, _request: Request) -> JSONResponse:
        return _answer(["AVRO"])

    async def config(self, _request: Request) -> JSONResponse:
        return _answer({"compatibilityLevel": COMPATIBILITY_LEVEL})

    async def set_config(self, request: Request) -> JSONResponse:
        """Only the project's rule is served: a request for any other level is refused."""
        level = (await request.json()).get("compatibility")
        if level != COMPATIBILITY_LEVEL:
            return _error(422, 42203, f"Only {COMPATIBILITY_LEVEL} compatibility is served here")
        return _answer({"compatibility": level})

    async def compatibility(self, request: Request) -> JSONResponse:
        subject, version = request.path_params["subject"], request.path_params["version"]
        schema = await _posted_schema(request)
        if isinstance(schema, JSONResponse):
            return schema
        if subject not in self.catalog.subjects:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        found = self._subject_version(subject, version)
        if found is None:
            return _error(404, 40402, f"Version {version} not found.")
        problems = self._problems(schema, self.catalog.subjects[subject][: found[0]])
        return _answer({"is_compatible": not problems, "messages": problems})

    async def register(self, request: Request) -> JSONResponse:
        subject = request.path_params["subject"]
        schema = await _posted_schema(request)
        if isinstance(schema, JSONResponse):
            return schema
        versions = self.catalog.subjects.setdefault(subject, [])
        fingerprint = schema_fingerprint(schema)
        same = [item for item in self.catalog.versions if schema_fingerprint(item.schema) == fingerprint]
        if same and same[0] in versions:
            return _answer({"id": same[0].schema_id})
        if problems := self._problems(schema, versions):
            return _error(409, 409, "Schema being registered is incompatible with an earlier schema for subject "
                                    f"'{subject}': {'; '.join(problems)}")
        item = same[0] if same else self._new_version(schema)
        versions.append(item)
        return _answer({"id": item.schema_id})

    def _new_version(self, schema: dict[str, Any]) -> SchemaVersion:
        schema_id = max(self.catalog.by_id, default=0) + 1
        item = SchemaVersion(schema_id, str(schema.get("name", "")), int(schema.get("bankstream_version", 1)), schema)
        self.catalog.versions.append(item)
        self.catalog.by_id[schema_id] = item
        return item

    def _subject_version(self, subject: str, version: str) -> tuple[int, SchemaVersion] | None:
        if version not in ("latest", "-1") and not version.isdigit():
            return None
        return self.catalog.subject_version(subject, version)

    @staticmethod
    def _problems(schema: dict[str, Any], earlier: list[SchemaVersion]) -> list[str]:
        return [f"cannot read version {number} (id {item.schema_id}): {why}"
                for number, item in enumerate(earlier, start=1)
                if (why := incompatibility(schema, item.schema)) is not None]


async def _posted_schema(request: Request) -> dict[str, Any] | JSONResponse:
    """The Avro schema of a request body {"schema": "<json text>"}, parsed, or the registry's 422 answer."""
    try:
        body = await request.json()
        if body.get("schemaType", "AVRO") != "AVRO":
            return _error(422, 42202, "Only AVRO schemas are served here")
        schema = json.loads(body["schema"])
        fastavro.parse_schema(schema, _write_hint=False)
    except Exception as error:  # noqa: BLE001 - any malformed body or schema is the client's error
        return _error(422, 42201, f"Invalid schema: {type(error).__name__}: {error}")
    if not isinstance(schema, dict):
        return _error(422, 42201, "Invalid schema: only record schemas are registered here")
    return schema


def create_app(catalog: SchemaCatalog | None = None) -> Starlette:
    api = RegistryApi(catalog or SchemaCatalog(load_registry()))
    version_path = "/subjects/{subject}/versions/{version}"
    return Starlette(routes=[
        Route("/subjects", api.subjects),
        Route("/subjects/{subject}/versions", api.versions),
        Route("/subjects/{subject}/versions", api.register, methods=["POST"]),
        Route(version_path, api.version),
        Route("/schemas/ids/{schema_id:int}", api.schema_by_id),
        Route("/schemas/types", api.schema_types),
        Route("/config", api.config),
        Route("/config/{subject}", api.config),
        Route("/config/{subject}", api.set_config, methods=["PUT"]),
        Route("/compatibility" + version_path, api.compatibility, methods=["POST"]),
    ])


def create_empty_app() -> Starlette:
    """A registry that knows no schema yet, like a fresh Confluent Schema Registry or Karapace: what
    `bank schemas release --registry URL` fills (tests/integration/test_schema_registry.py)."""
    return create_app(SchemaCatalog(load_registry(), versions=[]))
