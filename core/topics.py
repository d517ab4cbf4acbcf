"""The topic registry: topics.yaml is the one place topics are declared (infra.topics.load_registry reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import yaml

TopicKind = Literal["command", "event", "deadletter", "internal"]

LEDGER_COMMANDS = "bank.ledger.commands"
LEDGER_COMMANDS_DLQ = "bank.ledger.commands.dlq"
LEDGER_EVENTS = "bank.ledger.events"
LEDGER_EVENTS_DLQ = "bank.ledger.events.dlq"
RISK_COMMANDS = "bank.risk.commands"
RISK_COMMANDS_DLQ = "bank.risk.commands.dlq"
RISK_ASSESSMENTS = "bank.risk.assessments"
RISK_ALERTS = "bank.risk.alerts"
RISK_RULES = "bank.risk.rules"
AUDIT = "bank.audit"
CLOCK = "bank.clock"
PAYMENTS_OUTBOUND = "bank.payments.outbound"
PAYMENTS_OUTBOUND_DLQ = "bank.payments.outbound.dlq"
STANDING_ORDERS = "bank.standing-orders"
LOANS = "bank.loans"
INTEREST = "bank.interest"
FX_RATES = "bank.fx.rates"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    kind: TopicKind
    partitions: int
    replication: int
    retention_ms: int
    cleanup_policy: str
    key: str
    value_schemas: tuple[str, ...] = ()
    dead_letter: str | None = None
    description: str = ""
    producers: tuple[str, ...] = ()   # who writes the topic, who reads it: documentation (docs/topics.md)
    consumers: tuple[str, ...] = ()
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, str]:
        """The topic-level Kafka configs this registry manages."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            **self.extra_config,
        }


class TopicRegistryError(ValueError):
    pass


def parse_registry(text: str) -> dict[str, TopicSpec]:
    doc = yaml.safe_load(text) or {}
    defaults = doc.get("defaults", {})
    specs: dict[str, TopicSpec] = {}
    for name, raw in (doc.get("topics") or {}).items():
        try:
            specs[name] = TopicSpec(
                name=name,
                kind=raw["kind"],
                partitions=int(raw.get("partitions", defaults.get("partitions", 1))),
                replication=int(raw.get("replication", defaults.get("replication", 1))),
                retention_ms=int(raw["retention_ms"]),
                cleanup_policy=str(raw["cleanup_policy"]),
                key=str(raw["key"]),
                value_schemas=tuple(raw.get("value_schemas") or ()),
                dead_letter=raw.get("dead_letter"),
                description=str(raw.get("description", "")),
                producers=tuple(str(p) for p in raw.get("producers") or ()),
                consumers=tuple(str(c) for c in raw.get("consumers") or ()),
                extra_config={k: str(v) for k, v in (raw.get("config") or {}).items()},
            )
        except KeyError as missing:
            raise TopicRegistryError(f"topic {name!r}: missing field {missing}") from None
    for spec in specs.values():
        if spec.dead_letter and spec.dead_letter not in specs:
            raise TopicRegistryError(f"topic {spec.name!r}: dead_letter {spec.dead_letter!r} is not declared")
    return specs


def with_replication(registry: dict[str, TopicSpec], replication: int) -> dict[str, TopicSpec]:
    """A copy of `registry` with every topic's replication factor set to `replication`."""
    if replication < 1:
        raise TopicRegistryError(f"replication must be at least 1, not {replication}")
    return {name: replace(spec, replication=replication) for name, spec in registry.items()}

