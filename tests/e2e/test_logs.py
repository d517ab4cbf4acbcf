"""Structured logs: one JSON object per line, and one trace id from the API through the ledger into the projections."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from cli.devstack import Stack
from infra.logs import JsonFormatter, bound, log_each, trace_id_from
from tests.support import Bank, auth_as


@contextmanager
def json_logger(name: str) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines into the StringIO it comes with, for the block."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_a_line_is_one_json_object_with_the_bound_ids() -> None:
    with json_logger("tests.logs") as (logger, stream):
        with bound(trace_id="t-1", command_id="c-1"):
            logger.warning("two\nlines %s", "joined", extra={"event_id": "e-1"})
        logger.warning("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "two\nlines joined" and first["service"] == "test" and first["level"] == "warning"
    assert (first["trace_id"], first["command_id"], first["event_id"]) == ("t-1", "c-1", "e-1")
    assert "trace_id" not in second


def test_log_each_writes_one_json_line_per_item_from_one_record() -> None:
    with json_logger("tests.logs.each") as (logger, stream):
        logger.setLevel(logging.INFO)
        with bound(trace_id="t-batch"):
            log_each(logger, "command decided", [{"command_id": "c-1", "outcome": "accepted"},
                                                 {"command_id": "c-2", "outcome": "rejected", "trace_id": "t-2"}])
            log_each(logger, "nothing decided", [])
        logger.setLevel(logging.WARNING)
        log_each(logger, "below the level", [{"command_id": "c-3"}])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["msg"], x["command_id"], x["outcome"], x["trace_id"]) for x in lines] == [
        ("command decided", "c-1", "accepted", "t-batch"), ("command decided", "c-2", "rejected", "t-2")]
    assert all(x["level"] == "info" and x["service"] == "test" and "_log_each" not in x for x in lines)


def test_traceparent_parsing() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_from(f"00-{trace}-00f067aa0ba902b7-01") == trace
    for bad in (None, "", "garbage", f"00-{'0' * 32}-00f067aa0ba902b7-01", f"00-{trace}-short-01"):
        assert trace_id_from(bad) is None


def _json_lines_with(path: Path, trace: str) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if trace in line:
            lines.append(json.loads(line))   # every line that mentions the trace must be JSON
    return lines


def test_one_trace_id_follows_a_command_from_the_api_into_the_read_models(stack: Stack, api_url: str) -> None:
    spec = stack.projector_spec(1)
    stack.kill("projector-1")
    stack.start(dataclasses.replace(spec, env=spec.env | {"BANK_LOG_LEVEL": "DEBUG"}))  # per-event lines
    try:
        trace = "0af7651916cd43dd8448eb211c80319c"
        account = asyncio.run(_open(api_url))
        response = httpx.post(f"{api_url}/v1/accounts/{account}/deposits", params={"wait": "true"},
                              json={"amount": "3.00", "currency": "EUR"}, timeout=60, auth=auth_as("teller"),
                              headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01",
                                       "Idempotency-Key": f"trace-{trace}"})
        assert response.status_code == 200 and response.headers["Bank-Trace-Id"] == trace
        command_id = response.json()["command_id"]
        event_id = response.json()["events"][0]["event_id"]
        logs = {name: stack.children[name].log_path for name in ("api", "worker-1", "projector-1")}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = {name: _json_lines_with(path, trace) for name, path in logs.items()}
            if len([x for x in found["projector-1"] if x["msg"] == "event applied"]) >= 3:
                break
            time.sleep(0.3)
        assert [x["command_id"] for x in found["api"] if x["msg"] == "command accepted onto the log"] == [command_id]
        decided = [x for x in found["worker-1"] if x["msg"] == "command decided"]
        assert [(x["command_id"], x["outcome"], x["event_ids"]) for x in decided] == [
            (command_id, "accepted", [event_id])]
        applied = [x for x in found["projector-1"] if x["msg"] == "event applied"]
        assert sorted(x["projection"] for x in applied) == ["mongo", "postgres", "redis"]
        assert {x["event_id"] for x in applied} == {event_id}
        assert all(x["service"] in {"api", "ledger-worker", "projector"} for xs in found.values() for x in xs)
    finally:
        stack.kill("projector-1")
        stack.start_projector(1)


async def _open(api_url: str) -> str:
    bank = Bank(api_url)
    try:
        return await bank.open()
    finally:
        await bank.close()
