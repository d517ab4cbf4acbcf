"""The embedded dev stack really serves Kafka, PostgreSQL, Redis and MongoDB, stops cleanly and keeps its data."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient

from cli.devstack import Stack, free_port
from cli.migrate import migrate_sync
from cli.topics import apply_topics_sync
from core.settings import Settings
from core.topics import parse_registry, with_replication
from infra.topics import load_registry
from infra.kafka import seek_to_beginning

pytestmark = pytest.mark.timeout(300)


def _infra_settings(home: Path) -> Settings:
    return Settings(home=home, kafka_port=free_port(), pg_port=free_port(), redis_port=free_port(),
                    mongo_port=free_port(), kafka_bootstrap=None, pg_dsn=None, redis_url=None, mongo_url=None)


async def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k", partition=0)
    finally:
        await producer.stop()


async def _consume_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await seek_to_beginning(consumer, [tp])
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            values += [record.value for record in batch.get(tp, [])]
        return values
    finally:
        await consumer.stop()


async def _pg(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _redis_ping(url: str) -> bool:
    client = aioredis.from_url(url)
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()


async def _mongo_roundtrip(url: str, doc_id: str) -> dict[str, object] | None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    try:
        coll = client["bank_test"]["things"]
        await coll.insert_one({"_id": doc_id, "n": 1})
        return await coll.find_one({"_id": doc_id})
    finally:
        await client.close()


def _no_process_uses(home: Path, pids: list[int]) -> list[str]:
    leftovers = [f"pid {pid}" for pid in pids if psutil.pid_exists(pid)
                 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if str(home) in " ".join(proc.info["cmdline"] or []):
            leftovers.append(f"pid {proc.info['pid']}: {' '.join(proc.info['cmdline'])}")
    return leftovers


def test_infra_serves_stops_clean_and_keeps_data(bank_home_factory: Callable[[], Path]) -> None:
    home = bank_home_factory()
    settings = _infra_settings(home)
    topic, marker = "devstack.check", uuid.uuid4().hex.encode()

    with Stack(settings) as stack:
        assert stack.start_infra() == ["kafka", "pg", "redis", "mongo"]
        pids = list(stack.pids().values())
        asyncio.run(_produce(settings.kafka, topic, marker))
        assert marker in asyncio.run(_consume_all(settings.kafka, topic))
        assert asyncio.run(_pg(settings.pg, "SELECT 1")) == 1
        asyncio.run(_pg(settings.pg, "CREATE TABLE kept_across_restarts (id int primary key)"))
        assert asyncio.run(_redis_ping(settings.redis))
        assert asyncio.run(_mongo_roundtrip(settings.mongo, "doc-1")) == {"_id": "doc-1", "n": 1}
    assert _no_process_uses(home, pids) == []
    assert (home / "logs" / "kafka.log").exists()

    with Stack(settings) as stack:
        stack.start_infra()
        pids = list(stack.pids().values())
        assert marker in asyncio.run(_consume_all(settings.kafka, topic))
        assert asyncio.run(_pg(settings.pg, "SELECT to_regclass('kept_across_restarts')::text")) == "kept_across_restarts"
    assert _no_process_uses(home, pids) == []


def test_topic_replication_setting_overrides_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BANK_TOPIC_REPLICATION", raising=False)
    default = Settings()
    assert default.topic_replication is None
    from_yaml = load_registry(default.topics_file, default.topic_replication)
    assert {spec.replication for spec in from_yaml.values()} == {1}  # topics.yaml's default

    monkeypatch.setenv("BANK_TOPIC_REPLICATION", "3")
    settings = Settings()
    assert settings.topic_replication == 3
    overridden = load_registry(settings.topics_file, settings.topic_replication)
    assert set(overridden) == set(from_yaml)
    assert {spec.replication for spec in overridden.values()} == {3}
    for name, spec in overridden.items():  # only the replication changes
        assert spec.__dict__ == {**from_yaml[name].__dict__, "replication": 3}
    assert {spec.replication for spec in load_registry(settings.topics_file).values()} == {1}  # cache untouched

    monkeypatch.setenv("BANK_TOPIC_REPLICATION", "0")
    with pytest.raises(ValueError):
        Settings()


def test_topics_and_migrations_are_idempotent_and_report_drift(kafka_bootstrap: str, pg_dsn: str) -> None:
    registry = parse_registry(Path(Settings().topics_file).read_text())
    first = apply_topics_sync(kafka_bootstrap, registry)
    assert first.ok
    second = apply_topics_sync(kafka_bootstrap, registry)
    assert {r.status for r in second.results} == {"ok"}

    name = next(iter(registry))
    spec = registry[name]
    changed = type(spec)(**{**spec.__dict__, "partitions": spec.partitions + 1, "retention_ms": 1234})
    drift = apply_topics_sync(kafka_bootstrap, {name: changed})
    assert [r.status for r in drift.results] == ["drift"]
    assert any("partitions" in d for d in drift.results[0].details)
    assert any("retention.ms" in d for d in drift.results[0].details)
    assert apply_topics_sync(kafka_bootstrap, {name: spec}).results[0].status == "ok"  # nothing was changed
    # The effective replication (BANK_TOPIC_REPLICATION) is compared too: the single broker has 1 replica.
    wider = apply_topics_sync(kafka_bootstrap, with_replication({name: spec}, spec.replication + 2))
    assert [r.status for r in wider.results] == ["drift"]
    assert wider.results[0].details == [f"replication: broker has {spec.replication}, "
                                        f"registry wants {spec.replication + 2}"]

    assert migrate_sync(pg_dsn) == []  # the fixture already applied everything
    assert asyncio.run(_pg(pg_dsn, "SELECT count(*) FROM schema_migrations")) >= 1
    assert asyncio.run(_pg(pg_dsn, "SELECT to_regclass('api_idempotency')::text")) == "api_idempotency"
