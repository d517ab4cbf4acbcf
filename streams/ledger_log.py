"""Reading the whole ledger log (or any topic), for audits: every committed event, decoded, in per-partition order
(infra.kafka.read_topic reads the records).

Used by `bank chaos` and the invariant tests, with the pure checks of core/invariants.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core import events as e
from core.invariants import LedgerAudit
from core.topics import LEDGER_EVENTS
from infra import kafka
from schemas.codec import get_codec


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every committed message of a topic up to its current end, decoded, in per-partition order."""
    codec = get_codec()
    return [codec.decode(r.value, r.headers) for r in (await kafka.read_topic(bootstrap, topic)).records]


async def read_log(bootstrap: str) -> list[e.Event]:
    """Every committed event on the ledger topic, in per-partition order."""
    return await read_topic(bootstrap, LEDGER_EVENTS)


async def settled_audit(bootstrap: str, expected_commands: set[str] | None = None,
                        timeout: float = 90.0, identical_copies_allowed: bool = False) -> LedgerAudit:
    """Waits until the log is quiet (no saga step left) and every expected command has events, then audits it.

    Returns the last audit when `timeout` passes first: its in-flight transfers and missing commands are
    then the caller's findings."""
    deadline = time.monotonic() + timeout
    while True:
        audit = LedgerAudit(await read_log(bootstrap), identical_copies_allowed=identical_copies_allowed)
        missing = (expected_commands or set()) - audit.outcome_command_ids()
        if (audit.quiet and not missing) or time.monotonic() > deadline:
            return audit
        await asyncio.sleep(0.5)
