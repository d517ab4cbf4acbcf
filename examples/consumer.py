"""A plain Python consumer of bankstream's topics: aiokafka, the schema registry and fastavro, no bankstream code.

    python examples/consumer.py --bootstrap 127.0.0.1:19092 --registry http://127.0.0.1:18081 \
        [--topic bank.ledger.events] [--since 2026-12-05T00:00:00Z] [--follow]

prints one JSON object a line per message: {"topic", "partition", "offset", "timestamp", "type", "value"}.

Every message is in the schema-registry wire format: byte 0 is the magic byte 0, bytes 1-4 the id of the schema
it was written with (big-endian), the rest the Avro body. The schema of an id is fetched once from the registry
(GET /schemas/ids/{id}) and kept. Records written before bankstream adopted this format (an Avro body with the
writer's fingerprint in header `bank.schema.fingerprint`) are not in it: they are counted and skipped here
(`bank tail` reads both).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fastavro
from aiokafka import AIOKafkaConsumer, TopicPartition

MAGIC_BYTE = 0


class NotRegistryFormat(ValueError):
    """A message that does not start with the magic byte and a schema id."""


class RegistryDecoder:
    """Decodes wire-format messages with the writer schema the registry serves for their id."""

    def __init__(self, registry_url: str) -> None:
        self.registry_url = registry_url.rstrip("/")
        self._schemas: dict[int, Any] = {}

    def schema(self, schema_id: int) -> Any:
        if schema_id not in self._schemas:
            with urllib.request.urlopen(f"{self.registry_url}/schemas/ids/{schema_id}", timeout=10) as response:
                text = json.load(response)["schema"]
            self._schemas[schema_id] = fastavro.parse_schema(json.loads(text))
        return self._schemas[schema_id]

    def decode(self, value: bytes | None) -> tuple[str, dict[str, Any]]:
        """(record type, fields) of one message."""
        if value is None or len(value) < 5 or value[0] != MAGIC_BYTE:
            raise NotRegistryFormat("not in the schema-registry wire format")
        schema = self.schema(int.from_bytes(value[1:5], "big"))
        record = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
        return schema["name"].rsplit(".", 1)[-1], record


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: datetime
    type: str
    value: dict[str, Any]


async def read_messages(bootstrap: str, registry_url: str, topic: str, since: datetime | None = None,
                        follow: bool = False, skipped: list[int] | None = None) -> AsyncIterator[Message]:
    """The topic's messages from `since` (default: the beginning) to its end when the read starts (or on and on
    with `follow`). `skipped`, when given, gets the offset of every message not in the registry format."""
    decoder = RegistryDecoder(registry_url)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise SystemExit(f"no topic {topic!r} at {bootstrap}")
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await _seek(consumer, partitions, since)
        while follow or await _behind(consumer, partitions, ends):
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if not follow and record.offset >= ends[tp]:
                        continue
                    try:
                        kind, value = decoder.decode(record.value)
                    except NotRegistryFormat:
                        if skipped is not None:
                            skipped.append(record.offset)
                        continue
                    moment = datetime.fromtimestamp(record.timestamp / 1000, UTC)
                    yield Message(topic, tp.partition, record.offset, moment, kind, value)
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], ends: dict[Any, int]) -> bool:
    """Some partition is not yet read up to where it ended when the read started."""
    return any([await consumer.position(tp) < ends[tp] for tp in partitions])


async def _seek(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since: datetime | None) -> None:
    if since is None:
        # An explicit seek, not consumer.seek_to_beginning(): right after assign() aiokafka is already asking for
        # the default ("latest") offsets, and that late answer can override seek_to_beginning: nothing is read.
        for tp, offset in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, offset)
        return
    found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
    ends = await consumer.end_offsets(partitions)
    for tp in partitions:
        consumer.seek(tp, found[tp].offset if found.get(tp) is not None else ends[tp])


def _json(message: Message) -> str:
    return json.dumps({"topic": message.topic, "partition": message.partition, "offset": message.offset,
                       "timestamp": message.timestamp.isoformat(), "type": message.type, "value": message.value},
                      default=str, ensure_ascii=False)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--registry", default="http://127.0.0.1:18081")
    parser.add_argument("--topic", default="bank.ledger.events")
    parser.add_argument("--since", type=datetime.fromisoformat, help="ISO time, e.g. 2026-12-05T00:00:00+00:00")
    parser.add_argument("--follow", action="store_true", help="keep waiting for new messages")
    args = parser.parse_args(argv)
    skipped: list[int] = []
    async for message in read_messages(args.bootstrap, args.registry, args.topic, args.since, args.follow, skipped):
        print(_json(message), flush=True)
    if skipped:
        print(f"skipped {len(skipped)} messages not in the registry format", file=sys.stderr)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
