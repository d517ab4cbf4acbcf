"""Score one money movement against a rule set: which rules it hits, the total score and the action to take.

`evaluate` takes the account's and customer's features *before* the movement and never changes them: the
caller folds the movement in (`observe`) once the ledger has decided, since a blocked movement moved no money.
Where a rule counts the movement itself, the evaluator adds it explicitly, as each evaluator's doc says.

What each kind does (thresholds are "reached" at >=, except velocity's "more than"; amounts are per currency,
and a validated rule set names every accepted currency (core.risk.rules), so no movement escapes an amount rule
for want of a threshold; windows are [at - window, at], both inclusive):

- velocity: a debit that makes more than `max_debits` debits from the account within `window`, this one counted.
- large_amount_relative: a debit >= `multiplier` x the account's average debit over the last 30 UTC days (this
  one not counted), once there are at least `min_history` earlier debits; if `min_amount` lists the currency
  the debit must also reach it (so 5 x a 2.00 average is not news).
- large_amount_absolute: a debit >= `threshold`. Kept separate from the relative rule so analysts tune, score
  and back-test the two independently, and the absolute one works for accounts with no history.
- new_payee: a transfer out >= `min_amount` to a counterparty the account has not paid within 400 days.
- payee_cooling_off: a transfer out to one of the customer's payees added less than `period` before it (business
  time): a payee an attacker who took over the account just added is paid only after a reviewer's look.
- structuring: a cash deposit (or withdrawal) "just under" `threshold` (>= `near_ratio` x threshold and below
  it) that makes at least `min_count` such cash movements in the same direction and currency by the customer,
  across their accounts, within `window` (this one counted) whose sum exceeds `threshold`.
- ctr: a cash deposit (or withdrawal) that takes the customer's cash in (or out) for the business day (UTC date)
  in that currency from below `threshold` to at or above it: once per customer, day, currency and direction.
- rapid_movement: a debit when the account received at least `min_inflow` within `window` and its debits since
  the first of those credits, this one counted, reach `min_ratio` x those credits (money in and straight out).
- high_risk_jurisdiction: any movement whose counterparty country is in the rule set's list.
- sanctions: any movement whose counterparty name matches the sanctions list at or above `threshold`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from core.money import format_amount
from core.risk.features import AccountFeatures, CustomerFeatures, Movement, between, cash_time, within
from core.risk.rules import ACTIONS, KINDS, Action, Rule, RuleSet, Severity, format_duration
from core.risk.sanctions import SanctionsList


# The risk engine forwards a scored command to the ledger with its assessment in this header (Assessment.to_header).
ASSESSMENT_HEADER = "bank.risk.assessment"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleHit:
    rule_id: str
    kind: str
    action: Action
    severity: Severity
    score: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    score: int                      # sum of the hits' scores, capped at 100
    action: Action                  # the most severe action among the hits; "allow" when none
    hits: tuple[RuleHit, ...]       # in rule-set order
    rule_set_version: str

    def hit_dicts(self) -> list[dict[str, Any]]:
        return [{f: getattr(h, f) for f in RuleHit.__slots__} for h in self.hits]

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "action": self.action, "rule_set_version": self.rule_set_version,
                "hits": self.hit_dicts()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Assessment:
        """The inverse of to_dict; raises ValueError on anything else (it arrives in a message header)."""
        try:
            action = data["action"]
            if action not in ACTIONS:
                raise ValueError(f"unknown action {action!r}")
            return cls(score=int(data["score"]), action=action, rule_set_version=str(data["rule_set_version"]),
                       hits=tuple(RuleHit(**h) for h in data["hits"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"not an assessment: {error}") from None

    def to_header(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_header(cls, value: bytes) -> Assessment:
        try:
            return cls.from_dict(json.loads(value))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"not an assessment: {error}") from None


@dataclass(frozen=True, slots=True)
class _Context:
    rule_set: RuleSet
    movement: Movement
    account: AccountFeatures
    customer: CustomerFeatures
    sanctions: SanctionsList


def evaluate(rule_set: RuleSet, movement: Movement, account: AccountFeatures, customer: CustomerFeatures,
             sanctions: SanctionsList) -> Assessment:
    ctx = _Context(rule_set, movement, account, customer, sanctions)
    hits = []
    for rule in rule_set.rules:
        reason = _EVALUATORS[rule.kind](rule, ctx) if rule.enabled else None
        if reason is not None:
            hits.append(RuleHit(rule_id=rule.id, kind=rule.kind, action=rule.action, severity=rule.severity,
                                score=rule.score, reason=reason))
    return Assessment(score=min(100, sum(h.score for h in hits)), action=most_severe(h.action for h in hits),
                      hits=tuple(hits), rule_set_version=rule_set.version)


def most_severe(actions: Iterable[Action]) -> Action:
    return max(actions, key=ACTIONS.index, default="allow")


# ---------------------------------------------------------------- evaluators: a reason when hit, else None


def _money(minor: int, currency: str) -> str:
    return f"{format_amount(minor, currency)} {currency}"


def _velocity(rule: Rule, ctx: _Context) -> str | None:
    m = ctx.movement
    if not m.is_debit:
        return None
    count = len(within(ctx.account.debits, m.at, rule.params["window"])) + 1
    if count <= rule.params["max_debits"]:
        return None
    return f"{count} debits within {_window(rule)} (more than {rule.params['max_debits']})"


def _large_relative(rule: Rule, ctx: _Context) -> str | None:
    m = ctx.movement
    total, count = ctx.account.average_basis(m.at)
    if not m.is_debit or count < rule.params["min_history"]:
        return None
    floor = rule.params.get("min_amount", {}).get(m.currency)
    if floor is not None and m.amount < floor:
        return None
    # amount >= k x total / count, multiplied out so it stays exact
    if m.amount * count < rule.params["multiplier"] * total:
        return None
    average = _money(total // count, m.currency)
    return f"debit of {_money(m.amount, m.currency)} is at least {rule.params['multiplier']} x the 30-day " \
           f"average debit of {average} ({count} debits)"


def _large_absolute(rule: Rule, ctx: _Context) -> str | None:
    m = ctx.movement
    threshold = rule.params["threshold"].get(m.currency)
    if not m.is_debit or threshold is None or m.amount < threshold:
        return None
    return f"debit of {_money(m.amount, m.currency)} reaches {_money(threshold, m.currency)}"


def _new_payee(rule: Rule, ctx: _Context) -> str | None:
    m = ctx.movement
    minimum = rule.params["min_amount"].get(m.currency)
    key = m.payee_key
    if m.kind != "transfer_out" or key is None or minimum is None or m.amount < minimum:
        return None
    if ctx.account.knows_payee(key):
        return None
    payee = m.counterparty_account_id or m.counterparty_name
    return f"first transfer to {payee} is {_money(m.amount, m.currency)} (at least {_money(minimum, m.currency)})"


def _cooling_off(rule: Rule, ctx: _Context) -> str | None:
    m = ctx.movement
    if m.kind != "transfer_out" or m.payee_added_at is None:
        return None
    age = m.at - m.payee_added_at
    period = rule.params["period"]
    if age >= period:
        return None
    return (f"the payee was added {format_duration(max(age, timedelta(seconds=1)))} before the transfer, within the "
            f"{format_duration(period)} cooling-off period")


def _structuring(rule: Rule, ctx: _Context) -> str | None:
    m, p = ctx.movement, rule.params
    direction, threshold = m.cash_direction, p["threshold"].get(m.currency)
    if direction is None or threshold is None:
        return None
    floor = p["near_ratio"] * threshold

    def near(amount: int) -> bool:
        return bool(floor <= amount < threshold)

    if not near(m.amount):
        return None
    amounts = [c.amount for c in between(ctx.customer.cash, m.at - p["window"], m.at, cash_time)
               if c.direction == direction and c.currency == m.currency and near(c.amount)]
    amounts.append(m.amount)
    if len(amounts) < p["min_count"] or sum(amounts) <= threshold:
        return None
    word = "deposits" if direction == "in" else "withdrawals"
    return f"{len(amounts)} cash {word} just under {_money(threshold, m.currency)} within {_window(rule)} " \
           f"total {_money(sum(amounts), m.currency)}"


def _ctr(rule: Rule, ctx: _Context) -> str | None:
    m = ctx.movement
    direction, threshold = m.cash_direction, rule.params["threshold"].get(m.currency)
    if direction is None or threshold is None:
        return None
    before = ctx.customer.cash_total(m.business_day, m.currency, direction)
    if not before < threshold <= before + m.amount:
        return None
    word = "in" if direction == "in" else "out"
    return f"customer's cash {word} on {m.business_day} reaches {_money(before + m.amount, m.currency)} " \
           f"(threshold {_money(threshold, m.currency)})"


def _rapid_movement(rule: Rule, ctx: _Context) -> str | None:
    m, p = ctx.movement, rule.params
    minimum = p["min_inflow"].get(m.currency)
    if not m.is_debit or minimum is None:
        return None
    credits = between(ctx.account.credits, m.at - p["window"], m.at)
    inflow = sum(amount for _, amount in credits)
    if inflow < minimum:
        return None
    first_in = credits[0][0]   # in time order: the earliest
    outflow = sum(amount for _, amount in between(ctx.account.debits, first_in, m.at)) + m.amount
    if outflow < p["min_ratio"] * inflow:
        return None
    ratio = (Decimal(outflow) / Decimal(inflow)).quantize(Decimal("0.01"))
    return f"{_money(outflow, m.currency)} out after {_money(inflow, m.currency)} in within {_window(rule)} " \
           f"(ratio {ratio}, at least {p['min_ratio']})"


def _jurisdiction(rule: Rule, ctx: _Context) -> str | None:
    country = (ctx.movement.counterparty_country or "").strip().upper()
    if country not in ctx.rule_set.high_risk_jurisdictions:
        return None
    return f"counterparty country {country} is on the high-risk jurisdictions list"


def _sanctions(rule: Rule, ctx: _Context) -> str | None:
    name = ctx.movement.counterparty_name
    matches = ctx.sanctions.screen(name, rule.params["threshold"]) if name else []
    if not matches:
        return None
    best = matches[0]
    also = f" (and {len(matches) - 1} more)" if len(matches) > 1 else ""
    return f"counterparty {name!r} matches {best.uid} {best.listed_name!r} as {best.matched_name!r}, " \
           f"score {best.score}, program {best.program}{also}"


def _window(rule: Rule) -> str:
    return format_duration(rule.params["window"])


_EVALUATORS: dict[str, Callable[[Rule, _Context], str | None]] = {
    "velocity": _velocity,
    "large_amount_relative": _large_relative,
    "large_amount_absolute": _large_absolute,
    "new_payee": _new_payee,
    "payee_cooling_off": _cooling_off,
    "structuring": _structuring,
    "ctr": _ctr,
    "rapid_movement": _rapid_movement,
    "high_risk_jurisdiction": _jurisdiction,
    "sanctions": _sanctions,
}
# A kind the loader accepts but nothing evaluates would be a rule that silently never fires.
if _EVALUATORS.keys() != KINDS.keys():
    raise RuntimeError(f"rule kinds without an evaluator: {sorted(KINDS.keys() ^ _EVALUATORS.keys())}")
