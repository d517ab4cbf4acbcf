"""infra.kafka.partition_for: where a keyed record goes, as the producers send it. The ledger settles a transfer in
one step only when both accounts' commands are on its partition, so a wrong answer would split an account's state
between two partitions."""

from __future__ import annotations

import asyncio
import ctypes

from aiokafka.partitioner import DefaultPartitioner, murmur2

from infra.kafka import default_partitioner, partition_for
from infra.producer import create_producer


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


def test_the_producers_partitioner_remembers_keys_and_agrees_with_aiokafkas() -> None:
    keys = [f"customer-{n % 50}".encode() for n in range(1000)]   # keys repeat, as accounts' and customers' do
    every = list(range(6))
    assert [default_partitioner(key, every, every) for key in keys] == [
        DefaultPartitioner()(key, every, every) for key in keys]
    assert default_partitioner(None, every, [4]) == 4   # an unkeyed record: one of the available partitions
    assert partition_for.cache_info().hits > 0

    async def partitioner_of_a_producer() -> object:
        return create_producer("127.0.0.1:9")._partitioner   # noqa: SLF001 - not started: no broker needed
    assert asyncio.run(partitioner_of_a_producer()) is default_partitioner   # every producer of the platform's
