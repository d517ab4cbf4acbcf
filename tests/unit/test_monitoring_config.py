"""Static checks of the monitoring config: Grafana dashboards and Prometheus alert rules against the code.

Every metric a dashboard panel or an alert rule queries must be one the processes export (streams.metrics,
api.metrics, cli.lag.LagExporter) or one Prometheus makes itself (`up`, ...): a renamed metric leaves a
panel empty and an alert silent, and nothing else would notice. promtool checks the rules, runs their
unit tests (prometheus/alerts_test.yml) and parses every dashboard expression.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings
from tests.support import installed

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "prometheus"
ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST_FILE = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DIR = ROOT / "grafana"
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))

# Title -> uid: the uids are what links and bookmarks use, so they must not change.
DASHBOARDS = {"Platform overview": "bankstream-overview", "Consumer lag": "bankstream-consumer-lag",
              "Fraud & AML": "bankstream-fraud-aml", "Read models": "bankstream-read-models"}
DATASOURCE_UID = "prometheus"
ALERTS = {"WorkerDown", "LagExporterDown", "LagExporterStale", "ConsumerLagHigh", "ConsumerLagAgeHigh",
          "DeadLettersAppearing", "ProjectionParkedEvents", "CommandErrorRatioHigh", "NotificationsFailed",
          "NotificationsStuck"}

# Series Prometheus adds for every scrape target.
PROMETHEUS_BUILTINS = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped",
                                 "scrape_samples_post_metric_relabeling", "scrape_series_added"})

# Everything in PromQL that is a word but not a metric: functions, aggregations, operators, keywords.
PROMQL_WORDS = frozenset("""
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max
    clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv exp
    floor histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
    holt_winters hour idelta increase irate label_join label_replace last_over_time ln log10 log2
    mad_over_time max_over_time min_over_time minute month pi predict_linear present_over_time
    quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_desc sqrt stddev_over_time
    stdvar_over_time sum_over_time tan tanh time timestamp vector year
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
    by without on ignoring group_left group_right bool offset and or unless atan2 start end inf nan
""".split())

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_COMMENT = re.compile(r"#[^\n]*")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")                        # [5m], [$__rate_interval], [1h:1m]
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TOKEN = re.compile(r"[0-9][\w.]*|[A-Za-z_:][\w:]*")        # a number or duration, or an identifier


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once strings, comments, label matchers,
    ranges, Grafana variables, grouping label lists, numbers, durations and PromQL words are removed."""
    text = _COMMENT.sub(" ", _STRING.sub('""', expr))
    for pattern in (_MATCHERS, _RANGE, _GRAFANA_VARIABLE, _LABEL_LIST):
        text = pattern.sub(" ", text)
    return {token for token in _TOKEN.findall(text) if not token[0].isdigit() and token.lower() not in PROMQL_WORDS}


def unknown_metrics(expr: str, exported: frozenset[str]) -> set[str]:
    return metric_names(expr) - exported


def _sample_names(name: str, kind: str) -> set[str]:
    """Sample names of a prometheus_client metric family (counter families are named without `_total`)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
                "info": ("_info",)}.get(kind, ("",))
    return {name + suffix for suffix in suffixes}


@pytest.fixture(scope="module")
def exported() -> frozenset[str]:
    import api.metrics  # noqa: F401 - registers the API's metrics on the default registry
    import streams.metrics  # noqa: F401 - registers the workers' metrics on the default registry
    import streams.notifications.metrics  # noqa: F401 - the notifier's
    from prometheus_client import REGISTRY

    from cli.lag import LagExporter

    names = {sample for registry in (REGISTRY, LagExporter(Settings()).registry)
             for family in registry.collect() for sample in _sample_names(family.name, family.type)}
    assert {"bank_ledger_commands_total", "bank_http_request_duration_seconds_bucket",
            "bank_consumer_lag_messages", "bank_lag_exporter_errors_total"} <= names
    return frozenset(names | PROMETHEUS_BUILTINS)


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARD_FILES}


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def _exprs(dashboards: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
    """(file, panel title, expr) of every panel target."""
    for name, dashboard in dashboards.items():
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                yield name, panel["title"], target["expr"]


def _promtool() -> str:
    return installed("promtool")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)


# --- the metric-name check itself --------------------------------------------------------------

@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (group) (bank_consumer_lag_messages{topic="bank_fake_total"}) > 1000', {"bank_consumer_lag_messages"}),
    ("histogram_quantile(0.95, sum by (le, route) (rate(bank_http_request_duration_seconds_bucket"
     "[$__rate_interval])))", {"bank_http_request_duration_seconds_bucket"}),
    ("up == 0 or absent(up{job='x'}) # bank_comment_total", {"up"}),
    ("a / on (instance) group_left (version) b offset 10m unless c @ end()", {"a", "b", "c"}),
    ('label_replace(x[1h:1m], "kind", "http_5xx", "", "") and time() - y > 1.5e3', {"x", "y"}),
])
def test_metric_names_are_extracted_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_renamed_metric_in_a_dashboard_is_flagged(dashboards: dict[str, dict[str, Any]],
                                                    exported: frozenset[str]) -> None:
    expr = next(e for _, _, e in _exprs(dashboards) if "bank_ledger_commands_total" in e)
    assert not unknown_metrics(expr, exported)
    renamed = expr.replace("bank_ledger_commands_total", "bank_nonexistent_total")
    assert unknown_metrics(renamed, exported) == {"bank_nonexistent_total"}
    # A counter's family name (without `_total`) is not a series name either.
    assert unknown_metrics(expr.replace("bank_ledger_commands_total", "bank_ledger_commands"), exported)


# --- dashboards --------------------------------------------------------------------------------

def test_dashboards_query_only_exported_metrics(dashboards: dict[str, dict[str, Any]],
                                                exported: frozenset[str]) -> None:
    checked = list(_exprs(dashboards))
    assert len(checked) > 40
    unknown = [(name, title, sorted(bad)) for name, title, expr in checked if (bad := unknown_metrics(expr, exported))]
    assert not unknown, f"dashboard panels query metrics the code does not export: {unknown}"


def test_dashboards_are_the_four_with_stable_uids(dashboards: dict[str, dict[str, Any]]) -> None:
    assert {d["title"]: d["uid"] for d in dashboards.values()} == DASHBOARDS
    assert len(dashboards) == len(DASHBOARDS), "a dashboard file duplicates a title"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    panels = list(_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        assert panel["type"] in {"row", "timeseries", "stat"}, panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for cell in itertools.product(range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"])):
            assert cell not in cells, f"{panel['title']!r} overlaps {cells[cell]!r}"
            cells[cell] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == DATASOURCE_UID
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
            assert target["expr"].strip() and target["refId"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_grafana_provisions_the_datasource_and_the_dashboards_directory() -> None:
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert [d["uid"] for d in datasources["datasources"] if d["type"] == "prometheus"] == [DATASOURCE_UID]
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = dict(str(v).split(":")[:2] for v in services["grafana"]["volumes"] if str(v).startswith("./"))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert [p["options"]["path"] for p in providers["providers"]] == [mounts["./grafana/dashboards"]]


def test_lag_panels_draw_the_alert_thresholds(dashboards: dict[str, dict[str, Any]],
                                              rules: list[dict[str, Any]]) -> None:
    """A panel showing exactly what ConsumerLagHigh / ConsumerLagAgeHigh compare has their threshold in red."""
    lag = dashboards["consumer-lag.json"]
    for alert in ("ConsumerLagHigh", "ConsumerLagAgeHigh"):
        [expr] = [r["expr"] for r in rules if r.get("alert") == alert]
        match = re.fullmatch(r"\s*(.+?)\s*>\s*([0-9.]+)\s*", expr)
        assert match, f"{alert}: expected `<expr> > <threshold>`, got {expr!r}"
        query, threshold = match.group(1), float(match.group(2))
        panels = [p for p in _panels(lag) if any(t["expr"] == query for t in p.get("targets", []))]
        assert len(panels) >= 2, f"{alert}: no stat and graph of {query!r}"
        for panel in panels:
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert {"color": "red", "value": threshold} in steps, f"{panel['title']!r}: {steps}"


def test_dashboard_queries_parse(dashboards: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """promtool parses every panel query (Grafana's variables replaced by what they expand to)."""
    promtool = _promtool()
    exprs = sorted({_GRAFANA_VARIABLE.sub("5m", expr) for _, _, expr in _exprs(dashboards)})
    rules_file = tmp_path / "dashboards.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(exprs)]}]}))
    result = _run(promtool, "check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr


# --- alert rules -------------------------------------------------------------------------------

def test_alert_rules_query_only_exported_metrics(rules: list[dict[str, Any]], exported: frozenset[str]) -> None:
    unknown = {r["alert"]: sorted(bad) for r in rules if (bad := unknown_metrics(r["expr"], exported))}
    assert not unknown, f"alert rules query metrics the code does not export: {unknown}"


def test_alert_rules_are_labelled_and_annotated(rules: list[dict[str, Any]]) -> None:
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80, rule["alert"]


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load(ALERTS_TEST_FILE.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert firing == ALERTS, f"never tested firing: {ALERTS - firing}"
    assert quiet == ALERTS, f"never tested quiet: {ALERTS - quiet}"


def test_promtool_checks_the_alert_rules() -> None:
    result = _run(_promtool(), "check", "rules", ALERTS_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_of_the_alert_rules_pass() -> None:
    result = _run(_promtool(), "test", "rules", ALERTS_TEST_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr
