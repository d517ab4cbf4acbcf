"""Projections as operators run them: re-delivery, kill -9, rebuild with swap, status, parked events."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import fastavro
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from cli.devstack import Stack, free_port
from cli.migrate import migrate_sync
from cli.topics import apply_topics_sync
from core import events as e
from core.commands import COMMAND_TYPES
from core.events import EVENT_TYPES
from core.invariants import compare_models
from core.readmodel import (MONGO_DB, MONGO_META, PG_SCHEMA, PROJECTIONS, REDIS_LIVE,
                            mongo_collection, redis_account_key, redis_offsets_key)
from core.settings import PROJECT_ROOT, Settings
from core.topics import LEDGER_EVENTS
from infra.producer import create_producer
from infra.topics import load_registry
from schemas.codec import HEADER_SCHEMA, Codec, current_schemas, get_codec, read_schema_ids
from streams.projections import create_store
from streams.projections.admin import retry_parked
from tests.support.load import bounded, open_accounts, random_commands
from tests.support.readmodels import (dump_all, live_dump, mongo_dump, mongo_live, rebuilt_dump, redis_live, wait_caught_up)
from tests.support import Bank, auth_as, settled_audit

REWIND = 5
PARKED = {"postgres": 3, "redis": 3, "mongo": 2}   # by the poison test, see there


def _bank_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {"COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=PROJECT_ROOT, env=env, text=True,
                          capture_output=True, timeout=600, check=False)


async def _rewind_every_store(pg: str, redis: str, mongo: str, by: int) -> None:
    """Move each live model's stored offsets back by `by` per partition, as an operator replaying would."""
    conn = await asyncpg.connect(pg)
    try:
        await conn.execute(f"UPDATE {PG_SCHEMA}.offsets SET next_offset = greatest(0, next_offset - $1)", by)
    finally:
        await conn.close()
    client = Redis.from_url(redis, decode_responses=True)
    try:
        key = redis_offsets_key(int(await client.get(REDIS_LIVE) or 1))
        for partition, offset in (await client.hgetall(key)).items():
            await client.hset(key, partition, max(0, int(offset) - by))
    finally:
        await client.aclose()
    mongo_client: AsyncMongoClient = AsyncMongoClient(mongo)
    try:
        db = mongo_client[MONGO_DB]
        generation = int((await db[MONGO_META].find_one({"_id": "mongo"}))["live"])
        offsets = db[mongo_collection("offsets", generation)]
        for doc in await offsets.find({}).to_list():
            await offsets.update_one({"_id": doc["_id"]}, {"$set": {"next_offset": max(0, doc["next_offset"] - by)}})
    finally:
        await mongo_client.close()


async def _traffic(api_url: str, commands: int, seed: int) -> set[str]:
    bank = Bank(api_url)
    try:
        accounts = await open_accounts(bank, 12)
        return (await random_commands(bank, accounts, count=commands, seed=seed)).command_ids
    finally:
        await bank.close()


def test_redelivered_events_change_nothing(stack: Stack, api_url: str, kafka_bootstrap: str, pg_dsn: str,
                                           redis_url: str, mongo_url: str) -> None:
    async def scenario() -> None:
        await settled_audit(kafka_bootstrap, await _traffic(api_url, 200, seed=31))
        await wait_caught_up(kafka_bootstrap, pg_dsn, redis_url, mongo_url)
        before = await dump_all(pg_dsn, redis_url, mongo_url)
        log_path = stack.children["projector-1"].log_path

        def rereads() -> dict[str, int]:
            text = log_path.read_text()
            return {name: text.count(f"projection {name}: partition") for name in ("postgres", "redis", "mongo")}

        before_rewind = rereads()
        await _rewind_every_store(pg_dsn, redis_url, mongo_url, REWIND)
        await wait_caught_up(kafka_bootstrap, pg_dsn, redis_url, mongo_url)
        after = rereads()   # each projection noticed its rewound offsets and read those events again
        assert all(after[name] > before_rewind[name] for name in after), (before_rewind, after)
        assert await dump_all(pg_dsn, redis_url, mongo_url) == before

    asyncio.run(scenario())


# On demand (BANK_SLOW_TESTS=1): in CI, test_chaos kills the projection worker under load and checks every live model
# against a fresh rebuild; this one kills it twice, on the session's whole log.
@pytest.mark.slow
def test_projection_worker_killed_mid_batch_loses_and_duplicates_nothing(
        stack: Stack, api_url: str, kafka_bootstrap: str, pg_dsn: str, redis_url: str, mongo_url: str) -> None:
    """kill -9 the projection worker twice under load; afterwards every live model equals a fresh rebuild."""
    async def scenario() -> None:
        load = asyncio.create_task(_traffic(api_url, bounded(1500), seed=47))
        for _ in range(2):
            await asyncio.sleep(1.5)
            assert not load.done(), "the kill must land while events are flowing"
            assert stack.kill("projector-1", signal.SIGKILL) == -signal.SIGKILL
            await asyncio.to_thread(stack.start_projector, 1)
        await settled_audit(kafka_bootstrap, await load, timeout=120)
        await wait_caught_up(kafka_bootstrap, pg_dsn, redis_url, mongo_url)
        settings = Settings()
        live = {name: await live_dump(name, settings) for name in PROJECTIONS}
        rebuilt = {name: await rebuilt_dump(name, settings, kafka_bootstrap) for name in PROJECTIONS}
        for name in PROJECTIONS:
            assert live[name] == rebuilt[name][1], compare_models(name, live[name], rebuilt[name][1]).problems
        assert len(live["postgres"]["transactions"]) > bounded(1500) // 3
        assert len(live["mongo"]["audit"]) == rebuilt["mongo"][0].events

    asyncio.run(scenario())


def test_rebuild_swaps_in_an_equal_model_while_queries_keep_working(
        stack: Stack, api_url: str, kafka_bootstrap: str, pg_dsn: str, redis_url: str, mongo_url: str) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        account = await bank.open()
        await bank.deposit(account, "12.00")
        await wait_caught_up(kafka_bootstrap, pg_dsn, redis_url, mongo_url)
        before = await dump_all(pg_dsn, redis_url, mongo_url)
        generations = (await redis_live(redis_url), await mongo_live(mongo_url))
        done = asyncio.Event()
        statuses: list[int] = []

        async def keep_querying() -> None:
            async with httpx.AsyncClient(base_url=api_url, timeout=30, auth=auth_as("teller")) as http:
                while not done.is_set():
                    for path in (f"/v1/accounts/{account}", f"/v1/accounts/{account}/transactions",
                                 f"/v1/audit?account_id={account}"):
                        response = await http.get(path)
                        statuses.append(response.status_code)
                        if path == f"/v1/accounts/{account}":
                            assert response.json()["balance"] == "12.00"

        readers = asyncio.create_task(keep_querying())
        try:
            result = await asyncio.to_thread(_bank_cli, "projections", "rebuild", "all")
        finally:
            done.set()
            await readers
            await bank.close()
        assert result.returncode == 0, result.stdout + result.stderr
        for name in ("postgres", "redis", "mongo"):
            assert f"✓ {name}:" in result.stdout and "events/s" in result.stdout, result.stdout
        assert set(statuses) == {200} and len(statuses) > 3
        assert await redis_live(redis_url) > generations[0] and await mongo_live(mongo_url) > generations[1]
        await wait_caught_up(kafka_bootstrap, pg_dsn, redis_url, mongo_url)
        assert await dump_all(pg_dsn, redis_url, mongo_url) == before
        # and the live projection goes on writing into the swapped-in models
        bank = Bank(api_url)
        try:
            await bank.deposit(account, "1.00")
            assert (await bank.account(account))["balance"] == "13.00"
            items = (await bank.get(f"/v1/accounts/{account}/transactions")).json()["items"]
            assert [i["amount"] for i in items] == ["1.00", "12.00"]
        finally:
            await bank.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- poison events, on a stack of their own


@pytest.fixture(scope="module")
def projector_only(bank_home_factory: Any) -> Iterator[Stack]:
    """Broker, databases and one projection worker, no ledger: the test writes the event log itself."""
    base = free_port() - 1
    settings = Settings(home=bank_home_factory(), kafka_port=free_port(), pg_port=free_port(),
                        redis_port=free_port(), mongo_port=free_port(), api_port=free_port(),
                        worker_web_port=base, workers=0, kafka_bootstrap=None, pg_dsn=None, redis_url=None,
                        mongo_url=None)
    stack = Stack(settings)
    try:
        stack.start_infra()
        assert apply_topics_sync(settings.kafka, load_registry(settings.topics_file, settings.topic_replication)).ok
        migrate_sync(settings.pg, settings.migrations_dir)
        stack.start_projector(1)
        yield stack
    finally:
        stack.stop()


def _future_deposit_schema() -> dict[str, Any]:
    """FundsDeposited as a later release might write it: one more field, unknown to this projection."""
    schema = json.loads(json.dumps(current_schemas()["FundsDeposited"]))
    schema["fields"].append({"name": "channel", "type": "string", "default": "branch"})
    schema["bankstream_version"] = schema.get("bankstream_version", 1) + 1
    return schema


def _history(account: str, customer: str, amounts: list[int]) -> list[e.Event]:
    now = datetime.now(UTC)
    base = {"command_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()), "account_id": account,
            "occurred_at": now}
    events: list[e.Event] = [e.AccountOpened(**base, event_id=str(uuid.uuid4()), sequence=1, customer_id=customer,
                                             currency="EUR", overdraft_limit=0)]
    balance = 0
    for n, amount in enumerate(amounts, start=2):
        balance += amount
        events.append(e.FundsDeposited(**base, event_id=str(uuid.uuid4()), sequence=n, amount=amount,
                                       currency="EUR", balance_after=balance))
    return events


FUTURE_SCHEMA_ID = 9999   # the id a newer release gave its newer FundsDeposited


def _written_by_a_newer_release(event: e.Event, schema: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    buffer = io.BytesIO(b"\x00" + FUTURE_SCHEMA_ID.to_bytes(4, "big"))
    buffer.seek(0, io.SEEK_END)
    record = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)} | {"channel": "app"}
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue(), [(HEADER_SCHEMA, b"FundsDeposited")]


def _cli_for(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | Stack(settings).child_env()
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=PROJECT_ROOT, env=env, text=True,
                          capture_output=True, timeout=120, check=False)


def test_poison_events_are_parked_shown_and_retried(projector_only: Stack) -> None:
    settings = projector_only.settings
    future_schema = _future_deposit_schema()
    # The codec of a release that knows the newer schema (as `bank projections retry` would run after a deploy).
    ids = read_schema_ids()
    upgraded = Codec({**COMMAND_TYPES, **EVENT_TYPES}, history={"FundsDeposited.v99": future_schema},
                     ids=ids | {"FundsDeposited": {**ids["FundsDeposited"], "99": FUTURE_SCHEMA_ID}})

    async def scenario() -> None:
        poisoned, healthy = f"acct-{uuid.uuid4().hex[:8]}", f"acct-{uuid.uuid4().hex[:8]}"
        x = _history(poisoned, "cust-p", [1000, 250, 40])  # the 250 deposit (sequence 3) comes from a newer release
        y = _history(healthy, "cust-h", [500])
        producer = create_producer(settings.kafka)
        await producer.start()
        try:
            for event in x + y:
                value, headers = get_codec().encode(event)
                if event.account_id == poisoned and event.sequence == 3:
                    value, headers = _written_by_a_newer_release(event, future_schema)
                await producer.send_and_wait(LEDGER_EVENTS, value, key=event.account_id.encode(), headers=headers)
            await producer.send_and_wait(LEDGER_EVENTS, b"\x00garbage", key=healthy.encode(), headers=[])
        finally:
            await producer.stop()
        await wait_caught_up(settings.kafka, settings.pg, settings.redis, settings.mongo)
        for name in ("postgres", "redis", "mongo"):
            store = create_store(name, settings)
            await store.open()
            try:
                reasons = sorted(p.reason for p in await store.parked())
            finally:
                await store.close()
            # The newer schema, the garbage and, where the model folds account state (not in the audit log,
            # whose documents stand alone), the next event of that account, which must wait for its predecessor.
            assert len(reasons) == PARKED[name], (name, reasons)
            assert any(f"unknown schema id {FUTURE_SCHEMA_ID}" in r for r in reasons), reasons
            assert any(f"unknown schema id {int.from_bytes(b'garb', 'big')}" in r for r in reasons), reasons
        conn = await asyncpg.connect(settings.pg)
        try:
            balances = dict(await conn.fetch(f"SELECT account_id, balance FROM {PG_SCHEMA}.accounts"))
        finally:
            await conn.close()
        assert balances == {poisoned: 1000, healthy: 500}  # the healthy account went on; the other stops before seq 3
        status = await asyncio.to_thread(_cli_for, settings, "projections", "status", "--json")
        assert status.returncode == 0, status.stderr
        assert {s["projection"]: s["parked"] for s in json.loads(status.stdout)} == PARKED
        for name in ("postgres", "redis", "mongo"):
            report = await retry_parked(create_store(name, settings), codec=upgraded)
            assert (len(report.applied), len(report.still_parked)) == (PARKED[name] - 1, 1), (name, report)
            assert "cannot decode" in report.still_parked[0].reason
        conn = await asyncpg.connect(settings.pg)
        try:
            assert await conn.fetchval(f"SELECT balance FROM {PG_SCHEMA}.accounts WHERE account_id = $1",
                                       poisoned) == 1290
            assert await conn.fetchval(f"SELECT count(*) FROM {PG_SCHEMA}.transactions WHERE account_id = $1",
                                       poisoned) == 3
        finally:
            await conn.close()
        client = Redis.from_url(settings.redis, decode_responses=True)
        try:
            generation = int(await client.get(REDIS_LIVE) or 1)
            assert await client.hget(redis_account_key(generation, poisoned), "balance") == "1290"
        finally:
            await client.aclose()
        audit = (await mongo_dump(settings.mongo))["audit"]
        assert sum(1 for d in audit if d["account_id"] == poisoned) == 4

    asyncio.run(scenario())
