"""A credit bureau simulator, run as its own process: `python -m simulators.bureau --port 18091 --data-dir DIR`.

It behaves like a credit bureau's sandbox: it speaks HTTP only (it imports nothing of the bank's) and keeps its
state (the subjects' files it was given, availability, the requests it received) in a JSON file under its data
dir, so it can be stopped and restarted. The bank reaches it through infra/credit_bureau.py.

    GET  /v1/reports/{subject_id}    header `Authorization: Bearer <key>` (BANK_CREDIT_BUREAU_API_KEY):
                                     200 {subject_id, score (300..850), open_credit_lines, defaults,
                                     report_id ("CB-" + hex, new for every request), generated_at (ISO, UTC)}.
                                     A subject without a file set below scores the same every run: 560..800 from
                                     the sha256 of its id, 0..3 open credit lines, no defaults.
                                     401 a wrong or missing key; 404 {"detail": "no file"} for an id that is not
                                     1-64 letters, digits or hyphens; 503 with Retry-After: 1 during an outage.
    PUT  /sandbox/subjects/{id}      {"score": 300..850, "open_credit_lines": >= 0, "defaults": >= 0}: that
                                     subject's file from now on (422 on anything else)
    PUT  /sandbox/config             {"available": false}: every report request answers 503 until set true again
    GET  /sandbox/requests           every report request received, oldest first: {subject_id, report_id (null
                                     unless 200), status, at}; the last REQUESTS_KEPT of them
    GET  /health

The sandbox calls need no key (like the rail's controls): they are the test's and the developer's, not the bank's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header
from fastapi import Path as PathParameter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

log = logging.getLogger("simulators.bureau")
STATE_FILE = "bureau-state.json"
SUBJECT_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
REQUESTS_KEPT = 10_000          # the request log is rewritten with the state on every request: bounded
NEW_SUBJECT_SCORES = (560, 800)


class SubjectFile(BaseModel):
    score: int = Field(ge=300, le=850)
    open_credit_lines: int = Field(ge=0, le=1000)
    defaults: int = Field(ge=0, le=1000)


class Config(BaseModel):
    available: bool


def derived_file(subject_id: str) -> dict[str, int]:
    """The file of a subject nobody set: the same for the same id on every run and every machine."""
    digest = hashlib.sha256(subject_id.encode()).digest()
    low, high = NEW_SUBJECT_SCORES
    score = low + int.from_bytes(digest[:4], "big") % (high - low + 1)
    return {"score": score, "open_credit_lines": digest[4] % 4, "defaults": 0}


class Bureau:
    """The bureau's state: the subjects' files set through the sandbox, availability, the requests received."""

    def __init__(self, data_dir: Path, api_key: str) -> None:
        self.path = data_dir / STATE_FILE
        self.api_key = api_key
        self.state: dict[str, Any] = {"subjects": {}, "available": True, "requests": []}
        if self.path.exists():
            self.state.update(json.loads(self.path.read_text()))
        data_dir.mkdir(parents=True, exist_ok=True)

    def save(self) -> None:
        """Atomically: a bureau killed mid-write restarts from the previous state, never a torn file."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)

    def authorized(self, authorization: str | None) -> bool:
        scheme, _, key = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and bool(key) and secrets.compare_digest(key.encode(), self.api_key.encode())

    def report(self, subject_id: str) -> dict[str, Any]:
        known = self.state["subjects"].get(subject_id) or derived_file(subject_id)
        return {"subject_id": subject_id, **known, "report_id": f"CB-{uuid.uuid4().hex}",
                "generated_at": datetime.now(UTC).isoformat(timespec="milliseconds")}

    def set_file(self, subject_id: str, file: SubjectFile) -> None:
        self.state["subjects"][subject_id] = file.model_dump()
        self.save()

    def set_available(self, available: bool) -> None:
        self.state["available"] = available
        self.save()

    def record(self, subject_id: str, report_id: str | None, status: int) -> None:
        requests = self.state["requests"]
        requests.append({"subject_id": subject_id, "report_id": report_id, "status": status,
                         "at": datetime.now(UTC).isoformat(timespec="milliseconds")})
        del requests[:-REQUESTS_KEPT]
        self.save()


def create_app(bureau: Bureau) -> FastAPI:
    app = FastAPI(title="bankstream credit bureau simulator")

    def answer(subject_id: str, status: int, body: dict[str, Any], **headers: str) -> JSONResponse:
        bureau.record(subject_id, body.get("report_id"), status)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/reports/{subject_id}")
    async def report(subject_id: str, authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
        # An outage answers before anything is checked: the bureau is not there to check anything.
        if not bureau.state["available"]:
            return answer(subject_id, 503, {"detail": "the bureau is unavailable"}, **{"Retry-After": "1"})
        if not bureau.authorized(authorization):
            return answer(subject_id, 401, {"detail": "invalid api key"}, **{"WWW-Authenticate": "Bearer"})
        if not _valid_subject(subject_id):
            return answer(subject_id, 404, {"detail": "no file"})
        return answer(subject_id, 200, bureau.report(subject_id))

    @app.put("/sandbox/subjects/{subject_id}")
    async def set_subject(subject_id: Annotated[str, PathParameter(pattern=SUBJECT_PATTERN)],
                          file: SubjectFile) -> dict[str, Any]:
        bureau.set_file(subject_id, file)
        return {"subject_id": subject_id, **file.model_dump()}

    @app.put("/sandbox/config")
    async def config(body: Config) -> dict[str, bool]:
        bureau.set_available(body.available)
        return {"available": body.available}

    @app.get("/sandbox/requests")
    async def requests() -> list[dict[str, Any]]:
        return list(bureau.state["requests"])

    return app


def _valid_subject(subject_id: str) -> bool:
    return re.fullmatch(SUBJECT_PATTERN, subject_id) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18091)
    parser.add_argument("--data-dir", type=Path, default=Path(".bank/bureau"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    api_key = os.environ.get("BANK_CREDIT_BUREAU_API_KEY", "")
    if not api_key:
        parser.error("BANK_CREDIT_BUREAU_API_KEY must be set: the bank authenticates to the bureau with it")
    bureau = Bureau(args.data_dir, api_key)
    uvicorn.run(create_app(bureau), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
