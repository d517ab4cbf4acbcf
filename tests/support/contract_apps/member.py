"""A group member to be SIGKILLed by tests/integration/test_broker_contract.py (never sends LeaveGroup).

    python -m tests.support.contract_apps.member BOOTSTRAP TOPIC GROUP [INSTANCE_ID]

Joins GROUP subscribed to TOPIC with aiokafka's defaults (enable_auto_commit=True), prints
`ASSIGNED <partitions as JSON>` whenever its (non-empty) assignment changes, and keeps polling
until killed. With INSTANCE_ID it is a static member (group.instance.id).
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiokafka import AIOKafkaConsumer

from streams.broker_workarounds import aiokafka_static_membership

SESSION_TIMEOUT_S = 6.0
HEARTBEAT_INTERVAL_S = 1.0


async def main(bootstrap: str, topic: str, group: str, instance_id: str | None) -> None:
    kwargs = (
        aiokafka_static_membership(instance_id, session_timeout=SESSION_TIMEOUT_S, heartbeat_interval=HEARTBEAT_INTERVAL_S)
        if instance_id
        else {"session_timeout_ms": int(SESSION_TIMEOUT_S * 1000), "heartbeat_interval_ms": int(HEARTBEAT_INTERVAL_S * 1000)}
    )
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, **kwargs)
    await consumer.start()  # returns once joined (never, if the group is wedged)
    reported: list[int] = []
    while True:  # keep polling (and heartbeating) until SIGKILLed
        await consumer.getmany(timeout_ms=200)
        assigned = sorted(tp.partition for tp in consumer.assignment())
        if assigned and assigned != reported:
            print("ASSIGNED", json.dumps(assigned), flush=True)
            reported = assigned


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], args[1], args[2], args[3] if len(args) > 3 else None))
