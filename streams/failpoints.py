"""Named points where a crash test can kill the worker hard, to prove recovery at exactly that moment.

BANK_FAILPOINT="after_ledger_acked:2" sends SIGKILL to this process the second time it passes
`after_ledger_acked`: a ledger batch's events are in the log, its table snapshots and offsets are not. Every agent
on the batch engine has one (`after_<agent>_acked`, streams/checkpoint.py).
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter

from streams.app import settings

log = logging.getLogger(__name__)
_passes: Counter[str] = Counter()


def _armed() -> tuple[str, int] | None:
    if not settings.failpoint:
        return None
    name, _, nth = settings.failpoint.partition(":")
    return name, int(nth or 1)


ARMED = _armed()


def failpoint(name: str) -> None:
    if ARMED is None or ARMED[0] != name:
        return
    _passes[name] += 1
    if _passes[name] == ARMED[1]:
        log.warning("failpoint %s reached (pass %s): killing this worker with SIGKILL", name, _passes[name])
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)
