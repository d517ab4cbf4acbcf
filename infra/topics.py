"""Loading the topic registry from its file (core.topics parses it and names the topics)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from core.settings import get_settings
from core.topics import TopicSpec, parse_registry, with_replication


def load_registry(path: Path | None = None, replication: int | None = None) -> dict[str, TopicSpec]:
    """The registry of `path` (default: BANK_TOPICS_FILE). `replication`, when given, is every topic's
    replication factor instead of topics.yaml's; callers pass `settings.topic_replication`."""
    path = path or get_settings().topics_file
    registry = _load_cached(path)
    return registry if replication is None else with_replication(registry, replication)


@lru_cache
def _load_cached(path: Path) -> dict[str, TopicSpec]:
    return parse_registry(path.read_text())


def record_types(topic: str) -> frozenset[str]:
    """The record types (schema names) `topic` carries, as topics.yaml declares them: a reader refuses any other
    record it finds there (an event written to a command topic, an audit record on a risk topic)."""
    return frozenset(load_registry()[topic].value_schemas)
