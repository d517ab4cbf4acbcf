"""The one way the platform builds a Kafka producer.

Every record the platform writes must not be lost or duplicated by a retry: producers are idempotent and
acknowledged by all in-sync replicas. `linger_ms` is the one knob callers differ on: a request waiting on its
send wants 1 ms, a batch of an agent a little more, a bulk loader more still.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from infra.kafka import default_partitioner
from infra.kafka_security import client_options


def create_producer(bootstrap: str, *, linger_ms: int = 0, **options: Any) -> AIOKafkaProducer:
    """An idempotent, acks=all producer (not started) with the process's Kafka security settings; `options` are
    further AIOKafkaProducer settings."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=linger_ms,
                            **(client_options() | {"partitioner": default_partitioner} | options))
