"""The API's Kafka producers (commands, audit records): idempotent, acknowledged by all replicas, and lingering
only a millisecond, since a request waits on its send."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer


def api_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=1)
