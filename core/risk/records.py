"""The risk engine's records on its own topics (Avro schemas in schemas/, like the ledger's)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.commands import derive_id
from core.risk.evaluate import Assessment, RuleHit
from core.risk.features import Movement


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskAssessed:
    """One scored money movement (bank.risk.assessments; with action != allow also bank.risk.alerts).

    It carries the whole movement, so the assessments topic is the history a back-test replays.
    """

    event_id: str
    command_id: str
    correlation_id: str
    account_id: str
    customer_id: str
    assessed_at: datetime
    kind: str                         # deposit | withdrawal | transfer_out
    amount: int
    currency: str
    at: datetime                      # when the movement was asked for (the command's issued_at)
    channel: str
    counterparty_account_id: str | None
    counterparty_name: str | None
    counterparty_country: str | None
    action: str
    score: int
    rule_set_version: str
    hits: list[dict[str, Any]]
    schema_version: int = 1

    @classmethod
    def of(cls, command_id: str, correlation_id: str, movement: Movement, assessment: Assessment,
           assessed_at: datetime) -> RiskAssessed:
        return cls(event_id=derive_id(command_id, "RiskAssessed"), command_id=command_id,
                   correlation_id=correlation_id, account_id=movement.account_id, customer_id=movement.customer_id,
                   assessed_at=assessed_at, kind=movement.kind, amount=movement.amount, currency=movement.currency,
                   at=movement.at, channel=movement.channel, counterparty_account_id=movement.counterparty_account_id,
                   counterparty_name=movement.counterparty_name, counterparty_country=movement.counterparty_country,
                   action=assessment.action, score=assessment.score, rule_set_version=assessment.rule_set_version,
                   hits=assessment.hit_dicts())

    @property
    def movement(self) -> Movement:
        # The record holds kind as a plain string (Avro has no literal types); the writer wrote a Movement's.
        return Movement(kind=self.kind,  # type: ignore[arg-type]
                        account_id=self.account_id, customer_id=self.customer_id,
                        amount=self.amount, currency=self.currency, at=self.at, channel=self.channel,
                        counterparty_account_id=self.counterparty_account_id,
                        counterparty_name=self.counterparty_name, counterparty_country=self.counterparty_country)

    @property
    def assessment(self) -> Assessment:
        # The record holds action as a plain string (Avro has no literal types); the writer wrote an Assessment's.
        return Assessment(score=self.score, action=self.action,  # type: ignore[arg-type]
                          rule_set_version=self.rule_set_version,
                          hits=tuple(RuleHit(**h) for h in self.hits))


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSetPublished:
    """A rule-set version made live (bank.risk.rules, keyed by version): the newest record is the live one."""

    version: str
    text: str                         # the YAML as published, validated by core.risk.rules.load_rule_set
    source: str                       # the file name it came from
    sha256: str
    published_at: datetime
    published_by: str
    schema_version: int = 1

    @classmethod
    def of(cls, version: str, text: str, source: str, published_at: datetime, published_by: str) -> RuleSetPublished:
        return cls(version=version, text=text, source=source, sha256=hashlib.sha256(text.encode()).hexdigest(),
                   published_at=published_at, published_by=published_by)


RISK_TYPES: dict[str, type] = {t.__name__: t for t in (RiskAssessed, RuleSetPublished)}
