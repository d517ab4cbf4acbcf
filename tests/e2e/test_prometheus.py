"""Prometheus of the dev stack (`bank up --with-prometheus`, Stack.start_prometheus) scrapes every process.

The live test runs the system's `prometheus` binary (Debian's package, installed by scripts/setup) against the
session's stack, sends traffic through the API and asks Prometheus' HTTP API what it scraped: every target up,
ledger commands by outcome, consumer lag of every group, HTTP request rates, and the alert rules loaded.
Without the binary it is skipped, except in CI (CI set), where it fails.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cli.devstack import ALERT_RULES_FILE, Stack, free_port
from core.readmodel import consumer_group
from core.settings import Settings
from tests.support import Bank, installed

PROJECTIONS = ("postgres", "redis", "mongo")
DEADLINE_SECONDS = 60.0
COMMAND_OUTCOMES = {"accepted", "rejected", "duplicate"}   # streams/metrics.py COMMANDS_DECIDED


def _require_prometheus() -> str:
    return installed("prometheus")


# --- the generated configuration (no server) --------------------------------------------------------------

def test_generated_config_scrapes_every_process_of_the_stack(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, api_host="0.0.0.0", api_port=18000, worker_web_host="127.0.0.1",
                        worker_web_port=16000, workers=2, projection_workers=2, lag_exporter_port=19308,
                        prometheus_port=19090, notifier_web_port=16090)
    stack = Stack(settings)
    path = stack.write_prometheus_config()
    assert path == tmp_path / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(path.read_text())
    assert config["global"]["scrape_interval"] == "2s"
    jobs = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
            for job in config["scrape_configs"]}
    assert jobs == {
        "bankstream-api": ["127.0.0.1:18000"],                            # 0.0.0.0 is scraped on loopback
        "bankstream-worker": ["127.0.0.1:16001", "127.0.0.1:16002"],      # worker_port(n)
        "bankstream-projector": ["127.0.0.1:16003", "127.0.0.1:16004"],   # projector_port(n), after the workers
        "bankstream-lag-exporter": ["127.0.0.1:19308"],
        "bankstream-notifier": ["127.0.0.1:16090"],                       # notifier_web_port
    }
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in config["scrape_configs"])
    if ALERT_RULES_FILE.is_file():
        assert config["rule_files"] == [str(ALERT_RULES_FILE)]
        assert Path(config["rule_files"][0]).is_absolute()
    else:
        assert "rule_files" not in config


def test_prometheus_spec_runs_the_binary_on_the_stack_ports(tmp_path: Path) -> None:
    binary = _require_prometheus()
    port = free_port()
    stack = Stack(Settings(home=tmp_path, prometheus_port=port))
    spec = stack.prometheus_spec()
    assert spec.name == "prometheus" and spec.port == port and spec.host == "127.0.0.1"
    assert spec.argv == [binary, f"--config.file={tmp_path / 'prometheus' / 'prometheus.yml'}",
                         f"--storage.tsdb.path={tmp_path / 'data' / 'prometheus'}",
                         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"]
    assert spec.ready is not None and spec.ready() is False   # nothing answers /-/ready on that port
    assert stack.urls()["prometheus"] == f"http://127.0.0.1:{port}"
    promtool = shutil.which("promtool")
    if promtool:   # the generated file (and the rule file it loads) is what Prometheus accepts
        checked = subprocess.run([promtool, "check", "config", str(stack.prometheus_config_path)],
                                 capture_output=True, text=True, timeout=60, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr


# --- Prometheus scraping the session's running stack ------------------------------------------------------

@pytest.fixture(scope="module")
def prometheus_url(stack: Stack) -> Iterator[str]:
    _require_prometheus()
    stack.start_prometheus()
    try:
        yield stack.prometheus_url
    finally:
        stack.kill("prometheus")
        stack.forget("prometheus")


@dataclass
class Observed:
    """What Prometheus reports at one moment."""

    targets: dict[tuple[str, str], str] = field(default_factory=dict)   # (job, instance) -> health
    command_rate: float = 0.0
    outcomes: set[str] = field(default_factory=set)
    lag_groups: set[str] = field(default_factory=set)
    http_rate: float = 0.0
    rule_groups: dict[str, dict[str, Any]] = field(default_factory=dict)   # name -> {file, rules, health}


async def _query(prom: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    response = await prom.get("/api/v1/query", params={"query": expr})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _scalar(result: list[dict[str, Any]]) -> float:
    return float(result[0]["value"][1]) if result else 0.0


async def _observe(prom: httpx.AsyncClient) -> Observed:
    seen = Observed()
    targets = (await prom.get("/api/v1/targets", params={"state": "active"})).json()["data"]["activeTargets"]
    seen.targets = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets}
    seen.command_rate = _scalar(await _query(prom, "sum(rate(bank_ledger_commands_total[30s]))"))
    seen.outcomes = {r["metric"].get("outcome", "") for r in
                     await _query(prom, "sum by (outcome) (bank_ledger_commands_total)")}
    seen.lag_groups = {r["metric"].get("group", "") for r in
                       await _query(prom, "count by (group) (bank_consumer_lag_messages)")}
    seen.http_rate = _scalar(await _query(prom, "sum(rate(bank_http_requests_total[30s]))"))
    groups = (await prom.get("/api/v1/rules")).json()["data"]["groups"]
    seen.rule_groups = {g["name"]: {"file": g["file"], "rules": [r["name"] for r in g["rules"]],
                                    "health": {r["health"] for r in g["rules"]}} for g in groups}
    return seen


def _expected_rule_groups() -> dict[str, list[str]]:
    if not ALERT_RULES_FILE.is_file():
        return {}
    rules = yaml.safe_load(ALERT_RULES_FILE.read_text())
    return {g["name"]: [r.get("alert") or r.get("record") for r in g["rules"]] for g in rules["groups"]}


def _unmet(seen: Observed, expected_targets: set[tuple[str, str]], expected_groups: set[str],
           expected_rules: dict[str, list[str]]) -> list[str]:
    unmet = []
    if set(seen.targets) != expected_targets:
        unmet.append(f"targets {sorted(seen.targets)} != {sorted(expected_targets)}")
    if down := {t: h for t, h in seen.targets.items() if h != "up"}:
        unmet.append(f"targets not up: {down}")
    if not seen.command_rate > 0:
        unmet.append(f"sum(rate(bank_ledger_commands_total[30s])) = {seen.command_rate}")
    if not {"accepted", "rejected"} <= seen.outcomes <= COMMAND_OUTCOMES:
        unmet.append(f"command outcomes {sorted(seen.outcomes)}")
    if seen.lag_groups != expected_groups:
        unmet.append(f"bank_consumer_lag_messages groups {sorted(seen.lag_groups)} != {sorted(expected_groups)}")
    if not seen.http_rate > 0:
        unmet.append(f"sum(rate(bank_http_requests_total[30s])) = {seen.http_rate}")
    rules = {name: g["rules"] for name, g in seen.rule_groups.items()}
    if rules != expected_rules:
        unmet.append(f"rule groups {rules} != {expected_rules}")
    if any(g["file"] != str(ALERT_RULES_FILE) for g in seen.rule_groups.values()):
        unmet.append(f"rule files {sorted({g['file'] for g in seen.rule_groups.values()})}")
    if bad := {name: g["health"] for name, g in seen.rule_groups.items() if g["health"] != {"ok"}}:
        unmet.append(f"rules not evaluated ok yet: {bad}")   # "unknown" until their first evaluation
    return unmet


async def _traffic(bank: Bank, a: str, b: str) -> None:
    """One round: accepted deposit and transfer, a rejected withdrawal, a query."""
    assert (await bank.deposit(a, "2.00")).status_code == 200
    assert (await bank.transfer(a, b, "1.00")).status_code == 200
    rejected = await bank.withdraw(b, "999999.00")
    assert rejected.status_code == 422, rejected.text
    await bank.account(a)


def test_prometheus_scrapes_the_running_stack(stack: Stack, api_url: str, prometheus_url: str) -> None:
    s = stack.settings
    expected_targets = {("bankstream-api", f"127.0.0.1:{s.api_port}"),
                        ("bankstream-lag-exporter", f"127.0.0.1:{s.lag_exporter_port}"),
                        ("bankstream-notifier", f"127.0.0.1:{s.notifier_web_port}")}
    expected_targets |= {("bankstream-worker", f"127.0.0.1:{stack.worker_port(n)}") for n in range(1, s.workers + 1)}
    expected_targets |= {("bankstream-projector", f"127.0.0.1:{stack.projector_port(n)}")
                         for n in range(1, s.projection_workers + 1)}
    expected_groups = {"bankstream-ledger-workers", *(consumer_group(name) for name in PROJECTIONS), "bankstream-audit-trail",
                       "bankstream-notifier"}
    assert s.app_id == "bankstream-ledger"
    expected_rules = _expected_rule_groups()

    async def scenario() -> tuple[Observed, list[str]]:
        bank = Bank(api_url)
        prom = httpx.AsyncClient(base_url=prometheus_url, timeout=10)
        try:
            a, b = await bank.open(), await bank.open()
            deadline = time.monotonic() + DEADLINE_SECONDS
            while True:
                # Traffic in every round: a counter's first scrape is its baseline, so a rate needs
                # increments after Prometheus has seen the series once.
                await _traffic(bank, a, b)
                seen = await _observe(prom)
                unmet = _unmet(seen, expected_targets, expected_groups, expected_rules)
                if not unmet or time.monotonic() > deadline:
                    return seen, unmet
                await asyncio.sleep(1.0)
        finally:
            await prom.aclose()
            await bank.close()

    seen, unmet = asyncio.run(scenario())
    assert not unmet, f"after {DEADLINE_SECONDS:.0f}s Prometheus still reports: " + "; ".join(unmet)
    assert set(seen.targets) == expected_targets and set(seen.targets.values()) == {"up"}
    assert {"accepted", "rejected"} <= seen.outcomes
    assert seen.lag_groups == expected_groups
    assert seen.command_rate > 0 and seen.http_rate > 0
    if ALERT_RULES_FILE.is_file():
        assert set(seen.rule_groups) == set(expected_rules) and expected_rules
    else:
        assert seen.rule_groups == {}
