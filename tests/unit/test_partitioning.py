"""infra.kafka.partition_for: where a keyed record goes, as the producers send it. The ledger settles a transfer in
one step only when both accounts' commands are on its partition, so a wrong answer would split an account's state
between two partitions."""

from __future__ import annotations

import ctypes

from aiokafka.partitioner import DefaultPartitioner, murmur2

from infra.kafka import partition_for


def test_murmur2_is_the_java_clients_hash() -> None:
    # The values of Kafka's own UtilsTest.testMurmur2: records keyed by Java producers land alike.
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536, b"abc": 479470107}
    assert {key: ctypes.c_int32(murmur2(key)).value for key in cases} == cases


def test_partition_for_agrees_with_the_producers_partitioner() -> None:
    keys = [f"account-{n}".encode() for n in range(2000)]
    for partitions in (1, 3, 6, 12):
        every = list(range(partitions))
        assert [partition_for(key, partitions) for key in keys] == [
            DefaultPartitioner()(key, every, every) for key in keys]
    assert len({partition_for(key, 6) for key in keys}) == 6
