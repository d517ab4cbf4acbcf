"""`bank rules` against a real broker: publish validates and refuses to rewrite a version, list/show/diff read
bank.risk.rules, and `backtest --json` gives exactly what `core.risk.backtest` gives on the recorded history.

The broker is shared by the session and scoring workers may tail bank.risk.rules, so every test uses its own
versions and the `restore_live` fixture makes the rule set that was live before the test live again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from click.testing import Result
from typer.testing import CliRunner

from cli.main import app
from cli.risk_topics import publish, read_published, versions
from core.risk.backtest import backtest
from core.risk.features import AccountFeatures, CustomerFeatures, Movement
from core.risk.records import RiskAssessed, RuleSetPublished
from core.risk.rules import dump, load_rule_set
from core.risk.scoring import score
from core.topics import RISK_ASSESSMENTS
from infra.producer import create_producer
from schemas.codec import get_codec
from tests.unit.test_risk_backtest import DEFAULT, SANCTIONS, generate_history, stricter
from infra.kafka import seek_to_beginning

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEXT = (ROOT / "rules" / "default.yaml").read_text(encoding="utf-8")

pytestmark = pytest.mark.usefixtures("topics_applied")


def bank(kafka: str, *args: str) -> Result:
    env = {"BANK_KAFKA_BOOTSTRAP": kafka, "COLUMNS": "250"}
    return CliRunner().invoke(app, ["rules", *args], env=env, catch_exceptions=False)


def version_text(version: str, text: str = DEFAULT_TEXT) -> str:
    return text.replace('version: "2026-11-24.1"', f'version: "{version}"', 1)


def _rule_count(text: str) -> int:
    return text.count("\n  - id: ")


def unique(name: str) -> str:
    return f"t-{name}-{uuid.uuid4().hex[:8]}"


def listed(kafka: str) -> list[dict[str, Any]]:
    result = bank(kafka, "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def restore_live(kafka_bootstrap: str) -> Iterator[None]:
    """Make whatever was live before the test live again (the default file if nothing was published)."""
    before = versions(asyncio.run(read_published(kafka_bootstrap)))
    yield
    after = versions(asyncio.run(read_published(kafka_bootstrap)))
    if before and after[-1].record.version == before[-1].record.version:
        return
    if before:
        record = replace(before[-1].record, published_at=datetime.now(UTC), published_by="test-restore")
    else:
        record = RuleSetPublished.of("2026-11-24.1", DEFAULT_TEXT, "default.yaml", datetime.now(UTC), "test-restore")
    asyncio.run(publish(kafka_bootstrap, record))


# ---------------------------------------------------------------- publish, list, show, diff


@pytest.mark.usefixtures("restore_live")
def test_publish_list_show_diff_and_rollback(kafka_bootstrap: str, tmp_path: Path) -> None:
    v1, v2 = unique("one"), unique("two")
    first = tmp_path / "first.yaml"
    first.write_text(version_text(v1))
    second_text = version_text(v2).replace("max_debits: 5", "max_debits: 3")
    second_text = second_text[:second_text.index("  - id: new-payee")] \
        + second_text[second_text.index("  - id: rapid-movement-24h"):]
    second = tmp_path / "second.yaml"
    second.write_text(second_text)

    published = bank(kafka_bootstrap, "publish", str(first), "--by", "alice")
    assert published.exit_code == 0, published.output
    assert f"published {v1}" in published.stdout and "it is live" in published.stdout
    rows = listed(kafka_bootstrap)
    assert rows[-1] | {"published_at": None, "offset": None} == {
        "version": v1, "live": True, "published_by": "alice", "source": "first.yaml", "rules": _rule_count(first.read_text()), "disabled": 0,
        "valid": True,
        "sha256": hashlib.sha256(first.read_text().encode()).hexdigest(), "published_at": None, "offset": None}
    assert sum(r["live"] for r in rows) == 1
    table = bank(kafka_bootstrap, "list")
    assert table.exit_code == 0 and any(v1 in line and "● live" in line for line in table.stdout.splitlines())

    shown = bank(kafka_bootstrap, "show")
    assert shown.exit_code == 0 and shown.stdout == first.read_text() and f"{v1} (live" in shown.stderr

    published = bank(kafka_bootstrap, "publish", str(second), "--by", "bob")
    assert published.exit_code == 0, published.output
    assert f"changes since {v1} (live" in published.stdout
    assert "~ velocity-10m: params.max_debits: 5 -> 3" in published.stdout
    assert "- new-payee (new_payee, alert, score 30)" in published.stdout
    rows = listed(kafka_bootstrap)
    assert [(r["version"], r["live"]) for r in rows[-2:]] == [(v1, False), (v2, True)]
    assert rows[-1]["rules"] == _rule_count(second_text) == _rule_count(DEFAULT_TEXT) - 2
    assert rows[-1]["published_by"] == "bob"
    assert bank(kafka_bootstrap, "show", v1).stdout == first.read_text()

    between = bank(kafka_bootstrap, "diff", v1, v2)
    assert between.exit_code == 0, between.output
    assert between.stdout.splitlines() == [f"{v1} -> {v2}", "  - new-payee (new_payee, alert, score 30)",
                                           "  - payee-cooling-off (payee_cooling_off, hold, score 50)",
                                           "  ~ velocity-10m: params.max_debits: 5 -> 3"]
    against_file = bank(kafka_bootstrap, "diff", str(first))          # live (v2) -> a file
    assert against_file.stdout.splitlines()[1:] == ["  + new-payee (new_payee, alert, score 30)",
                                                    "  + payee-cooling-off (payee_cooling_off, hold, score 50)",
                                                    "  ~ velocity-10m: params.max_debits: 3 -> 5"]
    assert "no rule changes" in bank(kafka_bootstrap, "diff", v2).stdout
    assert bank(kafka_bootstrap, "diff").stdout == between.stdout          # what the last publish changed
    unknown = bank(kafka_bootstrap, "diff", v1, "no-such-version")
    assert unknown.exit_code == 1 and "no published version 'no-such-version'" in unknown.stderr

    # Publishing v1 again (same text) makes it live again: a rollback, with the changes it brings back.
    rollback = bank(kafka_bootstrap, "publish", str(first))
    assert rollback.exit_code == 0, rollback.output
    assert "a rollback" in rollback.stdout and "+ new-payee" in rollback.stdout
    rows = listed(kafka_bootstrap)
    assert [(r["version"], r["live"]) for r in rows[-2:]] == [(v2, False), (v1, True)]
    assert [r["version"] for r in rows].count(v1) == 1
    # ... and once more is a no-op: nothing is written.
    records = len(asyncio.run(read_published(kafka_bootstrap)))
    again = bank(kafka_bootstrap, "publish", str(first))
    assert again.exit_code == 0 and "already live" in again.stdout and "nothing published" in again.stdout
    assert len(asyncio.run(read_published(kafka_bootstrap))) == records


def test_a_malformed_file_exits_2_naming_file_line_and_field_and_publishes_nothing(kafka_bootstrap: str,
                                                                                  tmp_path: Path) -> None:
    version = unique("broken")
    text = version_text(version).replace("window: 10m", "window: ten minutes")
    line = text.splitlines().index("      window: ten minutes") + 1
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    records = len(asyncio.run(read_published(kafka_bootstrap)))

    result = bank(kafka_bootstrap, "publish", str(broken))
    assert result.exit_code == 2, result.output
    assert f'{broken}:{line}: rules[4].params.window: expected a duration like "10m"' in result.stderr
    assert "ten minutes" in result.stderr and result.stdout == ""
    assert len(asyncio.run(read_published(kafka_bootstrap))) == records
    assert version not in {r["version"] for r in listed(kafka_bootstrap)}
    # the same validation guards a back-test
    assert bank(kafka_bootstrap, "backtest", str(broken)).exit_code == 2


@pytest.mark.usefixtures("restore_live")
def test_a_published_version_cannot_be_rewritten(kafka_bootstrap: str, tmp_path: Path) -> None:
    version = unique("fixed")
    original = tmp_path / "rules.yaml"
    original.write_text(version_text(version))
    assert bank(kafka_bootstrap, "publish", str(original)).exit_code == 0
    sha = hashlib.sha256(original.read_text().encode()).hexdigest()
    records = len(asyncio.run(read_published(kafka_bootstrap)))

    edited = tmp_path / "edited.yaml"
    edited.write_text(version_text(version).replace("score: 40", "score: 45"))
    result = bank(kafka_bootstrap, "publish", str(edited))
    assert result.exit_code == 1, result.output
    assert f"version {version} is already published with different text (sha256 {sha[:12]}" in result.stderr
    assert f"give {edited} a new version" in result.stderr
    assert len(asyncio.run(read_published(kafka_bootstrap))) == records
    assert [r["sha256"] for r in listed(kafka_bootstrap) if r["version"] == version] == [sha]


# ---------------------------------------------------------------- backtest


def assessed(movements: list[Movement], live_rules: Any) -> list[RiskAssessed]:
    """What the scoring stream records for `movements`: each scored with core.risk.scoring.score."""
    accounts: dict[str, AccountFeatures] = {}
    customers: dict[str, CustomerFeatures] = {}
    out = []
    for m in movements:
        scored = score(m, accounts.get(m.account_id), customers.get(m.customer_id), live_rules, SANCTIONS)
        accounts[m.account_id], customers[m.customer_id] = scored.account, scored.customer
        command_id = str(uuid.uuid4())
        out.append(RiskAssessed.of(command_id, command_id, m, scored.assessment, m.at + timedelta(milliseconds=5)))
    return out


async def produce(kafka: str, records: list[RiskAssessed]) -> None:
    codec = get_codec()
    producer = create_producer(kafka)
    await producer.start()
    try:
        for record in records:
            value, headers = codec.encode(record)
            await producer.send(RISK_ASSESSMENTS, value, key=record.account_id.encode(), headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def read_up_to(kafka: str, ends: dict[int, int]) -> list[tuple[RiskAssessed, int, int]]:
    """The test's own plain reader: every (record, partition, offset) below `ends`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(RISK_ASSESSMENTS, p) for p in ends]
        consumer.assign(tps)
        await seek_to_beginning(consumer, tps)
        out = []
        while any([await consumer.position(tp) < ends[tp.partition] for tp in tps]):
            for tp, rs in (await consumer.getmany(timeout_ms=500)).items():
                out += [(get_codec().decode(r.value, r.headers), tp.partition, r.offset)
                        for r in rs if r.offset < ends[tp.partition]]
        return out
    finally:
        await consumer.stop()


def test_a_rule_set_missing_a_currency_threshold_exits_2_naming_rule_and_currency(kafka_bootstrap: str,
                                                                                  tmp_path: Path) -> None:
    """Every amount rule covers every currency the platform accepts: a forgotten one is refused at publish."""
    version = unique("no-jpy")
    text = version_text(version)
    assert text.count(' JPY: "1800000",') == 1
    candidate = tmp_path / "no-jpy.yaml"
    candidate.write_text(text.replace(' JPY: "1800000",', "", 1))
    records = len(asyncio.run(read_published(kafka_bootstrap)))

    result = bank(kafka_bootstrap, "publish", str(candidate))
    assert result.exit_code == 2, result.output
    assert 'rules[2].params.threshold: rule "structuring-cash-24h" has no amount for JPY' in result.stderr
    assert len(asyncio.run(read_published(kafka_bootstrap))) == records


@pytest.mark.usefixtures("restore_live")
def test_backtest_json_equals_a_direct_backtest_of_the_recorded_history(kafka_bootstrap: str,
                                                                        tmp_path: Path) -> None:
    live_version = unique("live")
    live_file = tmp_path / "live.yaml"
    live_file.write_text(version_text(live_version))
    assert bank(kafka_bootstrap, "publish", str(live_file)).exit_code == 0
    live_rules = load_rule_set(live_file.read_text())
    candidate = replace(stricter(DEFAULT), version=unique("candidate"))
    candidate_file = tmp_path / "candidate.yaml"
    candidate_file.write_text(dump(candidate))

    # 40-odd days ago, which only warms up a 30-day back-test, then the last few days
    now, prefix = datetime.now(UTC), f"{uuid.uuid4().hex[:6]}-"
    early = generate_history(200, 7, now - timedelta(days=45), prefix)
    recent = generate_history(200, 8, now - timedelta(days=4), prefix)
    history = early + recent
    records = assessed(history, live_rules)
    asyncio.run(produce(kafka_bootstrap, records + records[:3]))   # three re-delivered assessments

    result = bank(kafka_bootstrap, "backtest", str(candidate_file), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["candidate_version"] == candidate.version and out["live_version"] == live_version
    assert out["history"]["duplicates"] >= 3

    # the same history, read independently, through core.risk.backtest
    read = asyncio.run(read_up_to(kafka_bootstrap, {int(p): o for p, o in out["history"]["to_offsets"].items()}))
    first: dict[str, tuple[RiskAssessed, int, int]] = {}
    for item in read:
        first.setdefault(item[0].event_id, item)
    assert {r.event_id for r in records} <= first.keys()
    replay = [(r.movement, r.event_id) for r, _, _ in sorted(first.values(), key=lambda i: (i[0].at, i[1], i[2]))]
    since = datetime.fromisoformat(out["since"])
    assert now - timedelta(days=30, minutes=5) < since < now - timedelta(days=29, hours=23)
    expected = backtest(replay, candidate, live_rules, SANCTIONS, since).to_dict()
    assert {k: out[k] for k in expected} == expected
    assert out["history"]["movements"] == len(replay)
    # ... and the history is one where the candidate makes a difference
    mine = backtest([(r.movement, r.event_id) for r in records], candidate, live_rules, SANCTIONS, since)
    assert mine.evaluated == len(recent) and mine.warm_up == len(early) and mine.changed > 0
    assert out["evaluated"] >= len(recent) and out["changed"]["count"] >= mine.changed
    rows = {r["rule_id"]: r for r in out["rules"]}
    assert rows["ctr-5000-hold"]["status"] == "added" and rows["ctr-5000-hold"]["live"]["hits"] == 0
    assert rows["ctr-5000-hold"]["candidate"]["held"] > 0
    assert rows["rapid-movement-24h"]["status"] == "removed" and rows["rapid-movement-24h"]["candidate"]["hits"] == 0

    # for people: the same numbers as tables
    shown = bank(kafka_bootstrap, "backtest", str(candidate_file), "--against", live_version)
    assert shown.exit_code == 0, shown.output
    for text in ("hits per rule (live → candidate)", "final action per movement", "ctr-5000-hold",
                 f"{out['evaluated']:,} movements counted", "end differently"):
        assert text in shown.stdout, text
    velocity = rows["velocity-10m"]
    line = next(line for line in shown.stdout.splitlines() if "velocity-10m" in line)
    assert f"{velocity['live']['hits']:,}" in line and f"{velocity['candidate']['hits']:,}" in line


def test_backtest_refuses_a_bad_since_and_an_unknown_version(kafka_bootstrap: str, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(version_text(unique("c")))
    bad = bank(kafka_bootstrap, "backtest", str(candidate), "--since", "a while")
    assert bad.exit_code == 2 and 'expected a duration like "30d"' in bad.output
    unknown = bank(kafka_bootstrap, "backtest", str(candidate), "--against", "no-such-version")
    assert unknown.exit_code == 1 and "no published version 'no-such-version'" in unknown.stderr
