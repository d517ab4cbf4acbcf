"""The payee cooling-off rule (issue 16 point 1): a transfer to a payee added less than the rule's period before it
is held for review. A rule of the fraud rule set, tunable like every rule (rules/default.yaml: 24h, hold)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.risk.evaluate import evaluate
from core.risk.features import AccountFeatures, CustomerFeatures, Movement
from core.risk.rules import load_rule_set
from core.risk.sanctions import SanctionsList

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
RULES = load_rule_set((ROOT / "rules" / "default.yaml").read_text(encoding="utf-8"), "rules/default.yaml")


def transfer(payee_added_at: datetime | None, amount: int = 2_500) -> Movement:
    return Movement(kind="transfer_out", account_id="acc-1", customer_id="cus-1", amount=amount, currency="EUR",
                    at=NOW, counterparty_account_id="acc-2", payee_added_at=payee_added_at)


def hits(movement: Movement) -> dict[str, str]:
    account = AccountFeatures(account_id="acc-1").observe(
        Movement(kind="transfer_out", account_id="acc-1", customer_id="cus-1", amount=1, currency="EUR",
                 at=NOW - timedelta(days=1), counterparty_account_id="acc-2"))   # a payee paid before: not new
    assessment = evaluate(RULES, movement, account, CustomerFeatures(customer_id="cus-1"), SanctionsList(()))
    return {hit.rule_id: hit.action for hit in assessment.hits}


def test_a_transfer_to_a_payee_added_within_the_period_is_held() -> None:
    assert hits(transfer(NOW - timedelta(hours=1))) == {"payee-cooling-off": "hold"}
    assert hits(transfer(NOW - timedelta(hours=23, minutes=59))) == {"payee-cooling-off": "hold"}


def test_an_older_payee_or_a_transfer_without_one_is_not() -> None:
    assert hits(transfer(NOW - timedelta(hours=24))) == {}
    assert hits(transfer(None)) == {}


def test_the_period_is_the_rules_own() -> None:
    text = (ROOT / "rules" / "default.yaml").read_text(encoding="utf-8")
    shorter = load_rule_set(text.replace("period: 24h", "period: 30m"), "tuned.yaml")
    movement = transfer(NOW - timedelta(hours=1))
    assessment = evaluate(shorter, movement, AccountFeatures(account_id="acc-1"), CustomerFeatures(customer_id="cus-1"),
                          SanctionsList(()))
    assert "payee-cooling-off" not in {hit.rule_id for hit in assessment.hits}
