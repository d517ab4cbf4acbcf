"""Fraud and AML rules: each rule fires at its threshold and not just below; rule files are validated with line
and field; feature state round-trips and prunes; an assessment takes the most severe action and names its version.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from core.money import CURRENCY_DIGITS, parse_amount
from core.risk.evaluate import Assessment, evaluate
from core.risk.features import (
    AVERAGE_DAYS,
    PAYEE_MEMORY,
    RECENT_RETENTION,
    AccountFeatures,
    CustomerFeatures,
    Movement,
    within,
)
from core.risk.rules import RuleSet, RuleSetError, diff, dump, load_rule_set
from core.risk.sanctions import SanctionsList, load_sanctions

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)   # a Monday morning
SANCTIONS = load_sanctions((ROOT / "rules" / "sanctions.csv").read_text(encoding="utf-8"))


def every_currency(amount: str, **raw: str) -> str:
    """A YAML amount mapping naming every accepted currency, as a rule set must: `amount` (quoted) for each,
    except the currencies given as raw YAML scalars (`EUR="1000.5"` writes `EUR: 1000.5`)."""
    return "{" + ", ".join(f"{currency}: {raw.get(currency, repr(amount).replace(chr(39), chr(34)))}"
                           for currency in sorted(CURRENCY_DIGITS)) + "}"


def one_rule(kind: str, params: str = "", *, action: str = "alert", jurisdictions: str = "") -> RuleSet:
    params_block = f"\n    params: {params}" if params else ""
    return load_rule_set(f"""
version: "t1"
{jurisdictions}
rules:
  - id: r1
    description: rule under test
    kind: {kind}
    score: 40
    severity: medium
    action: {action}{params_block}
""")


def mv(kind: str = "transfer_out", amount: str | int = 100, *, at: datetime = T0, account: str = "acc-1",
       customer: str = "cus-1", currency: str = "EUR", channel: str = "transfer", **counterparty: str) -> Movement:
    # amounts in currency units for readability ("12.50", or 12)
    return Movement(kind=kind, account_id=account, customer_id=customer, amount=parse_amount(str(amount), currency),
                    currency=currency, at=at,
                    channel=channel, **counterparty)


def assess(rule_set: RuleSet, history: list[Movement], movement: Movement,
           sanctions: SanctionsList = SANCTIONS) -> Assessment:
    """Fold the history into fresh feature states, then evaluate `movement` against them."""
    account = AccountFeatures(account_id=movement.account_id)
    customer = CustomerFeatures(customer_id=movement.customer_id)
    for past in history:
        if past.account_id == account.account_id:
            account = account.observe(past)
        if past.customer_id == customer.customer_id:
            customer = customer.observe(past)
    return evaluate(rule_set, movement, account, customer, sanctions)


def fired(rule_set: RuleSet, history: list[Movement], movement: Movement) -> bool:
    return [h.rule_id for h in assess(rule_set, history, movement).hits] == ["r1"]


# ---------------------------------------------------------------- velocity


VELOCITY = one_rule("velocity", "{max_debits: 5, window: 10m}")


def test_velocity_fires_on_the_sixth_debit_within_the_window() -> None:
    history = [mv("withdrawal", 10, at=T0 + timedelta(minutes=i)) for i in range(5)]
    result = assess(VELOCITY, history, mv(at=T0 + timedelta(minutes=10)))
    assert [h.rule_id for h in result.hits] == ["r1"] and "6 debits within 10m" in result.hits[0].reason


def test_velocity_does_not_fire_on_the_fifth_debit_or_outside_the_window_or_on_credits() -> None:
    four = [mv("withdrawal", 10, at=T0 + timedelta(minutes=i)) for i in range(4)]
    assert not fired(VELOCITY, four, mv(at=T0 + timedelta(minutes=5)))
    five_but_one_old = [mv(at=T0 - timedelta(minutes=1))] + four
    assert not fired(VELOCITY, five_but_one_old, mv(at=T0 + timedelta(minutes=9, seconds=30)))
    five = [mv(at=T0 + timedelta(minutes=i)) for i in range(5)]
    assert not fired(VELOCITY, five, mv("deposit", at=T0 + timedelta(minutes=6)))


# ---------------------------------------------------------------- large amount


RELATIVE = one_rule("large_amount_relative", '{multiplier: "5", min_history: 3, min_amount: ' + every_currency("400") + '}')
ABSOLUTE = one_rule("large_amount_absolute", '{threshold: ' + every_currency("50000", JPY='"5000000"') + '}')


def _history_averaging_100() -> list[Movement]:
    return [mv("withdrawal", amount, at=T0 - timedelta(days=d)) for d, amount in ((1, 50), (2, 150), (3, 100))]


def test_large_relative_fires_at_k_times_the_average() -> None:
    result = assess(RELATIVE, _history_averaging_100(), mv(amount=500))
    assert result.hits and "average debit of 100.00 EUR (3 debits)" in result.hits[0].reason


def test_large_relative_does_not_fire_just_below_or_without_history_or_under_the_floor() -> None:
    assert not fired(RELATIVE, _history_averaging_100(), mv(amount="499.99"))
    assert not fired(RELATIVE, _history_averaging_100()[:2], mv(amount=5000))        # 2 < min_history
    small = [mv("withdrawal", 10, at=T0 - timedelta(days=d)) for d in (1, 2, 3)]
    assert not fired(RELATIVE, small, mv(amount="399.99"))                           # 40 x average, < 400
    assert fired(RELATIVE, small, mv(amount=400))


def test_large_relative_average_only_covers_30_days() -> None:
    old = [mv("withdrawal", 1000, at=T0 - timedelta(days=AVERAGE_DAYS + d)) for d in range(3)]
    assert fired(RELATIVE, old + _history_averaging_100(), mv(amount=500))
    assert not fired(RELATIVE, old, mv(amount=5000))                                 # no history left


def test_large_absolute_fires_at_the_threshold_per_currency() -> None:
    assert fired(ABSOLUTE, [], mv(amount=50000))
    assert fired(ABSOLUTE, [], mv(amount=5_000_000, currency="JPY"))
    assert not fired(ABSOLUTE, [], mv(amount="49999.99"))
    assert not fired(ABSOLUTE, [], mv(amount=4_999_999, currency="JPY"))
    assert fired(ABSOLUTE, [], mv(amount=50000, currency="USD"))                     # every currency has one
    assert not fired(ABSOLUTE, [], mv(amount="49999.99", currency="USD"))
    assert not fired(ABSOLUTE, [], mv("deposit", amount=10**6))                      # credits never


# ---------------------------------------------------------------- new payee


NEW_PAYEE = one_rule("new_payee", '{min_amount: ' + every_currency("1000") + '}')


def test_new_payee_fires_on_a_first_transfer_at_the_amount() -> None:
    result = assess(NEW_PAYEE, [mv(amount=5000, counterparty_account_id="acc-9")],
                    mv(amount=1000, counterparty_account_id="acc-2"))
    assert result.hits and "first transfer to acc-2" in result.hits[0].reason
    assert fired(NEW_PAYEE, [], mv(amount=1000, counterparty_name="Ada Lovelace"))


def test_new_payee_does_not_fire_below_the_amount_or_for_a_known_payee() -> None:
    assert not fired(NEW_PAYEE, [], mv(amount="999.99", counterparty_account_id="acc-2"))
    known = [mv(amount=10, counterparty_account_id="acc-2", at=T0 - timedelta(days=30))]
    assert not fired(NEW_PAYEE, known, mv(amount=5000, counterparty_account_id="acc-2"))
    by_name = [mv(amount=10, counterparty_name="ada  LOVELACE", at=T0 - timedelta(days=1))]
    assert not fired(NEW_PAYEE, by_name, mv(amount=5000, counterparty_name="Ada Lovelace"))
    assert not fired(NEW_PAYEE, [], mv("withdrawal", amount=5000, counterparty_account_id="acc-2"))


def test_new_payee_forgets_payees_after_the_payee_memory() -> None:
    forgotten = [mv(amount=10, counterparty_account_id="acc-2", at=T0 - PAYEE_MEMORY - timedelta(days=1)),
                 mv("deposit", 10, at=T0 - timedelta(hours=1))]   # a newer movement moves the horizon on
    assert fired(NEW_PAYEE, forgotten, mv(amount=5000, counterparty_account_id="acc-2"))


# ---------------------------------------------------------------- structuring and CTR


STRUCTURING = one_rule("structuring", '{threshold: ' + every_currency("10000") + ', near_ratio: "0.9", min_count: 2, window: 24h}')
CTR = one_rule("ctr", '{threshold: ' + every_currency("10000") + '}')


def cash(kind: str, amount: str | int, hours: float, *, account: str = "acc-1") -> Movement:
    return mv(kind, amount, at=T0 + timedelta(hours=hours), channel="cash", account=account)


def test_structuring_fires_on_near_threshold_cash_deposits_summing_over_it_across_accounts() -> None:
    result = assess(STRUCTURING, [cash("deposit", 9500, 0, account="acc-2")], cash("deposit", 9000, 23))
    assert result.hits and "2 cash deposits just under 10000.00 EUR within 24h total 18500.00 EUR" \
        in result.hits[0].reason
    assert fired(STRUCTURING, [cash("withdrawal", 9999, 0)], cash("withdrawal", 9999, 1))


def test_structuring_does_not_fire_just_below_its_thresholds() -> None:
    assert not fired(STRUCTURING, [cash("deposit", "8999.99", 0)], cash("deposit", 9500, 1))   # not near
    assert not fired(STRUCTURING, [cash("deposit", 9500, 0)], cash("deposit", "8999.99", 1))   # current not near
    assert not fired(STRUCTURING, [cash("deposit", 9500, 0)], cash("deposit", 9500, 24.01))    # outside 24h
    assert not fired(STRUCTURING, [cash("withdrawal", 9500, 0)], cash("deposit", 9500, 1))    # other direction
    assert not fired(STRUCTURING, [], cash("deposit", 9999, 0))                                 # one is not several
    assert not fired(STRUCTURING, [mv("deposit", 9500, at=T0)], cash("deposit", 9500, 1))    # not cash
    assert not fired(STRUCTURING, [cash("deposit", 10000, 0)], cash("deposit", 9500, 1))     # at threshold: not under


def test_structuring_needs_the_sum_to_exceed_the_threshold() -> None:
    low = one_rule("structuring", '{threshold: ' + every_currency("10000") + ', near_ratio: "0.4", min_count: 2, window: 24h}')
    assert not fired(low, [cash("deposit", 5000, 0)], cash("deposit", 5000, 1))               # sum == threshold
    assert fired(low, [cash("deposit", 5000, 0)], cash("deposit", "5000.01", 1))


def test_ctr_fires_when_the_business_day_cash_total_reaches_the_threshold() -> None:
    history = [cash("deposit", 6000, 0), cash("deposit", 3000, 1, account="acc-2")]
    result = assess(CTR, history, cash("deposit", 1000, 2))
    assert result.hits and "cash in on 2025-06-02 reaches 10000.00 EUR" in result.hits[0].reason
    assert fired(CTR, [], cash("withdrawal", 10000, 0))


def test_ctr_does_not_fire_below_the_threshold_across_days_or_twice() -> None:
    assert not fired(CTR, [cash("deposit", 6000, 0)], cash("deposit", "3999.99", 1))
    # 09:00 + 15h is 00:00 the next UTC day: a new business day
    assert not fired(CTR, [cash("deposit", 6000, 0)], cash("deposit", 6000, 15))
    assert not fired(CTR, [cash("deposit", 6000, 0)], cash("withdrawal", 6000, 1))
    assert not fired(CTR, [cash("deposit", 10000, 0)], cash("deposit", 500, 1))               # already reported
    assert not fired(CTR, [], mv("deposit", 20000))                                           # not cash


# ---------------------------------------------------------------- rapid movement


RAPID = one_rule("rapid_movement", '{window: 24h, min_ratio: "0.8", min_inflow: ' + every_currency("1000") + '}')


def test_rapid_movement_fires_when_most_of_a_recent_inflow_leaves() -> None:
    history = [mv("transfer_in", 5000, at=T0), mv("withdrawal", 2000, at=T0 + timedelta(hours=1))]
    result = assess(RAPID, history, mv(amount=2000, at=T0 + timedelta(hours=2)))
    assert result.hits and "4000.00 EUR out after 5000.00 EUR in within 24h (ratio 0.80" in result.hits[0].reason


def test_rapid_movement_does_not_fire_below_the_ratio_or_inflow_or_outside_the_window() -> None:
    inflow = [mv("deposit", 5000, at=T0)]
    assert not fired(RAPID, inflow, mv(amount="3999.99", at=T0 + timedelta(hours=1)))
    assert not fired(RAPID, [mv("deposit", "999.99", at=T0)], mv(amount="999.99", at=T0 + timedelta(hours=1)))
    assert not fired(RAPID, inflow, mv(amount=5000, at=T0 + timedelta(hours=24, seconds=1)))
    before_inflow = [mv("withdrawal", 3000, at=T0 - timedelta(hours=1))] + inflow   # debits before don't count
    assert not fired(RAPID, before_inflow, mv(amount=1000, at=T0 + timedelta(hours=1)))


# ---------------------------------------------------------------- jurisdiction and sanctions


JURISDICTION = one_rule("high_risk_jurisdiction", action="hold", jurisdictions="high_risk_jurisdictions: [KP, IR]")
SANCTIONS_RULE = one_rule("sanctions", action="block")


def test_high_risk_jurisdiction_fires_for_a_listed_country_only() -> None:
    assert fired(JURISDICTION, [], mv(counterparty_country="KP"))
    assert fired(JURISDICTION, [], mv("transfer_in", counterparty_country="ir"))
    assert not fired(JURISDICTION, [], mv(counterparty_country="KR"))
    assert not fired(JURISDICTION, [], mv())


def test_sanctions_fires_on_a_listed_name_and_blocks() -> None:
    result = assess(SANCTIONS_RULE, [], mv(counterparty_name="Nunez, Jose Alvarez"))
    assert result.action == "block" and "SAMPLE-1001" in result.hits[0].reason


def test_sanctions_does_not_fire_below_its_threshold() -> None:
    assert not fired(SANCTIONS_RULE, [], mv(counterparty_name="Jose Alvarez"))                  # 80 < 90
    lenient = one_rule("sanctions", "{threshold: 80}")
    assert fired(lenient, [], mv(counterparty_name="Jose Alvarez"))
    assert not fired(SANCTIONS_RULE, [], mv())


# ---------------------------------------------------------------- assessment


def test_evaluate_takes_the_most_severe_action_caps_the_score_and_names_the_version() -> None:
    rule_set = load_rule_set((ROOT / "rules" / "default.yaml").read_text(encoding="utf-8"))
    risky = mv(amount=60000, counterparty_name="Golden Lotus Trading", counterparty_country="KP",
               counterparty_account_id="acc-x")
    result = assess(rule_set, [], risky)
    assert {h.rule_id for h in result.hits} == {"sanctions-counterparty", "high-risk-jurisdiction",
                                                "large-amount-absolute", "new-payee"}
    assert result.action == "block" and result.score == 100 and result.rule_set_version == "2026-11-24.1"
    held = assess(rule_set, [], mv(amount=60000, counterparty_country="MM"))
    assert held.action == "hold" and held.score == 100       # 70 + 50, capped
    two = assess(rule_set, [], mv(amount=1000, counterparty_country="MM", counterparty_account_id="acc-y"))
    assert two.action == "hold" and two.score == 70 + 30
    quiet = assess(rule_set, [], mv("deposit", 10))
    assert quiet.action == "allow" and quiet.score == 0 and quiet.hits == ()
    assert quiet.to_dict() == {"score": 0, "action": "allow", "rule_set_version": "2026-11-24.1", "hits": []}


def test_disabled_rules_do_not_fire() -> None:
    rule_set = load_rule_set(dump(ABSOLUTE).replace("action: alert", "action: alert\n  enabled: false"))
    assert not rule_set.rules[0].enabled
    assert assess(rule_set, [], mv(amount=10**6)).hits == ()


# ---------------------------------------------------------------- features


def _busy_history() -> list[Movement]:
    at = T0 - timedelta(days=40)
    out = []
    for i in range(60):
        at += timedelta(hours=16)
        out.append(mv(("deposit", "withdrawal", "transfer_out", "transfer_in")[i % 4], 100 + i, at=at,
                      channel="cash" if i % 3 == 0 else "transfer", counterparty_account_id=f"acc-{i % 5}"))
    return out


def test_feature_state_round_trips_through_a_dict() -> None:
    account, customer = AccountFeatures(account_id="acc-1"), CustomerFeatures(customer_id="cus-1")
    for movement in _busy_history():
        account, customer = account.observe(movement), customer.observe(movement)
    assert account.debits and account.credits and account.daily_debits and account.payees
    assert customer.cash and customer.daily_cash
    assert AccountFeatures.from_dict(account.to_dict()) == account
    assert CustomerFeatures.from_dict(customer.to_dict()) == customer


def test_feature_state_prunes_what_no_window_needs_and_observe_is_pure() -> None:
    account, customer = AccountFeatures(account_id="acc-1"), CustomerFeatures(customer_id="cus-1")
    for movement in _busy_history():
        account, customer = account.observe(movement), customer.observe(movement)
    newest = account.newest
    assert newest is not None
    assert all(at >= newest - RECENT_RETENTION for at, _ in account.debits + account.credits)
    assert customer.newest is not None and all(c.at >= customer.newest - RECENT_RETENTION for c in customer.cash)
    assert len({d for d, _, _ in account.daily_debits}) <= AVERAGE_DAYS
    before = account.to_dict()
    later = account.observe(mv("withdrawal", 1, at=newest + timedelta(days=8)))
    assert account.to_dict() == before                                  # the old state is untouched
    assert later.debits == ((newest + timedelta(days=8), 100),) and later.credits == ()


def test_a_late_movement_does_not_move_the_horizon_back() -> None:
    account = AccountFeatures(account_id="acc-1").observe(mv("withdrawal", 1, at=T0))
    late = account.observe(mv("withdrawal", 1, at=T0 - timedelta(days=8)))
    assert late.newest == T0 and late.debits == account.debits


def test_out_of_order_movements_are_kept_in_time_order_as_a_full_filter_would_keep_them() -> None:
    # movements arriving out of order, some later than the horizon allows: what is kept, and every window read,
    # must be what filtering all of them by time gives (pruning and windows are a binary search on time order)
    import random

    shuffle = random.Random(7)
    movements = [mv(("deposit", "withdrawal")[i % 2], 1 + i, at=T0 + timedelta(hours=shuffle.randint(0, 400)),
                    channel=("cash", "transfer")[i % 3 == 0]) for i in range(300)]
    account, customer = AccountFeatures(account_id="acc-1"), CustomerFeatures(customer_id="cus-1")
    seen: list[Movement] = []
    for movement in movements:
        account, customer = account.observe(movement), customer.observe(movement)
        seen.append(movement)
        newest = max(m.at for m in seen)
        kept = sorted((m.at, m.amount) for m in seen if m.at >= newest - RECENT_RETENTION and not m.is_debit)
        assert sorted(account.credits) == kept and list(account.credits) == sorted(account.credits, key=lambda e: e[0])
        assert [c.at for c in customer.cash] == sorted(c.at for c in customer.cash)
        window = timedelta(hours=30)
        assert sorted(within(account.credits, movement.at, window)) == sorted(
            amount for at, amount in account.credits if movement.at - window <= at <= movement.at)
    snapshot = account.to_dict()
    snapshot["credits"].reverse()   # an older release's snapshot, in arrival order: restored in time order
    restored = AccountFeatures.from_dict(snapshot)
    assert [at for at, _ in restored.credits] == [at for at, _ in account.credits]   # (ties in either order)
    assert sorted(restored.credits) == sorted(account.credits)


def test_movements_must_be_timezone_aware_and_positive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mv(at=datetime(2025, 6, 2, 9, 0))
    with pytest.raises(ValueError, match="positive"):
        Movement(kind="deposit", account_id="a", customer_id="c", amount=0, currency="EUR", at=T0)


# ---------------------------------------------------------------- rule files


def test_the_default_rule_set_loads_and_round_trips_through_dump() -> None:
    text = (ROOT / "rules" / "default.yaml").read_text(encoding="utf-8")
    rule_set = load_rule_set(text, "rules/default.yaml")
    kinds = {r.kind for r in rule_set.rules}
    assert kinds == {"velocity", "large_amount_relative", "large_amount_absolute", "new_payee", "structuring",
                     "ctr", "rapid_movement", "high_risk_jurisdiction", "sanctions", "payee_cooling_off"}
    assert rule_set.rule("velocity-10m").params == {"max_debits": 5, "window": timedelta(minutes=10)}
    assert rule_set.rule("structuring-cash-24h").params["near_ratio"] == Decimal("0.9")
    assert rule_set.rule("ctr-daily-cash").params["threshold"]["EUR"] == 1_000_000
    assert {r.id: r.action for r in rule_set.rules}["sanctions-counterparty"] == "block"
    assert load_rule_set(dump(rule_set)) == rule_set


GOOD = """\
version: "v1"
rules:
  - id: velocity
    description: too many debits
    kind: velocity
    score: 40
    severity: medium
    action: alert
    params:
      max_debits: 5
      window: 10m
  - id: big
    description: big debit
    kind: large_amount_absolute
    score: 50
    severity: high
    action: hold
    params:
      threshold: {EUR: "50000"}
""".replace('{EUR: "50000"}', every_currency("50000"))


@pytest.mark.parametrize(("old", "new", "line", "field", "words"), [
    ("      window: 10m", "      window: ten", 11, "rules[0].params.window", 'expected a duration like "10m"'),
    ("      window: 10m", "      window: 8d", 11, "rules[0].params.window", "longer than the 7d"),
    ("    action: hold", "    action: freeze", 17, "rules[1].action", 'expected one of allow, alert, hold, block'),
    ('EUR: "50000"', 'EUR: "-50000"', 19, "rules[1].params.threshold.EUR", "not a plain positive decimal"),
    ('EUR: "50000"', 'EUR: -50000', 19, "rules[1].params.threshold.EUR", "not a plain positive decimal"),
    ('EUR: "50000"', 'EUR: "0.001"', 19, "rules[1].params.threshold.EUR", "EUR has 2 decimal place(s)"),
    ('EUR: "50000"', 'EURO: "5"', 19, "rules[1].params.threshold.EURO", "not a supported ISO-4217"),
    ("  - id: big", "  - id: velocity", 12, "rules[1].id", 'duplicate rule id "velocity"'),
    ("      max_debits: 5", "      max_debits: 5\n      max_debit: 6", 11, "rules[0].params.max_debit",
     'unknown field (did you mean "max_debits"?)'),
    ("      max_debits: 5", "      max_debits: 0", 10, "rules[0].params.max_debits", "from 1 to 10000"),
    ("      max_debits: 5\n", "", 10, "rules[0].params.max_debits", "missing required field"),
    ("    score: 50", "    score: 150", 15, "rules[1].score", 'from 0 to 100, got "150"'),
    ("    kind: velocity", "    kind: velocityy", 5, "rules[0].kind", "expected one of velocity,"),
    ("    severity: medium", "    severity: medium\n    severity: high", 8, "rules[0].severity", "duplicate key"),
    ("    description: big debit", "    description:", 13, "rules[1].description", "got nothing"),
    ('version: "v1"', "version: [1]", 1, "version", "got a list"),
    ('version: "v1"\n', "", 1, "version", "missing required field"),
    ("    score: 40", "    score: 40\n    enabled: maybe", 7, "rules[0].enabled", "expected true or false"),
])
def test_malformed_rule_files_are_refused_naming_line_and_field(old: str, new: str, line: int, field: str,
                                                                words: str) -> None:
    assert old in GOOD
    with pytest.raises(RuleSetError) as error:
        load_rule_set(GOOD.replace(old, new, 1), "candidate.yaml")
    assert (error.value.line, error.value.field) == (line, field), str(error.value)
    assert str(error.value).startswith(f"candidate.yaml:{line}: {field}: ") and words in str(error.value)


@pytest.mark.parametrize("kind_params", [
    '{threshold: {EUR: "50000", USD: "50000"}}',
    '{threshold: ' + every_currency("50000").replace(', JPY: "50000"', "") + '}',
])
def test_an_amount_rule_that_leaves_out_an_accepted_currency_is_refused(kind_params: str) -> None:
    """Every currency the platform accepts has a threshold: a movement in a forgotten one would pass unseen."""
    with pytest.raises(RuleSetError) as error:
        one_rule("large_amount_absolute", kind_params)
    assert error.value.field == "rules[0].params.threshold", str(error.value)
    assert 'rule "r1" has no amount for' in str(error.value) and "JPY" in str(error.value)
    assert "every currency the platform accepts" in str(error.value)


def test_the_default_rule_set_covers_every_accepted_currency() -> None:
    rule_set = load_rule_set((ROOT / "rules" / "default.yaml").read_text(), "default.yaml")
    amounts = [value for rule in rule_set.rules for value in rule.params.values() if isinstance(value, dict)]
    assert len(amounts) == 6 and all(set(value) == set(CURRENCY_DIGITS) for value in amounts)


def test_ratios_and_multipliers_are_decimals_never_floats() -> None:
    rule_set = one_rule("rapid_movement", "{window: 1h, min_ratio: 0.35, min_inflow: " + every_currency("1000", EUR="1000.5") + "}")
    assert rule_set.rules[0].params["min_ratio"] == Decimal("0.35")
    assert rule_set.rules[0].params["min_inflow"]["EUR"] == 100050
    with pytest.raises(RuleSetError, match=r"params\.min_ratio: expected a ratio above 0 and at most 1"):
        one_rule("rapid_movement", '{window: 1h, min_ratio: "1.5", min_inflow: ' + every_currency("1") + '}')
    with pytest.raises(RuleSetError, match=r"params\.multiplier: expected a multiplier above 1"):
        one_rule("large_amount_relative", '{multiplier: "1e3", min_history: 1}')


def test_bad_yaml_syntax_is_refused_with_its_line() -> None:
    with pytest.raises(RuleSetError) as error:
        load_rule_set(GOOD.replace("      window: 10m", "      window: [10m"), "candidate.yaml")
    assert error.value.field is None and error.value.line in (11, 12)
    assert str(error.value).startswith(f"candidate.yaml:{error.value.line}: not valid YAML: ")
    with pytest.raises(RuleSetError, match="^rules.yaml:1: the file is empty"):
        load_rule_set("")


def test_jurisdictions_are_validated_and_required_by_their_rule() -> None:
    with pytest.raises(RuleSetError) as error:
        one_rule("high_risk_jurisdiction", jurisdictions="high_risk_jurisdictions: [KP, Iran]")
    assert error.value.field == "high_risk_jurisdictions[1]" and error.value.line == 3
    with pytest.raises(RuleSetError, match=r"rules\[0\]\.kind: high_risk_jurisdiction needs a non-empty"):
        one_rule("high_risk_jurisdiction")


def test_diff_lists_added_removed_and_changed_rules() -> None:
    old = load_rule_set(GOOD)
    new = load_rule_set(
        GOOD.replace('version: "v1"', 'version: "v2"\nhigh_risk_jurisdictions: [KP]')
        .replace("window: 10m", "window: 5m").replace("    action: hold", "    action: block")
        .replace("  - id: big", "  - id: bigger")
    )
    changes = diff(old, new)
    assert [r.id for r in changes.added] == ["bigger"] and [r.id for r in changes.removed] == ["big"]
    assert [(c.rule_id, c.changes) for c in changes.changed] == [("velocity", (("params.window", "10m", "5m"),))]
    assert changes.jurisdictions_added == ("KP",) and not changes.is_empty
    assert changes.lines()[:3] == ["v1 -> v2", "+ bigger (large_amount_absolute, block, score 50)",
                                   "- big (large_amount_absolute, hold, score 50)"]
    assert "~ velocity: params.window: '10m' -> '5m'" in changes.lines()
    assert diff(old, old).is_empty
