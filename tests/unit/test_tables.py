"""The engine's tables restored from their changelogs (streams/tables.py): each key takes its last value, in
offset order, and a tombstone removes it. No server: the records are built here as the changelog holds them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streams.tables import Table


@dataclass
class ChangelogRecord:
    key: bytes
    value: bytes | None


def record(key: str, value: Any) -> ChangelogRecord:
    return ChangelogRecord(json.dumps(key).encode(), None if value is None else json.dumps(value).encode())


def test_each_key_takes_its_last_value_and_a_tombstone_removes_it() -> None:
    table = Table("accounts", help="a table no test writes to its changelog")
    table.data["closed"] = {"balance": 5}          # memory from an earlier ownership of the partition
    restored = table.restores
    records = [record("a", {"balance": 1}), record("b", {"balance": 2}), record("a", {"balance": 3}),
               record("closed", None), record("b", None), record("b", {"balance": 4})]
    assert table.apply(records) == 6
    assert table.data == {"a": {"balance": 3}, "b": {"balance": 4}}
    assert table.restores == restored + 1          # what was built from the table is rebuilt
