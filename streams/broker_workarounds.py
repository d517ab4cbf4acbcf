"""Every workaround for a defect of the embedded Kafka broker (the `noida-db` wheel), in one place.

Each workaround names the defect it exists for. They are all harmless on a real Kafka cluster, so the
platform uses them everywhere; tests/integration/test_broker_contract.py proves each defect is still there
(so we know when a workaround can go) and that each workaround works.

Defect 1 - dead members are never evicted.
    A consumer that dies without sending LeaveGroup (SIGKILL, OOM, power loss) is never removed from
    its group, even after its session timeout: its partitions stay assigned to the dead member for
    ever and a new member with a fresh member id never receives them.
    Workaround: static membership (KIP-345). Every worker has one stable `group.instance.id`; a
    restarted worker with the same id replaces its dead predecessor at once and gets its partitions
    back. Use `static_membership()` (Faust app settings) or `aiokafka_static_membership()`
    (AIOKafkaConsumer kwargs).
    Caveat: a static member sends no LeaveGroup when it stops, and this broker never expires it
    either, so a worker id that never comes back strands its partitions for ever. Keep the worker
    count fixed (BANK_WORKERS) and always restart every worker id; do not scale down.

Defect 2 - a SIGKILL of the broker loses up to ~0.3 s of acknowledged writes.
    The broker snapshots its state to one JSON file; records acknowledged after the last snapshot are
    gone if the broker process is killed hard.
    Workaround: stop the broker only with a graceful signal (`BROKER_STOP_SIGNAL`, i.e. Ctrl-C /
    `noida-db down`), which writes a final snapshot. Never `kill -9` it. Nothing in the clients
    can fix this; production uses a real Kafka cluster.
    Found by `bank chaos`: a graceful stop of the broker PROCESS (SIGINT or SIGTERM) while producers
    are writing loses acknowledged writes too (measured: 93 to 281 records of an idempotent acks=all
    producer, the last ~20-50 ms before the stop; the workers' changelogs then end before offsets
    Faust had persisted and the workers crash with ConsistencyError). Stop it only when idle, and to
    restart it under load use `noida-db restart kafka` (`Stack.restart_broker()`: the Kafka service
    restarts inside the running server, data saved and reloaded), which lost nothing in the same test.

Defect 3 - describing two consumer groups in one DescribeGroups request breaks the connection.
    The broker encodes the multi-group response wrongly, the client cannot decode it and closes the
    connection (aiokafka raises KafkaConnectionError). One group per request works.
    Workaround: `describe_groups_one_at_a_time()`.

Defect 4 - an offset commit during a rebalance gets ILLEGAL_GENERATION and leaves a ghost member.
    aiokafka reacts to ILLEGAL_GENERATION by dropping its member id and rejoining as a new member; the
    old id is never evicted (defect 1) and, as group leader, blocks every later rebalance: the group
    is wedged for good. Any commit can hit it (auto-commit, Faust's periodic commit).
    Workaround: static membership again (the rejoin replaces the old member by its instance id).

Defect 5 - a read_committed fetch lists aborted transactions that ended before the fetch offset.
    aiokafka then skips the producer's later transactions. No client-side fix: exactly_once workers can
    stall after a SIGKILL on this broker (at_least_once, the default, is unaffected).

Defect 6 - an empty fetch is answered at once instead of being held up to fetch.max.wait.ms.
    Every idle consumer re-fetches in a tight loop (~1,800 requests/s), burning CPU in client and broker.
    Workaround: client-side long polling, infra/kafka_fetch.py (there, not here, because the API process,
    which must not import streams/, needs it too), installed by every process at start-up.

Defect 7 - a graceful restart forgets idempotent producers' sequence numbers.
    A producer (enable_idempotence) whose batch was appended just as the broker stopped, without its answer,
    retries the batch after the restart, and the broker appends it a second time: real Kafka restores each
    producer's last sequence from its snapshot and answers DUPLICATE_SEQUENCE. Seen once under `bank chaos`
    on a loaded machine: four ledger events at offsets 450-453 of a partition again at 454-457, byte for byte
    (same producer timestamps), written 70 ms before the restart's connection errors. Not yet proven by a
    contract test (the window is a few milliseconds wide and cannot be hit on purpose from a client).
    Workaround: every reader dedupes by event id (the agents' tables, the projections, the books), so the copy
    changes no balance or read model; the chaos audit counts identical copies after a broker restart instead
    of failing them (core.invariants.LedgerAudit.identical_copies_allowed), while a differing second record
    under one id, or a posting twice under two ids, still fails it. Never restart the broker under load in
    production on this broker; real Kafka (docker-compose) does not have the defect.
"""

from __future__ import annotations

import signal
from typing import Any

# --- Defect 1: dead members are never evicted -> static membership --------------------------------

#: Session timeout for static members. With static membership a restart within this window keeps the
#: assignment without any rebalance; on a real cluster a worker gone longer than this is evicted and
#: its partitions move. Must not exceed Faust's broker_request_timeout (default 90 s).
STATIC_SESSION_TIMEOUT_S = 30.0
#: Heartbeats at a third of the session timeout, the usual Kafka ratio.
STATIC_HEARTBEAT_INTERVAL_S = 3.0


def static_membership(
    worker_id: str,
    *,
    session_timeout: float = STATIC_SESSION_TIMEOUT_S,
    heartbeat_interval: float = STATIC_HEARTBEAT_INTERVAL_S,
) -> dict[str, Any]:
    """Faust app settings giving this worker a static group membership (defect 1).

    Pass them to `faust.App(..., **static_membership(settings.worker_id))`. faust-streaming 0.15.3
    forwards `consumer_group_instance_id` unchanged as aiokafka's `group_instance_id`
    (faust/transport/drivers/aiokafka.py, `_create_worker_consumer`). `worker_id` must be stable
    across restarts of one worker and unique among the workers of the app.
    """
    if not worker_id:
        raise ValueError("static membership needs a non-empty, stable worker id")
    return {
        "consumer_group_instance_id": worker_id,
        "broker_session_timeout": session_timeout,
        "broker_heartbeat_interval": heartbeat_interval,
    }


def aiokafka_static_membership(
    worker_id: str,
    *,
    session_timeout: float = STATIC_SESSION_TIMEOUT_S,
    heartbeat_interval: float = STATIC_HEARTBEAT_INTERVAL_S,
) -> dict[str, Any]:
    """The same static membership as AIOKafkaConsumer kwargs (defect 1).

    Note: aiokafka does not send LeaveGroup for a static member on stop() (as in Java Kafka), so a
    stopped static member keeps its partitions until it comes back with the same id (or, on a real
    cluster, until its session times out).
    """
    if not worker_id:
        raise ValueError("static membership needs a non-empty, stable worker id")
    return {
        "group_instance_id": worker_id,
        "session_timeout_ms": int(session_timeout * 1000),
        "heartbeat_interval_ms": int(heartbeat_interval * 1000),
    }


# --- Defect 2: SIGKILL loses acknowledged writes -> stop the broker gracefully only ----------------

#: The only signal with which to stop an embedded broker (it snapshots on a graceful stop).
BROKER_STOP_SIGNAL = signal.SIGINT


# --- Defect 3: multi-group DescribeGroups breaks the connection -> one group per request ----------


async def describe_groups_one_at_a_time(admin: Any, group_ids: list[str]) -> dict[str, Any]:
    """Describe consumer groups with one DescribeGroups request per group (defect 3).

    `admin` is a started aiokafka AIOKafkaAdminClient. Returns {group_id: group description}, the
    description being the raw DescribeGroups response entry (error_code, group, state,
    protocol_type, protocol, members, ...) as aiokafka returns it.
    """
    described: dict[str, Any] = {}
    for group_id in group_ids:
        responses = await admin.describe_consumer_groups([group_id])
        for response in responses:
            for group in response.groups:
                described[group[1]] = group
    return described
