"""Every process serves /metrics with the platform's series, and `bank lag` sees a stopped projection fall behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.devstack import Stack
from cli.lag import collect, platform_groups
from core.readmodel import consumer_group
from core.settings import PROJECT_ROOT, Settings
from tests.support.readmodels import wait_caught_up
from tests.support import Bank

pytestmark = pytest.mark.usefixtures("stack")


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)] of one /metrics page."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for ls, v in samples.get(name, []) if all(ls.get(k) == want for k, want in labels.items()))


def test_every_process_exports_its_metrics(stack: Stack, api_url: str) -> None:
    async def traffic() -> None:
        bank = Bank(api_url)
        try:
            a, b = await bank.open(), await bank.open()
            await bank.deposit(a, "10.00")
            await bank.transfer(a, b, "4.00")
            assert (await bank.withdraw(b, "999.00")).status_code == 422
            await bank.account(a)
        finally:
            await bank.close()

    asyncio.run(traffic())
    api = scrape(f"{api_url}/metrics")
    assert total(api, "bank_http_requests_total", route="/v1/accounts/{account_id}", status="200") >= 1
    assert total(api, "bank_http_request_duration_seconds_count", route="/v1/transfers") >= 1
    assert total(api, "bank_api_commands_total", type="Withdraw", outcome="rejected") >= 1
    assert not any(ls.get("route", "").count("-") > 3 for ls, _ in api["bank_http_requests_total"]), \
        "raw paths leaked into the route label"
    worker = scrape(stack.urls()["worker-1"] + "/metrics")
    assert total(worker, "bank_ledger_commands_total", type="Transfer", outcome="accepted") >= 1
    assert total(worker, "bank_ledger_commands_total", type="Withdraw", outcome="rejected") >= 1
    assert total(worker, "bank_ledger_command_latency_seconds_count", type="Deposit") >= 1
    assert total(worker, "bank_agent_messages_processed_total", agent="saga") >= 1
    assert "bank_saga_transfers_in_flight" in worker
    assert total(worker, "bank_remembered_ids", table="commands") >= 1   # the ids the retention window keeps
    projector = scrape(stack.urls()["projector-1"] + "/metrics")
    for name in ("postgres", "redis", "mongo"):
        assert total(projector, "bank_projection_events_applied_total", projection=name) >= 1
        assert total(projector, "bank_projection_batch_events_count", projection=name) >= 1
    deadline = time.monotonic() + 30   # the exporter collects every 2 s in the dev stack
    while not total(exporter := scrape(stack.urls()["lag-exporter"]), "bank_topic_end_offset",
                    topic="bank.ledger.events") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert total(exporter, "bank_topic_end_offset", topic="bank.ledger.events") >= 1
    groups = {ls["group"] for ls, _ in exporter.get("bank_consumer_lag_messages", [])}
    assert groups == {"bankstream-ledger-workers", *(consumer_group(n) for n in ("postgres", "redis", "mongo")),
                      "bankstream-audit-trail", "bankstream-notifier"}


def _lag_of(settings: Settings, group: str) -> int:
    rows = asyncio.run(collect(settings.kafka, platform_groups(settings)))
    return sum(r.lag for r in rows if r.group == group)


def test_bank_lag_grows_while_a_projection_is_stopped_and_returns_to_zero(
        stack: Stack, api_url: str, kafka_bootstrap: str, pg_dsn: str, redis_url: str, mongo_url: str) -> None:
    settings = stack.settings
    group = consumer_group("postgres")
    asyncio.run(wait_caught_up(kafka_bootstrap, pg_dsn, redis_url, mongo_url))
    stack.kill("projector-1")   # a clean stop: its offsets are committed
    try:
        before = _lag_of(settings, group)

        async def traffic() -> None:
            bank = Bank(api_url)
            try:
                account = await bank.open()
                for _ in range(5):
                    deposit = await bank.deposit(account, "1.00")
                # A position on the log that the stopped projection has not reached: a clear 503, after the wait.
                response = await bank.http.get(f"/v1/accounts/{account}/transactions",
                                               params={"min_position": deposit.json()["position"]})
                assert response.status_code == 503 and response.json()["reason"] == "read_model_behind"
                assert response.headers["Retry-After"] == "1"
            finally:
                await bank.close()

        asyncio.run(traffic())
        assert _lag_of(settings, group) >= before + 6   # an AccountOpened and five deposits, at least
        env = dict(os.environ) | {"COLUMNS": "200"}
        shown = subprocess.run([sys.executable, "-m", "cli.main", "lag"], cwd=PROJECT_ROOT, env=env, text=True,
                               capture_output=True, timeout=120, check=False)
        assert shown.returncode == 0, shown.stderr
        assert group in shown.stdout and "total lag:" in shown.stdout
    finally:
        stack.start_projector(1)
    deadline = time.monotonic() + 60
    while _lag_of(settings, group) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _lag_of(settings, group) == 0
