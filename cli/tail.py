"""`bank tail TOPIC`: a topic's messages, decoded, as they arrive or from an offset or a time, filtered by
account, customer or record type, as readable lines or JSON lines (`--json`, one object a line, for `jq`).

Committed data only (read_committed). The Kafka side is one function, `read_messages`; the rest is pure:
where to start, which messages match, how a message reads.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape

from core.money import CURRENCY_DIGITS, format_amount
from core.pointintime import CutoffError, parse_cutoff
from core.records import message_json
from core.settings import get_settings
from core.topics import LEDGER_EVENTS
from infra.kafka import group_less_consumer, stop_consumer
from schemas.codec import DecodeError, get_codec

# Fields a readable line leaves out: ids and bookkeeping (they are in --json).
_QUIET = {"event_id", "command_id", "correlation_id", "account_id", "occurred_at", "sequence", "schema_version",
          "issued_at", "currency"}
_MONEY = {"amount", "balance_after", "overdraft_limit"}


class TailError(ValueError):
    pass


# ---------------------------------------------------------------- where to start


@dataclass(frozen=True, slots=True)
class Start:
    """Where to start reading: the end (default: new messages only), an offset on every partition (negative:
    that many before the end), given offsets on given partitions only, or the first message at or after a time."""

    every: int | None = None
    offsets: dict[int, int] = field(default_factory=dict)
    since: datetime | None = None


def parse_start(from_offset: str | None, since: str | None, now: datetime) -> Start:
    if from_offset is not None and since is not None:
        raise TailError("give --from-offset or --since, not both")
    if since is not None:
        moment = parse_cutoff(since, now)
        if not isinstance(moment, datetime):
            raise TailError(f"--since {since!r}: a time (2026-12-01T10:00:00Z) or a duration ago (1h), not offsets")
        return Start(since=moment)
    if from_offset is None:
        return Start()
    text = from_offset.strip()
    try:
        if ":" not in text:
            return Start(every=int(text))
        pairs = (part.split(":", 1) for part in text.split(",") if part.strip())
        return Start(offsets={int(p): int(o) for p, o in pairs})
    except ValueError:
        raise TailError(f"--from-offset {from_offset!r}: an offset for every partition (0, or -10 for the last "
                        f"ten of each) or partition:offset pairs (0:12,3:40)") from None


# ---------------------------------------------------------------- which messages


@dataclass(frozen=True, slots=True)
class Filter:
    account: str | None = None
    customer: str | None = None
    types: frozenset[str] = frozenset()

    def wants_type(self, record_type: str | None) -> bool:
        return not self.types or record_type in self.types

    def matches(self, value: dict[str, Any], customer_accounts: set[str]) -> bool:
        """An account filter matches a record's `account_id`; a customer filter its `customer_id`, or the
        `account_id` of one of the customer's accounts."""
        if self.account is not None and value.get("account_id") != self.account:
            return False
        if self.customer is not None:
            return value.get("customer_id") == self.customer or value.get("account_id") in customer_accounts
        return True


# ---------------------------------------------------------------- how a message reads


def as_line(message: dict[str, Any]) -> str:
    """`2026-12-01T10:00:00+00:00 bank.ledger.events[3]@42 FundsDeposited acc-1 amount=12.50 EUR ...`"""
    value = message["value"]
    head = (f"{message['timestamp']} {message['topic']}[{message['partition']}]@{message['offset']} "
            f"{message['type'] or '?'} {message['key'] or '-'}")
    return " ".join([head, *_fields(value)])


def _fields(value: dict[str, Any]) -> Iterable[str]:
    currency = value.get("currency")
    for name, item in value.items():
        if name in _QUIET or item is None:
            continue
        if name in _MONEY and isinstance(item, int) and currency in CURRENCY_DIGITS:
            yield f"{name}={format_amount(item, currency)} {currency}"
        elif isinstance(item, str) and item and " " not in item and "=" not in item:
            yield f"{name}={item}"
        else:
            yield f"{name}={json.dumps(item, ensure_ascii=False, separators=(',', ':'))}"


def message_of(record: ConsumerRecord) -> dict[str, Any]:
    """A record as `--json` prints it; one that does not decode (a dead letter's original bytes) shows why."""
    codec = get_codec()
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    moment = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    try:
        value: Any = codec.decode(record.value, record.headers)
        record_type: str | None = type(value).__name__
    except DecodeError as error:
        record_type = None
        value = {"undecodable": str(error), "bytes": len(record.value or b""),
                 "headers": {k: bytes(v).decode("utf-8", "replace") for k, v in record.headers or ()}}
    return message_json(record.topic, record.partition, record.offset, moment, key, record_type, value)


# ---------------------------------------------------------------- reading Kafka


async def read_messages(bootstrap: str, topic: str, start: Start, follow: bool) -> AsyncIterator[ConsumerRecord]:
    """The topic's committed records from `start`, in per-partition order; without `follow`, up to the end the
    topic had when reading began. The one place `bank tail` talks to Kafka."""
    consumer = group_less_consumer(bootstrap)   # committed data only
    await consumer.start()
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise TailError(f"topic {topic} does not exist (see `bank topics apply`, docs/topics.md)")
        tps = [TopicPartition(topic, p) for p in partitions if not start.offsets or p in start.offsets]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await _seek(consumer, tps, ends, start)
        while follow or any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for tp, records in sorted((await consumer.getmany(timeout_ms=500, max_records=1000)).items()):
                for record in records:
                    if follow or record.offset < ends[tp]:
                        yield record
    finally:
        await stop_consumer(consumer)


async def _seek(consumer: AIOKafkaConsumer, tps: list[TopicPartition], ends: dict[TopicPartition, int],
                start: Start) -> None:
    starts = await consumer.beginning_offsets(tps)
    if start.since is not None:
        stamp = max(0, int(start.since.timestamp() * 1000))
        found = await consumer.offsets_for_times({tp: stamp for tp in tps})
        wanted = {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in tps}
    elif start.every is not None:
        wanted = {tp: start.every if start.every >= 0 else ends[tp] + start.every for tp in tps}
    elif start.offsets:
        wanted = {tp: start.offsets[tp.partition] for tp in tps}
    else:
        wanted = dict(ends)
    for tp in tps:
        consumer.seek(tp, min(max(wanted[tp], starts[tp]), ends[tp]))


async def customer_accounts(bootstrap: str, customer_id: str) -> set[str]:
    """The customer's accounts, from the AccountOpened events of the ledger log."""
    codec, accounts = get_codec(), set()
    async for record in read_messages(bootstrap, LEDGER_EVENTS, Start(every=0), follow=False):
        if codec.schema_name(record.value, record.headers) == "AccountOpened":
            opened = codec.decode(record.value, record.headers)
            if opened.customer_id == customer_id:
                accounts.add(opened.account_id)
    return accounts


# ---------------------------------------------------------------- the command


def tail(
    topic: Annotated[str, typer.Argument(help="A topic of topics.yaml, e.g. bank.ledger.events (docs/topics.md).")],
    from_offset: Annotated[str | None, typer.Option(
        "--from-offset", help="Start at this offset on every partition (0: the beginning; -10: the last ten of "
                              "each), or at partition:offset pairs, those partitions only (0:12,3:40).")] = None,
    since: Annotated[str | None, typer.Option(
        help="Start at the first message at or after a time: 2026-12-01T10:00:00Z, or a duration ago: 1h, 30m, "
             "2d.")] = None,
    account: Annotated[str | None, typer.Option(help="Only records of this account (their account_id).")] = None,
    customer: Annotated[str | None, typer.Option(
        help="Only records of this customer: their customer_id, or the account_id of one of their accounts.")] = None,
    types: Annotated[list[str] | None, typer.Option(
        "--type", help="Only this record type (FundsDeposited, Transfer, ...); repeat for several.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line, for jq.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many messages.")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow/--no-follow", help="Keep waiting for new messages, or stop once caught up.")] = True,
) -> None:
    """Print a topic's messages, decoded: new ones as they arrive, or from an offset or a time."""
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        start = parse_start(from_offset, since, datetime.now(UTC))
        wanted = Filter(account=account, customer=customer, types=frozenset(types or ()))
        asyncio.run(_print(get_settings().kafka, topic, start, wanted, as_json, limit, follow))
    except (TailError, CutoffError) as error:
        err.print(f"[red]✗[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    except KafkaError as error:
        err.print(f"[red]✗[/] Kafka at {get_settings().kafka}: {type(error).__name__}: {escape(str(error))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


async def _print(bootstrap: str, topic: str, start: Start, wanted: Filter, as_json: bool, limit: int | None,
                 follow: bool) -> None:
    codec = get_codec()
    accounts = await customer_accounts(bootstrap, wanted.customer) if wanted.customer else set()
    printed = 0
    async for record in read_messages(bootstrap, topic, start, follow):
        if not wanted.wants_type(codec.schema_name(record.value, record.headers)):
            continue
        message = message_of(record)
        value = message["value"]
        if message["type"] == "AccountOpened" and value.get("customer_id") == wanted.customer:
            accounts.add(value["account_id"])   # opened while we follow
        if not wanted.matches(value, accounts):
            continue
        print(json.dumps(message, ensure_ascii=False) if as_json else as_line(message), flush=True)
        printed += 1
        if limit is not None and printed >= limit:
            return
    if not printed and not follow:
        print(f"no message matched on {topic} (caught up)", file=sys.stderr)
