"""The workers' partition assignment (streams/consumer.py WorkerRangeAssignor): ranges in the order of the workers'
ids, the same partition numbers of every topic, and the same ranges after a worker rejoins with a new member id."""

from __future__ import annotations

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from streams.consumer import WorkerRangeAssignor

TOPICS = ["bank.ledger.commands", "bank.ledger.events", "bank.risk.commands"]


class Cluster:
    """What the assignor asks of the cluster's metadata: each topic's partitions."""

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(6))


def assignment(members: dict[str, str]) -> dict[str, dict[str, list[int]]]:
    """member id -> worker id, in; worker id -> {topic: partitions}, out."""
    metadata = {member_id: WorkerRangeAssignor.of(worker_id).metadata(TOPICS)
                for member_id, worker_id in members.items()}
    assigned = WorkerRangeAssignor.assign(Cluster(), metadata)   # type: ignore[arg-type]
    return {members[member_id]: {topic: list(partitions) for topic, partitions in a.assignment}
            for member_id, a in assigned.items()}


def test_workers_get_ranges_in_the_order_of_their_ids_whatever_their_member_ids() -> None:
    first = assignment({"consumer-zzz": "ledger-1", "consumer-aaa": "ledger-2"})
    assert first["ledger-1"] == {topic: [0, 1, 2] for topic in TOPICS}
    assert first["ledger-2"] == {topic: [3, 4, 5] for topic in TOPICS}
    # ledger-1 restarts and rejoins with a member id that now sorts after ledger-2's: it gets its range back
    assert assignment({"consumer-aaa": "ledger-2", "consumer-bbb": "ledger-1"}) == first


def test_the_worker_id_travels_in_the_subscription() -> None:
    metadata = WorkerRangeAssignor.of("ledger-7").metadata(TOPICS)
    assert isinstance(metadata, ConsumerProtocolMemberMetadata)
    assert metadata.user_data == b"ledger-7" and metadata.subscription == TOPICS
