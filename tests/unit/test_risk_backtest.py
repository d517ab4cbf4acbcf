"""Back-testing a candidate rule set: its counts are exactly what evaluating history movement by movement gives,
a stricter candidate hits more, rules in one set only show 0 on the other side, `since` limits what is counted
but not what warms the features, and a movement one rule set blocks never reaches that rule set's features.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.money import CURRENCY_DIGITS, parse_amount
from core.risk.backtest import BacktestReport, RuleCounts, backtest
from core.risk.evaluate import evaluate
from core.risk.features import AccountFeatures, CustomerFeatures, Movement
from core.risk.rules import Rule, RuleSet, load_rule_set
from core.risk.sanctions import load_sanctions

ROOT = Path(__file__).resolve().parents[2]
SANCTIONS = load_sanctions((ROOT / "rules" / "sanctions.csv").read_text(encoding="utf-8"), "sanctions.csv")
DEFAULT = load_rule_set((ROOT / "rules" / "default.yaml").read_text(encoding="utf-8"), "default.yaml")
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
SINCE = T0 + timedelta(days=12)

# Spellings that differ from the list's primary names: screening must still catch them.
SANCTIONED_NAMES = ("Jose Alvarez Nunez", "Golden Lotus Trading", "Sergey Ivanov", "Juergen Mueller")
SAFE_NAMES = ("Anna Schmidt", "Acme Supplies GmbH", "Lukas Weber", "Maria Rossi")


# ---------------------------------------------------------------- a deterministic history


@dataclass(frozen=True)
class _Account:
    id: str
    customer: str
    currency: str


def generate_history(count: int, seed: int, start: datetime = T0, prefix: str = "") -> list[Movement]:
    """`count` or a few more movements in time order: everyday traffic plus each pattern the default rules look for
    (bursts of debits, cash just under 10,000, large cash, money in and straight out, large and unusual debits,
    new payees, sanctioned names, high-risk countries)."""
    rng = random.Random(seed)
    accounts = [_Account(f"{prefix}acc-{c}-{n}", f"{prefix}cus-{c}", "USD" if c % 7 == 0 else "EUR")
                for c in range(30) for n in range(1 + c % 3)]
    payees = {a.id: [f"{prefix}payee-{rng.randrange(10_000)}" for _ in range(4)] for a in accounts}
    clock = [start]

    def tick(seconds: int) -> datetime:
        clock[0] += timedelta(seconds=seconds)
        return clock[0]

    def move(account: _Account, kind: str, amount: int, gap: int, **extra: str) -> Movement:
        return Movement(kind=kind, account_id=account.id, customer_id=account.customer,  # type: ignore[arg-type]
                        amount=amount, currency=account.currency, at=tick(gap), **extra)

    def routine(a: _Account) -> Iterator[Movement]:
        kind = rng.choice(("deposit", "withdrawal", "transfer_out", "transfer_out"))
        if kind == "transfer_out":
            yield move(a, kind, rng.randint(1_000, 80_000), rng.randint(60, 600),
                       counterparty_account_id=rng.choice(payees[a.id]))
        else:
            yield move(a, kind, rng.randint(1_000, 60_000), rng.randint(60, 600),
                       channel=rng.choice(("card", "transfer", "cash")))

    def burst(a: _Account) -> Iterator[Movement]:           # velocity
        for _ in range(rng.randint(4, 8)):
            yield move(a, "withdrawal", rng.randint(500, 5_000), rng.randint(20, 90), channel="card")

    def near_threshold_cash(a: _Account) -> Iterator[Movement]:   # structuring
        kind = rng.choice(("deposit", "deposit", "withdrawal"))
        for _ in range(rng.randint(1, 3)):
            yield move(a, kind, rng.randint(900_000, 999_999), rng.randint(600, 7_200), channel="cash")

    def large_cash(a: _Account) -> Iterator[Movement]:            # ctr
        yield move(a, "deposit", rng.randint(1_000_000, 2_000_000), rng.randint(60, 600), channel="cash")

    def in_and_out(a: _Account) -> Iterator[Movement]:            # rapid movement
        inflow = rng.randint(200_000, 800_000)
        yield move(a, "deposit", inflow, rng.randint(60, 600))
        yield move(a, "transfer_out", inflow * rng.randint(80, 99) // 100, rng.randint(300, 3_600),
                   counterparty_account_id=rng.choice(payees[a.id]))

    def large(a: _Account) -> Iterator[Movement]:                 # absolute and relative amounts, new payee
        amount = rng.choice((rng.randint(5_000_000, 8_000_000), rng.randint(150_000, 500_000)))
        yield move(a, "transfer_out", amount, rng.randint(60, 600),
                   counterparty_account_id=f"{prefix}new-{rng.randrange(10**6)}")

    def sanctioned(a: _Account) -> Iterator[Movement]:
        yield move(a, "transfer_out", rng.randint(10_000, 300_000), rng.randint(60, 600),
                   counterparty_name=rng.choice(SANCTIONED_NAMES))

    def named(a: _Account) -> Iterator[Movement]:                 # a near-miss for screening
        yield move(a, "transfer_out", rng.randint(10_000, 300_000), rng.randint(60, 600),
                   counterparty_name=rng.choice(SAFE_NAMES), counterparty_country=rng.choice(("DE", "FR", "IT")))

    def risky_country(a: _Account) -> Iterator[Movement]:
        yield move(a, rng.choice(("transfer_out", "deposit")), rng.randint(10_000, 300_000), rng.randint(60, 600),
                   counterparty_country=rng.choice(("KP", "IR", "MM")))

    patterns = [(routine, 70), (burst, 4), (near_threshold_cash, 4), (large_cash, 2), (in_and_out, 4), (large, 4),
                (sanctioned, 1), (named, 2), (risky_country, 2)]
    out: list[Movement] = []
    while len(out) < count:
        pattern = rng.choices([p for p, _ in patterns], weights=[w for _, w in patterns])[0]
        out.extend(pattern(rng.choice(accounts)))
    return out


# ---------------------------------------------------------------- the reference: evaluate + observe, by hand


@dataclass
class Direct:
    hits: dict[str, Counter[str]]
    totals: Counter[str]
    actions: list[str | None]        # per movement; None before `since`


def direct(movements: list[Movement], rule_set: RuleSet, since: datetime | None = None) -> Direct:
    """What a scorer that starts from nothing decides movement by movement (a blocked movement is not observed)."""
    accounts: dict[str, AccountFeatures] = {}
    customers: dict[str, CustomerFeatures] = {}
    result = Direct(hits={}, totals=Counter(), actions=[])
    for m in movements:
        account = accounts.get(m.account_id, AccountFeatures(account_id=m.account_id))
        customer = customers.get(m.customer_id, CustomerFeatures(customer_id=m.customer_id))
        assessment = evaluate(rule_set, m, account, customer, SANCTIONS)
        if assessment.action != "block":
            accounts[m.account_id], customers[m.customer_id] = account.observe(m), customer.observe(m)
        if since is not None and m.at < since:
            result.actions.append(None)
            continue
        result.actions.append(assessment.action)
        result.totals[assessment.action] += 1
        for hit in assessment.hits:
            result.hits.setdefault(hit.rule_id, Counter()).update(["hits", hit.action])
    return result


def counts(d: Direct, rule_id: str) -> RuleCounts:
    c = d.hits.get(rule_id, Counter())
    return RuleCounts(hits=c["hits"], flagged=c["alert"], held=c["hold"], blocked=c["block"])


def with_rule(rule_set: RuleSet, rule_id: str, **params: object) -> RuleSet:
    rules = tuple(replace(r, params={**r.params, **params}) if r.id == rule_id else r for r in rule_set.rules)
    return replace(rule_set, rules=rules)


def stricter(rule_set: RuleSet) -> RuleSet:
    """Velocity at 3 debits instead of 5, a new rule holding cash days from 5,000, no rapid-movement rule."""
    tighter = with_rule(rule_set, "velocity-10m", max_debits=3)
    ctr_5000 = Rule(id="ctr-5000-hold", description="cash day reaches 5,000", kind="ctr", score=30,
                    severity="medium", action="hold", params={"threshold": {c: parse_amount("5000", c) for c in CURRENCY_DIGITS}})
    rules = tuple(r for r in tighter.rules if r.id != "rapid-movement-24h") + (ctr_5000,)
    return replace(tighter, version="candidate-1", rules=rules)


# ---------------------------------------------------------------- over a large history


@pytest.fixture(scope="module")
def history() -> list[Movement]:
    return generate_history(10_000, seed=20251124)


@pytest.fixture(scope="module")
def candidate() -> RuleSet:
    return stricter(DEFAULT)


@pytest.fixture(scope="module")
def report(history: list[Movement], candidate: RuleSet) -> BacktestReport:
    return backtest([(m, str(i)) for i, m in enumerate(history)], candidate, DEFAULT, SANCTIONS, SINCE)


def test_the_history_exercises_every_default_rule(history: list[Movement]) -> None:
    live = direct(history, DEFAULT)
    assert len(history) >= 10_000
    assert len({m.account_id for m in history}) > 50 and len({m.customer_id for m in history}) == 30
    for rule in DEFAULT.rules:
        if rule.kind == "payee_cooling_off":
            continue   # assessments do not record when a payee was added: tests/unit/test_cooling_off.py
        assert live.hits.get(rule.id, Counter())["hits"] > 0, rule.id
    assert set(live.totals) == {"allow", "alert", "hold", "block"}


def test_counts_equal_a_direct_evaluation_of_both_rule_sets(history: list[Movement], candidate: RuleSet,
                                                            report: BacktestReport) -> None:
    new, old = direct(history, candidate, SINCE), direct(history, DEFAULT, SINCE)
    counted = sum(1 for m in history if m.at >= SINCE)
    assert report.evaluated == counted and report.warm_up == len(history) - counted > 1000
    assert report.candidate_version == "candidate-1" and report.live_version == DEFAULT.version
    assert [r.rule_id for r in report.rules] == [r.id for r in candidate.rules] + ["rapid-movement-24h"]
    for row in report.rules:
        assert row.candidate == counts(new, row.rule_id), row.rule_id
        assert row.live == counts(old, row.rule_id), row.rule_id
    assert report.candidate_totals == {a: new.totals[a] for a in ("allow", "alert", "hold", "block")}
    assert report.live_totals == {a: old.totals[a] for a in ("allow", "alert", "hold", "block")}
    assert sum(report.candidate_totals.values()) == sum(report.live_totals.values()) == counted
    changed = [i for i, (a, b) in enumerate(zip(new.actions, old.actions, strict=True)) if a is not None and a != b]
    assert report.changed == len(changed) > 0
    assert report.transitions == dict(Counter((old.actions[i], new.actions[i]) for i in changed))
    assert report.first_at == next(m.at for m in history if m.at >= SINCE) and report.last_at == history[-1].at


def test_examples_are_real_changes_covering_each_kind_of_change(history: list[Movement],
                                                               report: BacktestReport) -> None:
    assert 0 < len(report.examples) <= 10
    for example in report.examples:
        index = int(example.ref)
        assert example.movement == history[index] and example.movement.at >= SINCE
        assert example.live != example.candidate
    # the rarest, most severe transitions are not crowded out by the most frequent one
    shown = {(e.live, e.candidate) for e in report.examples}
    assert len(shown) == min(len(report.transitions), 10)
    assert [e.movement.at for e in report.examples] == sorted(e.movement.at for e in report.examples)


def test_a_stricter_candidate_hits_more_and_one_sided_rules_show_zero(report: BacktestReport) -> None:
    velocity = report.row("velocity-10m")
    assert velocity.status == "changed" and velocity.changes == ("params.max_debits: 5 -> 3",)
    assert velocity.candidate.hits > velocity.live.hits > 0 and velocity.delta > 0
    assert velocity.candidate.flagged == velocity.candidate.hits and velocity.candidate.held == 0
    added = report.row("ctr-5000-hold")
    assert added.status == "added" and added.live == RuleCounts()
    assert added.candidate.hits == added.candidate.held > 0 and added.candidate.flagged == 0
    removed = report.row("rapid-movement-24h")
    assert removed.status == "removed" and removed.candidate == RuleCounts()
    assert removed.live.hits == removed.live.flagged > 0 and removed.delta == -removed.live.hits
    sanctions = report.row("sanctions-counterparty")
    assert sanctions.status == "same" and sanctions.candidate == sanctions.live
    assert sanctions.live.hits == sanctions.live.blocked > 0
    # more held: the new hold rule; fewer alerts can't make up for it
    assert report.candidate_totals["hold"] > report.live_totals["hold"]


def test_to_dict_is_json_for_analysts(report: BacktestReport) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["evaluated"] == report.evaluated and data["since"] == SINCE.isoformat()
    assert data["totals"]["live"] == report.live_totals
    velocity = next(r for r in data["rules"] if r["rule_id"] == "velocity-10m")
    assert velocity["candidate"]["hits"] - velocity["live"]["hits"] == velocity["delta"] > 0
    assert data["changed"]["count"] == sum(t["count"] for t in data["changed"]["transitions"]) == report.changed
    assert all(isinstance(e["amount"], int) for e in data["changed"]["examples"])


def test_identical_rule_sets_change_nothing(history: list[Movement]) -> None:
    same = backtest(history[:2000], DEFAULT, DEFAULT, SANCTIONS)
    assert same.changed == 0 and same.examples == () and same.transitions == {}
    assert all(r.candidate == r.live and r.status == "same" and r.delta == 0 for r in same.rules)
    assert same.evaluated == 2000 and same.warm_up == 0 and same.since is None


# ---------------------------------------------------------------- small, constructed cases


def _debit(at: datetime, amount: int = 10_000, account: str = "acc-1") -> Movement:
    return Movement(kind="withdrawal", account_id=account, customer_id="cus-1", amount=amount, currency="EUR",
                    at=at, channel="card")


def test_since_excludes_early_movements_from_counts_but_they_warm_the_features() -> None:
    start = T0 + timedelta(days=40)
    early = [_debit(start + timedelta(minutes=i)) for i in range(5)]     # 5 debits, none over the limit
    late = _debit(start + timedelta(minutes=6))                          # the 6th within 10 minutes
    since = start + timedelta(minutes=6)
    warmed = backtest(early + [late], DEFAULT, DEFAULT, SANCTIONS, since)
    assert warmed.evaluated == 1 and warmed.warm_up == 5
    assert warmed.first_at == warmed.last_at == late.at
    assert warmed.row("velocity-10m").live == RuleCounts(hits=1, flagged=1)
    assert warmed.live_totals == {"allow": 0, "alert": 1, "hold": 0, "block": 0}
    # Without the warm-up the same movement is an account's first debit: nothing to see.
    cold = backtest([late], DEFAULT, DEFAULT, SANCTIONS, since)
    assert cold.row("velocity-10m").live == RuleCounts() and cold.live_totals["allow"] == 1
    # Counting everything also counts the early ones (none of which is over the limit).
    everything = backtest(early + [late], DEFAULT, DEFAULT, SANCTIONS)
    assert everything.evaluated == 6 and everything.row("velocity-10m").live.hits == 1


def test_a_movement_blocked_by_one_rule_set_does_not_reach_its_features() -> None:
    rules = load_rule_set("""
version: "block-big"
rules:
  - {id: velocity, description: more than 2 debits in 10m, kind: velocity, score: 10, severity: low,
     action: alert, params: {max_debits: 2, window: 10m}}
  - {id: big, description: debits of 5000 or more, kind: large_amount_absolute, score: 90, severity: high,
     action: block, params: {threshold: EVERY_CURRENCY}}
""".replace("EVERY_CURRENCY", "{" + ", ".join(f'{c}: "5000"' for c in CURRENCY_DIGITS) + "}"))
    allows_big = replace(rules, version="allow-big", rules=rules.rules[:1])
    start = T0 + timedelta(days=50)
    movements = [_debit(start + timedelta(minutes=i), 600_000) for i in range(3)] \
        + [_debit(start + timedelta(minutes=3), 1_000)]
    report = backtest(movements, allows_big, rules, SANCTIONS)
    # live blocks the three big debits, so its features never see them: the small one is the first debit.
    assert report.row("big").live == RuleCounts(hits=3, blocked=3)
    assert report.row("velocity").live == RuleCounts()
    # the candidate lets them through: the 3rd and 4th debits are over the limit.
    assert report.row("velocity").candidate == RuleCounts(hits=2, flagged=2)
    assert report.row("big").candidate == RuleCounts() and report.row("big").status == "removed"
    assert report.transitions == {("block", "allow"): 2, ("block", "alert"): 1, ("allow", "alert"): 1}
    assert report.changed == 4
