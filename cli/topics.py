"""`bank topics apply`: make the broker match topics.yaml without ever destroying anything.

Missing topics are created with the registry's partitions, replication and configs. Existing topics are compared
(partition count, replication factor, configs) and any difference is reported as drift; nothing is altered, no
partitions are added, nothing is deleted. The replication compared is the effective one: load the registry with
`load_registry(path, settings.topic_replication)` so BANK_TOPIC_REPLICATION applies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from core.topics import TopicSpec
from infra.kafka import create_admin_client

Status = Literal["created", "ok", "drift", "error"]


@dataclass
class TopicResult:
    name: str
    status: Status
    partitions: int | None = None
    details: list[str] = field(default_factory=list)


@dataclass
class TopicsReport:
    results: list[TopicResult] = field(default_factory=list)

    def by_status(self, status: Status) -> list[TopicResult]:
        return [r for r in self.results if r.status == status]

    @property
    def created(self) -> list[str]:
        return [r.name for r in self.by_status("created")]

    @property
    def drift(self) -> list[TopicResult]:
        return self.by_status("drift")

    @property
    def errors(self) -> list[TopicResult]:
        return self.by_status("error")

    @property
    def ok(self) -> bool:
        """No errors (drift is reported but is not a failure: it needs a human decision)."""
        return not self.errors


async def apply_topics(bootstrap: str, registry: dict[str, TopicSpec], timeout_s: float = 30.0) -> TopicsReport:
    """Create the registry's missing topics on `bootstrap` and report drift of existing ones. Idempotent."""
    admin = create_admin_client(bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = await _layouts(admin)
        report = TopicsReport()
        for spec in registry.values():
            if spec.name in existing:
                report.results.append(await _check(admin, spec, *existing[spec.name]))
            else:
                report.results.append(await _create(admin, spec))
        return report
    finally:
        await admin.close()


def apply_topics_sync(bootstrap: str, registry: dict[str, TopicSpec]) -> TopicsReport:
    return asyncio.run(apply_topics(bootstrap, registry))


async def _layouts(admin: AIOKafkaAdminClient) -> dict[str, tuple[int, int | None]]:
    """Per topic: partition count and replication factor (the most replicas of any partition; None if the
    broker reports no replica lists)."""
    layouts: dict[str, tuple[int, int | None]] = {}
    for topic in await admin.describe_topics():
        if topic.get("error_code", 0) == 0:
            replicas = max((len(p.get("replicas") or ()) for p in topic["partitions"]), default=0)
            layouts[topic["topic"]] = (len(topic["partitions"]), replicas or None)
    return layouts


async def _create(admin: AIOKafkaAdminClient, spec: TopicSpec) -> TopicResult:
    new = NewTopic(spec.name, spec.partitions, spec.replication, topic_configs=spec.config)
    response = await admin.create_topics([new])
    errors = [(t[1], t[2] if len(t) > 2 else None) for t in response.topic_errors if t[1] != 0]
    if not errors:
        return TopicResult(spec.name, "created", spec.partitions)
    code, message = errors[0]
    if code == 36:  # TOPIC_ALREADY_EXISTS: someone created it between our describe and create
        partitions, replication = (await _layouts(admin)).get(spec.name, (spec.partitions, None))
        return await _check(admin, spec, partitions, replication)
    return TopicResult(spec.name, "error", details=[f"create failed: error code {code} {message or ''}".strip()])


async def _check(admin: AIOKafkaAdminClient, spec: TopicSpec, partitions: int,
                 replication: int | None = None) -> TopicResult:
    details = []
    if partitions != spec.partitions:
        details.append(f"partitions: broker has {partitions}, registry wants {spec.partitions}")
    if replication is not None and replication != spec.replication:
        details.append(f"replication: broker has {replication}, registry wants {spec.replication}")
    try:
        actual = await describe_topic_config(admin, spec.name)
    except TopicConfigUnavailable as exc:
        return TopicResult(spec.name, "error", partitions, [*details, f"cannot read configs: {exc}"])
    for key, wanted in spec.config.items():
        have = actual.get(key)
        if have is None:
            details.append(f"{key}: broker does not report it, registry wants {wanted}")
        elif have != wanted:
            details.append(f"{key}: broker has {have}, registry wants {wanted}")
    return TopicResult(spec.name, "drift" if details else "ok", partitions, details)


class TopicConfigUnavailable(RuntimeError):
    pass


async def describe_topic_config(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    """One topic's configs (one topic per request: the embedded broker dislikes batched describes)."""
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    except Exception as exc:  # noqa: BLE001 - unsupported API versions surface as assorted errors
        raise TopicConfigUnavailable(f"{type(exc).__name__}: {exc}") from exc
    configs: dict[str, str] = {}
    for response in responses:
        for resource in response.resources:
            code, message = resource[0], resource[1]
            if code != 0:
                raise TopicConfigUnavailable(f"error code {code} {message or ''}".strip())
            configs.update(_config_entries(resource[4]))
    return configs


def _config_entries(entries: list[Any]) -> dict[str, str]:
    return {entry[0]: entry[1] for entry in entries if entry[1] is not None}
