"""infra.records: one header lookup for every shape headers arrive in (no server)."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import ConsumerRecord

from core.audit import ACTOR_HEADER
from infra.logs import TRACE_HEADER, trace_of
from infra.records import Headers, Record, actor_of, header, header_list, header_text

PAIRS = [("bank.schema.name", b"FundsDeposited"), ("bank.trace_id", b"abc"), ("bank.trace_id", b"second")]


@dataclass(frozen=True)
class Message:
    """What Faust hands an agent: the same fields as a ConsumerRecord, headers possibly a mapping."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers


def consumer_record(headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic="t", partition=2, offset=7, timestamp=0, timestamp_type=0, key=b"k", value=b"v",
                          checksum=None, serialized_key_size=1, serialized_value_size=1, headers=headers)


def test_a_header_is_found_in_pairs_tuples_and_mappings() -> None:
    for headers in (PAIRS, tuple(PAIRS), dict(PAIRS[:2])):
        assert header(headers, "bank.schema.name") == b"FundsDeposited"
        assert header(headers, "bank.trace_id") == b"abc"     # the first of repeated names
        assert header(headers, "missing") is None
    assert header(None, "bank.trace_id") is None and header([], "bank.trace_id") is None
    assert header((pair for pair in PAIRS), "bank.trace_id") == b"abc"   # any iterable of pairs


def test_records_of_both_clients_are_read_through_the_protocol() -> None:
    records: list[Record] = [consumer_record(PAIRS), Message("t", 0, 1, None, b"v", dict(PAIRS[:2]))]
    for record in records:
        assert header(record, "bank.schema.name") == b"FundsDeposited"
        assert header_text(record, "bank.trace_id") == "abc"
    assert header(Message("t", 0, 1, None, None, None), "bank.trace_id") is None


def test_values_come_back_as_bytes_whatever_the_client_handed_over() -> None:
    odd = [("text", "plain"), ("array", bytearray(b"\x01\x02")), ("view", memoryview(b"mv")), ("none", None)]
    assert header_list(odd) == [("text", b"plain"), ("array", b"\x01\x02"), ("view", b"mv"), ("none", b"")]
    assert header_list(consumer_record(PAIRS)) == PAIRS
    assert header_list(None) == []


def test_text_of_a_header_never_fails_on_bad_bytes() -> None:
    assert header_text([("name", b"caf\xc3\xa9")], "name") == "café"
    assert header_text([("name", b"\xff\xfe")], "name") == "\ufffd\ufffd"
    assert header_text([], "name") is None


def test_trace_and_actor_are_header_lookups() -> None:
    headers = [(TRACE_HEADER, b"0af7651916cd43dd8448eb211c80319c"), (ACTOR_HEADER, b'{"user_id":"u1"}')]
    assert trace_of(headers) == "0af7651916cd43dd8448eb211c80319c"
    assert actor_of(consumer_record(headers)) == b'{"user_id":"u1"}'
    assert trace_of(None) is None and actor_of({}) is None
