"""Rules as data: a versioned YAML rule set that fraud analysts edit, validated before it can go live.

    version: "2026-11-24.1"
    high_risk_jurisdictions: [KP, IR, MM]
    rules:
      - id: velocity-10m
        description: More than 5 debits from one account within 10 minutes
        kind: velocity
        score: 40
        severity: medium
        action: alert
        params: {max_debits: 5, window: 10m}

The file is read with PyYAML's node API (`yaml.compose`), not `safe_load`, so that every error names the file,
the line and the field (`rules.yaml:12: rules[3].params.window: expected a duration like "10m", got "ten"`;
list indexes count from 0), duplicate keys are caught, and numbers are taken from the scalar's text: amounts
go through `core.money.parse_amount` per currency and ratios through `Decimal`, never through a float.

Parameters per kind are in `KINDS`; what each kind does with them is in `core.risk.evaluate`. Amounts are a
mapping currency -> decimal string, and every amount a rule names must cover every currency the platform accepts
(`core.money.CURRENCY_DIGITS`): a rule set that leaves one out is refused, naming the rule and the currencies,
so no currency slips past a rule because an analyst forgot it. (No fallback: a default amount read in each
currency's major units would mean 10,000 yen and 10,000 euros alike.) YAML anchors and aliases let one mapping
serve several rules.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.money import CURRENCY_DIGITS, MoneyError, format_amount, parse_amount
from core.risk.features import RECENT_RETENTION
from core.risk.sanctions import DEFAULT_THRESHOLD

Severity = Literal["low", "medium", "high", "critical"]
Action = Literal["allow", "alert", "hold", "block"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
# Least to most severe: an assessment takes the most severe action among the rules hit.
ACTIONS: tuple[Action, ...] = ("allow", "alert", "hold", "block")

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_DURATION = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
_UNIT = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?$")


class RuleSetError(ValueError):
    """A rule set that cannot go live. `line` is 1-based; `field` is a path such as "rules[3].params.window"."""

    def __init__(self, source: str, line: int, field: str | None, problem: str) -> None:
        where = f"{source}:{line}: " + (f"{field}: " if field else "")
        super().__init__(where + problem)
        self.source, self.line, self.field, self.problem = source, line, field, problem


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    id: str
    description: str
    kind: str
    score: int                       # 0..100, added up (capped at 100) over the rules an assessment hits
    severity: Severity
    action: Action
    params: dict[str, Any] = field(default_factory=dict)   # typed by KINDS: int, timedelta, Decimal, {ccy: minor}
    enabled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSet:
    version: str
    rules: tuple[Rule, ...]
    high_risk_jurisdictions: tuple[str, ...] = ()

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


# ---------------------------------------------------------------- parameter types


class _Reader:
    """Raises RuleSetError at a node; knows the file's name."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: Node, path: str | None, problem: str) -> RuleSetError:
        return RuleSetError(self.source, node.start_mark.line + 1, path, problem)

    def text(self, node: Node, path: str, expected: str) -> str:
        """A scalar's text, as written: "3.5" stays "3.5", never a float."""
        if not isinstance(node, ScalarNode) or (node.tag == _NULL and node.style is None):
            raise self.fail(node, path, f"expected {expected}, got {_shown(node)}")
        return str(node.value)


def _shown(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, ScalarNode) and node.tag == _NULL and node.style is None:
        return "nothing"
    return f'"{node.value}"'


@dataclass(frozen=True, slots=True)
class _Param:
    parse: Callable[[_Reader, Node, str], Any]
    dump: Callable[[Any], Any]
    required: bool = True
    default: Any = None
    per_currency: bool = False     # a mapping currency -> amount, which must name every accepted currency


def _int_param(lo: int, hi: int, *, required: bool = True, default: int | None = None) -> _Param:
    def parse(reader: _Reader, node: Node, path: str) -> int:
        expected = f"a whole number from {lo} to {hi}"
        text = reader.text(node, path, expected)
        if not re.fullmatch(r"-?[0-9]+", text) or not lo <= int(text) <= hi:
            raise reader.fail(node, path, f'expected {expected}, got "{text}"')
        return int(text)
    return _Param(parse, lambda v: v, required, default)


def _duration_param(maximum: timedelta = RECENT_RETENTION) -> _Param:
    def parse(reader: _Reader, node: Node, path: str) -> timedelta:
        text = reader.text(node, path, 'a duration like "10m"')
        match = _DURATION.match(text)
        if match is None:
            raise reader.fail(node, path, f'expected a duration like "10m" (s, m, h or d), got "{text}"')
        value = int(match[1]) * _UNIT[match[2]]
        if value > maximum:
            raise reader.fail(node, path, f'"{text}" is longer than the {format_duration(maximum)} the features keep')
        return value
    return _Param(parse, format_duration)


def format_duration(value: timedelta) -> str:
    """The largest whole unit, except that one day reads better as "24h"."""
    seconds = int(value.total_seconds())
    units = "dhms" if seconds > 86_400 else "hms"
    unit = next(u for u in units if seconds % int(_UNIT[u].total_seconds()) == 0)
    return f"{seconds // int(_UNIT[unit].total_seconds())}{unit}"


def _decimal_param(lo: Decimal, hi: Decimal, expected: str) -> _Param:
    """A decimal in (lo, hi]: written as text, parsed with Decimal, so no float is ever involved."""
    def parse(reader: _Reader, node: Node, path: str) -> Decimal:
        text = reader.text(node, path, expected)
        if not _DECIMAL.match(text) or not lo < Decimal(text) <= hi:
            raise reader.fail(node, path, f'expected {expected}, got "{text}"')
        return Decimal(text)
    return _Param(parse, str)


def _amounts_param(*, required: bool = True) -> _Param:
    """A mapping currency -> positive decimal amount, e.g. {EUR: "10000", JPY: "1500000"}, held in minor units."""
    def parse(reader: _Reader, node: Node, path: str) -> dict[str, int]:
        if not isinstance(node, MappingNode) or not node.value:
            raise reader.fail(node, path, f'expected a mapping of currency to amount like {{EUR: "10000"}}, '
                                          f"got {_shown(node)}")
        amounts: dict[str, int] = {}
        for key, value in node.value:
            currency = reader.text(key, path, "a currency code")
            if currency not in CURRENCY_DIGITS:
                raise reader.fail(key, f"{path}.{currency}", "not a supported ISO-4217 currency code")
            if currency in amounts:
                raise reader.fail(key, f"{path}.{currency}", "duplicate currency")
            text = reader.text(value, f"{path}.{currency}", 'an amount like "10000.00"')
            try:
                amounts[currency] = parse_amount(text, currency)
            except MoneyError as error:
                raise reader.fail(value, f"{path}.{currency}", error.detail) from None
        return amounts
    return _Param(parse, lambda v: {c: format_amount(m, c) for c, m in v.items()}, required, None, per_currency=True)


_RATIO = _decimal_param(Decimal(0), Decimal(1), 'a ratio above 0 and at most 1, like "0.9"')

# kind -> its parameters. `core.risk.evaluate` has one evaluator per kind and documents what it does.
KINDS: dict[str, dict[str, _Param]] = {
    "velocity": {"max_debits": _int_param(1, 10_000), "window": _duration_param()},
    "large_amount_relative": {
        "multiplier": _decimal_param(Decimal(1), Decimal(1000), 'a multiplier above 1, like "5" or "3.5"'),
        "min_history": _int_param(1, 10_000),
        "min_amount": _amounts_param(required=False),
    },
    "large_amount_absolute": {"threshold": _amounts_param()},
    "new_payee": {"min_amount": _amounts_param()},
    "payee_cooling_off": {"period": _duration_param(timedelta(days=30))},
    "structuring": {"threshold": _amounts_param(), "near_ratio": _RATIO, "min_count": _int_param(2, 1000),
                    "window": _duration_param()},
    "ctr": {"threshold": _amounts_param()},
    "rapid_movement": {"window": _duration_param(), "min_ratio": _RATIO, "min_inflow": _amounts_param()},
    "high_risk_jurisdiction": {},
    "sanctions": {"threshold": _int_param(50, 100, required=False, default=DEFAULT_THRESHOLD)},
}

_TOP = {"version": True, "rules": True, "high_risk_jurisdictions": False}
_RULE = {"id": True, "description": True, "kind": True, "score": True, "severity": True, "action": True,
         "params": False, "enabled": False}


# ---------------------------------------------------------------- loading


def load_rule_set(text: str, source: str = "rules.yaml") -> RuleSet:
    """Parse and validate a rule set; raises RuleSetError naming the line and field of the first problem."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise RuleSetError(source, mark.line + 1 if mark else 1, None,
                           f"not valid YAML: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise RuleSetError(source, 1, None, f"not valid YAML: {error}") from None
    if root is None:
        raise RuleSetError(source, 1, None, "the file is empty; expected version and rules")
    top = _mapping(reader, root, None, _TOP)
    version = reader.text(top["version"], "version", 'a version string like "2026-11-24.1"')
    if not _VERSION.match(version):
        raise reader.fail(top["version"], "version", f'expected letters, digits and ".-_:+", got "{version}"')
    jurisdictions = _jurisdictions(reader, top.get("high_risk_jurisdictions"))
    rules = _rules(reader, top["rules"])
    for index, rule in enumerate(rules):
        if rule.kind == "high_risk_jurisdiction" and not jurisdictions:
            node = top["rules"].value[index]
            raise reader.fail(node, f"rules[{index}].kind",
                              "high_risk_jurisdiction needs a non-empty high_risk_jurisdictions list")
    return RuleSet(version=version, rules=rules, high_risk_jurisdictions=jurisdictions)


def _mapping(reader: _Reader, node: Node, path: str | None, keys: dict[str, bool]) -> dict[str, Node]:
    """A mapping's values by key; refuses duplicate, unknown (with a suggestion) and missing required keys."""
    if not isinstance(node, MappingNode):
        raise reader.fail(node, path, f"expected a mapping, got {_shown(node)}")
    found: dict[str, Node] = {}
    for key_node, value in node.value:
        key = key_node.value if isinstance(key_node, ScalarNode) else "?"
        where = f"{path}.{key}" if path else key
        if key in found:
            raise reader.fail(key_node, where, "duplicate key")
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else f"; expected one of {', '.join(keys)}"
            raise reader.fail(key_node, where, f"unknown field{hint}")
        found[key] = value
    for key, required in keys.items():
        if required and key not in found:
            raise reader.fail(node, f"{path}.{key}" if path else key, "missing required field")
    return found


def _sequence(reader: _Reader, node: Node, path: str) -> list[Node]:
    if not isinstance(node, SequenceNode):
        raise reader.fail(node, path, f"expected a list, got {_shown(node)}")
    return list(node.value)


def _jurisdictions(reader: _Reader, node: Node | None) -> tuple[str, ...]:
    if node is None:
        return ()
    codes: list[str] = []
    for index, item in enumerate(_sequence(reader, node, "high_risk_jurisdictions")):
        path = f"high_risk_jurisdictions[{index}]"
        code = reader.text(item, path, 'an ISO 3166-1 alpha-2 country code like "KP"')
        if not _COUNTRY.match(code):
            raise reader.fail(item, path, f'expected an ISO 3166-1 alpha-2 country code like "KP", got "{code}"')
        if code in codes:
            raise reader.fail(item, path, f'duplicate country "{code}"')
        codes.append(code)
    return tuple(codes)


def _rules(reader: _Reader, node: Node) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for index, item in enumerate(_sequence(reader, node, "rules")):
        rule = _rule(reader, item, f"rules[{index}]")
        if any(r.id == rule.id for r in rules):
            id_node = next(v for k, v in item.value if k.value == "id")
            raise reader.fail(id_node, f"rules[{index}].id", f'duplicate rule id "{rule.id}"')
        rules.append(rule)
    return tuple(rules)


def _rule(reader: _Reader, node: Node, path: str) -> Rule:
    fields = _mapping(reader, node, path, _RULE)
    rule_id = _choice_text(reader, fields["id"], f"{path}.id", "a rule id of a-z, 0-9, '.', '_' and '-'", _ID)
    description = reader.text(fields["description"], f"{path}.description", "a description").strip()
    if not description:
        raise reader.fail(fields["description"], f"{path}.description", "must not be empty")
    kind = _one_of(reader, fields["kind"], f"{path}.kind", tuple(KINDS))
    return Rule(
        id=rule_id, description=description, kind=kind,
        score=_int_param(0, 100).parse(reader, fields["score"], f"{path}.score"),
        severity=_one_of(reader, fields["severity"], f"{path}.severity", SEVERITIES),
        action=_one_of(reader, fields["action"], f"{path}.action", ACTIONS),
        params=_params(reader, fields.get("params"), node, f"{path}.params", KINDS[kind]),
        enabled=_bool(reader, fields["enabled"], f"{path}.enabled") if "enabled" in fields else True,
    )


def _rule_id(rule_node: Node) -> str:
    return next((v.value for k, v in rule_node.value if k.value == "id" and isinstance(v, ScalarNode)), "?")


def _choice_text(reader: _Reader, node: Node, path: str, expected: str, pattern: re.Pattern[str]) -> str:
    text = reader.text(node, path, expected)
    if not pattern.match(text):
        raise reader.fail(node, path, f'expected {expected}, got "{text}"')
    return text


def _one_of(reader: _Reader, node: Node, path: str, choices: tuple[str, ...]) -> Any:
    expected = "one of " + ", ".join(choices)
    text = reader.text(node, path, expected)
    if text not in choices:
        raise reader.fail(node, path, f'expected {expected}, got "{text}"')
    return text


def _bool(reader: _Reader, node: Node, path: str) -> bool:
    if not isinstance(node, ScalarNode) or node.tag != _BOOL:
        raise reader.fail(node, path, f"expected true or false, got {_shown(node)}")
    return SafeConstructor.bool_values[node.value.lower()]


def _params(reader: _Reader, node: Node | None, rule_node: Node, path: str,
            spec: dict[str, _Param]) -> dict[str, Any]:
    if node is None:
        node = MappingNode("tag:yaml.org,2002:map", [], rule_node.start_mark, rule_node.end_mark)
    fields = _mapping(reader, node, path, {name: p.required for name, p in spec.items()})
    params = {name: param.parse(reader, fields[name], f"{path}.{name}") for name, param in spec.items()
              if name in fields}
    for name, param in spec.items():
        missing = sorted(set(CURRENCY_DIGITS) - set(params[name])) if param.per_currency and name in params else []
        if missing:
            rule_id = _rule_id(rule_node)
            raise reader.fail(fields[name], f"{path}.{name}", f'rule "{rule_id}" has no amount for '
                              f"{', '.join(missing)}: every amount rule must cover every currency the platform "
                              "accepts")
    return params | {name: p.default for name, p in spec.items() if name not in fields and p.default is not None}


# ---------------------------------------------------------------- dump and diff


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The rule as it is written in YAML (durations "10m", amounts per currency "10000.00", ratios "0.9")."""
    spec = KINDS[rule.kind]
    data: dict[str, Any] = {"id": rule.id, "description": rule.description, "kind": rule.kind, "score": rule.score,
                            "severity": rule.severity, "action": rule.action}
    if rule.params:
        data["params"] = {name: spec[name].dump(value) for name, value in rule.params.items()}
    if not rule.enabled:
        data["enabled"] = False
    return data


def to_dict(rule_set: RuleSet) -> dict[str, Any]:
    data: dict[str, Any] = {"version": rule_set.version}
    if rule_set.high_risk_jurisdictions:
        data["high_risk_jurisdictions"] = list(rule_set.high_risk_jurisdictions)
    data["rules"] = [rule_to_dict(r) for r in rule_set.rules]
    return data


def dump(rule_set: RuleSet) -> str:
    """Canonical YAML for a rule set; `load_rule_set(dump(rs)) == rs`."""
    return yaml.safe_dump(to_dict(rule_set), sort_keys=False, allow_unicode=True, width=1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleChange:
    rule_id: str
    changes: tuple[tuple[str, Any, Any], ...]   # (field such as "action" or "params.window", old, new)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSetDiff:
    old_version: str
    new_version: str
    added: tuple[Rule, ...]
    removed: tuple[Rule, ...]
    changed: tuple[RuleChange, ...]
    jurisdictions_added: tuple[str, ...]
    jurisdictions_removed: tuple[str, ...]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.jurisdictions_added
                    or self.jurisdictions_removed)

    def lines(self) -> list[str]:
        """A human-readable summary, one line per difference (for `bank rules diff`)."""
        out = [f"{self.old_version} -> {self.new_version}"]
        out += [f"+ {r.id} ({r.kind}, {r.action}, score {r.score})" for r in self.added]
        out += [f"- {r.id} ({r.kind}, {r.action}, score {r.score})" for r in self.removed]
        out += [f"~ {c.rule_id}: {name}: {old!r} -> {new!r}" for c in self.changed for name, old, new in c.changes]
        out += [f"+ high_risk_jurisdictions: {code}" for code in self.jurisdictions_added]
        out += [f"- high_risk_jurisdictions: {code}" for code in self.jurisdictions_removed]
        return out


def diff(old: RuleSet, new: RuleSet) -> RuleSetDiff:
    """What publishing `new` over `old` changes: rules added, removed and changed field by field."""
    old_rules, new_rules = {r.id: r for r in old.rules}, {r.id: r for r in new.rules}
    changed = []
    for rule_id in old_rules.keys() & new_rules.keys():
        changes = _changes(_flat(rule_to_dict(old_rules[rule_id])), _flat(rule_to_dict(new_rules[rule_id])))
        if changes:
            changed.append(RuleChange(rule_id=rule_id, changes=changes))
    return RuleSetDiff(
        old_version=old.version, new_version=new.version,
        added=tuple(r for r in new.rules if r.id not in old_rules),
        removed=tuple(r for r in old.rules if r.id not in new_rules),
        changed=tuple(sorted(changed, key=lambda c: [r.id for r in new.rules].index(c.rule_id))),
        jurisdictions_added=tuple(c for c in new.high_risk_jurisdictions if c not in old.high_risk_jurisdictions),
        jurisdictions_removed=tuple(c for c in old.high_risk_jurisdictions if c not in new.high_risk_jurisdictions),
    )


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
    # "enabled" is only written when false; compare it explicitly so enabling shows up.
    old.setdefault("enabled", True)
    new.setdefault("enabled", True)
    keys = list(old) + [k for k in new if k not in old]
    return tuple((k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k))
