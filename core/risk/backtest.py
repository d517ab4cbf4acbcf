"""Back-test a candidate rule set against history before it goes live: what would it have flagged, held, blocked?

History (the movements on bank.risk.assessments) is replayed in the order given, twice: once through the live
rule set and once through the candidate, each with its own feature state and both through
`core.risk.scoring.score`, the very step the streaming scorer runs. So a movement one rule set blocks is not
folded into that rule set's features, exactly as in production, and later verdicts can differ for that reason too.

Movements before `since` only warm the features up (velocity, averages and known payees need history); from
`since` on, every movement is counted: per rule, its hits split by the rule's action, per rule set the final
actions, and the movements whose final action differs between the two, with a few examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.risk.evaluate import Assessment
from core.risk.features import AccountFeatures, CustomerFeatures, Movement
from core.risk.rules import ACTIONS, Action, RuleSet, diff
from core.risk.sanctions import SanctionsList
from core.risk.scoring import score

# A movement, or (movement, reference) where the reference (an event id, "partition:offset") names it in examples.
Replayable = Movement | tuple[Movement, str]
RuleStatus = str   # "same" | "changed" | "added" (candidate only) | "removed" (live only)
PROGRESS_EVERY = 1000


@dataclass(frozen=True, slots=True)
class RuleCounts:
    """One rule's hits under one rule set; flagged/held/blocked say what the rule's own action did with them."""

    hits: int = 0
    flagged: int = 0     # hits of a rule whose action is alert
    held: int = 0
    blocked: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "flagged": self.flagged, "held": self.held, "blocked": self.blocked}


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleRow:
    rule_id: str
    kind: str
    status: RuleStatus
    changes: tuple[str, ...]         # for a changed rule: "params.max_debits: 5 -> 3", ...
    candidate: RuleCounts            # zeros when the rule is not in the candidate
    live: RuleCounts                 # zeros when the rule is not live

    @property
    def delta(self) -> int:
        return self.candidate.hits - self.live.hits

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "kind": self.kind, "status": self.status, "changes": list(self.changes),
                "candidate": self.candidate.to_dict(), "live": self.live.to_dict(), "delta": self.delta}


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A movement whose final action differs between the rule sets."""

    ref: str | None
    movement: Movement
    live: Action
    candidate: Action
    live_hits: tuple[str, ...]
    candidate_hits: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        m = self.movement
        return {"ref": self.ref, "at": m.at.isoformat(), "account_id": m.account_id, "customer_id": m.customer_id,
                "kind": m.kind, "amount": m.amount, "currency": m.currency, "channel": m.channel,
                "counterparty_account_id": m.counterparty_account_id, "counterparty_name": m.counterparty_name,
                "counterparty_country": m.counterparty_country, "live": self.live, "candidate": self.candidate,
                "live_hits": list(self.live_hits), "candidate_hits": list(self.candidate_hits)}


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestReport:
    candidate_version: str
    live_version: str
    since: datetime | None
    evaluated: int                       # movements counted (at or after `since`)
    warm_up: int                         # earlier movements, replayed only to build the features
    first_at: datetime | None            # the first and last movement counted
    last_at: datetime | None
    rules: tuple[RuleRow, ...]           # candidate's rules in order, then the rules only live has
    candidate_totals: dict[Action, int]  # final action -> movements, every action present
    live_totals: dict[Action, int]
    changed: int
    transitions: dict[tuple[Action, Action], int]   # (live, candidate) -> movements, only where they differ
    examples: tuple[Change, ...]

    def row(self, rule_id: str) -> RuleRow:
        return next(r for r in self.rules if r.rule_id == rule_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate_version": self.candidate_version, "live_version": self.live_version,
            "since": _iso(self.since), "evaluated": self.evaluated, "warm_up": self.warm_up,
            "first_at": _iso(self.first_at), "last_at": _iso(self.last_at),
            "rules": [r.to_dict() for r in self.rules],
            "totals": {"candidate": dict(self.candidate_totals), "live": dict(self.live_totals)},
            "changed": {
                "count": self.changed,
                "transitions": [{"live": a, "candidate": b, "count": n} for (a, b), n in self.transitions.items()],
                "examples": [e.to_dict() for e in self.examples],
            },
        }


@dataclass
class _Side:
    """One rule set's replay: its own features, and what it decided from `since` on."""

    rule_set: RuleSet
    sanctions: SanctionsList
    accounts: dict[str, AccountFeatures] = field(default_factory=dict)
    customers: dict[str, CustomerFeatures] = field(default_factory=dict)
    hits: dict[str, Counter[str]] = field(default_factory=dict)    # rule id -> {"hits"|action: n}
    totals: Counter[str] = field(default_factory=Counter)

    def step(self, movement: Movement) -> Assessment:
        scored = score(movement, self.accounts.get(movement.account_id), self.customers.get(movement.customer_id),
                       self.rule_set, self.sanctions)
        self.accounts[movement.account_id] = scored.account
        self.customers[movement.customer_id] = scored.customer
        return scored.assessment

    def count(self, assessment: Assessment) -> None:
        self.totals[assessment.action] += 1
        for hit in assessment.hits:
            counter = self.hits.setdefault(hit.rule_id, Counter())
            counter["hits"] += 1
            counter[hit.action] += 1

    def counts(self, rule_id: str) -> RuleCounts:
        c = self.hits.get(rule_id, Counter())
        return RuleCounts(hits=c["hits"], flagged=c["alert"], held=c["hold"], blocked=c["block"])


def backtest(movements: Iterable[Replayable], candidate: RuleSet, live: RuleSet, sanctions: SanctionsList,
             since: datetime | None = None, *, examples: int = 10,
             progress: Callable[[int], None] | None = None) -> BacktestReport:
    """Replay `movements` (in the order given) through both rule sets; count from `since` (None: everything).

    `progress`, if given, is called with the number of movements replayed so far every PROGRESS_EVERY and at
    the end."""
    new, old = _Side(candidate, sanctions), _Side(live, sanctions)
    evaluated = warm_up = done = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    picked = _Examples(examples)
    for item in movements:
        movement, ref = (item, None) if isinstance(item, Movement) else (item[0], item[1])
        verdicts = new.step(movement), old.step(movement)
        done += 1
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done)
        if since is not None and movement.at < since:
            warm_up += 1
            continue
        evaluated += 1
        first_at = first_at or movement.at
        last_at = movement.at
        new.count(verdicts[0])
        old.count(verdicts[1])
        if verdicts[0].action != verdicts[1].action:
            picked.add(Change(ref=ref, movement=movement, live=verdicts[1].action, candidate=verdicts[0].action,
                              live_hits=_ids(verdicts[1]), candidate_hits=_ids(verdicts[0])))
    if progress is not None:
        progress(done)
    return BacktestReport(
        candidate_version=candidate.version, live_version=live.version, since=since, evaluated=evaluated,
        warm_up=warm_up, first_at=first_at, last_at=last_at, rules=_rows(new, old),
        candidate_totals={a: new.totals[a] for a in ACTIONS}, live_totals={a: old.totals[a] for a in ACTIONS},
        changed=sum(picked.transitions.values()), transitions=picked.ordered_transitions(),
        examples=picked.chosen())


def _rows(new: _Side, old: _Side) -> tuple[RuleRow, ...]:
    changes = {c.rule_id: c.changes for c in diff(old.rule_set, new.rule_set).changed}
    live_ids = {r.id for r in old.rule_set.rules}
    rows = [RuleRow(rule_id=r.id, kind=r.kind, status=_status(r.id, live_ids, changes),
                    changes=tuple(f"{name}: {a!r} -> {b!r}" for name, a, b in changes.get(r.id, ())),
                    candidate=new.counts(r.id), live=old.counts(r.id)) for r in new.rule_set.rules]
    candidate_ids = {r.id for r in new.rule_set.rules}
    rows += [RuleRow(rule_id=r.id, kind=r.kind, status="removed", changes=(), candidate=RuleCounts(),
                     live=old.counts(r.id)) for r in old.rule_set.rules if r.id not in candidate_ids]
    return tuple(rows)


def _status(rule_id: str, live_ids: set[str], changes: dict[str, Any]) -> RuleStatus:
    if rule_id not in live_ids:
        return "added"
    return "changed" if rule_id in changes else "same"


class _Examples:
    """Counts changes per (live, candidate) transition and keeps the first few of each, so the examples shown
    cover the rare, severe transitions (allow -> block) and not only the most frequent one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.transitions: Counter[tuple[Action, Action]] = Counter()
        self.kept: dict[tuple[Action, Action], list[Change]] = {}

    def add(self, change: Change) -> None:
        key = (change.live, change.candidate)
        self.transitions[key] += 1
        kept = self.kept.setdefault(key, [])
        if len(kept) < self.limit:
            kept.append(change)

    def _severity(self, key: tuple[Action, Action]) -> tuple[int, int]:
        return max(ACTIONS.index(key[0]), ACTIONS.index(key[1])), self.transitions[key]

    def ordered_transitions(self) -> dict[tuple[Action, Action], int]:
        """Most severe first (the highest action on either side), then the most frequent."""
        return {k: self.transitions[k] for k in sorted(self.transitions, key=self._severity, reverse=True)}

    def chosen(self) -> tuple[Change, ...]:
        """Up to `limit` examples, round-robin over the transitions (most severe first), each in history order."""
        queues = [list(self.kept[k]) for k in self.ordered_transitions()]
        chosen: list[Change] = []
        while len(chosen) < self.limit and any(queues):
            for queue in queues:
                if queue and len(chosen) < self.limit:
                    chosen.append(queue.pop(0))
        return tuple(sorted(chosen, key=lambda c: c.movement.at))


def _ids(assessment: Assessment) -> tuple[str, ...]:
    return tuple(h.rule_id for h in assessment.hits)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()
