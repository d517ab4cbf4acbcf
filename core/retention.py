"""Keeping ids for a retention window instead of for ever: which ids have expired, in the order they were kept.

An agent remembers the ids it has handled (the ledger its processed command ids, the risk agent its assessments),
so a retry or a redelivery is recognised. A retry comes within minutes, a client's at worst within days: past a
window (BANK_PROCESSED_RETENTION, 7 days by default) an id may go, and the state stays flat however long the
platform runs. Pure bookkeeping; the agent writes the tombstones (streams/checkpoint.py `RememberedIds`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class RetentionWindow:
    """Ids with the time (whole epoch seconds) each was kept, oldest first; `expired(now)` takes out those past
    `seconds`."""
    seconds: int
    _kept: deque[tuple[int, str, int]] = field(default_factory=deque)   # (kept at, id, partition)

    def __len__(self) -> int:
        return len(self._kept)

    def add(self, at: int, id_: str, partition: int) -> None:
        self._kept.append((at, id_, partition))

    def rebuild(self, kept: list[tuple[int, str, int]]) -> None:
        """After a restore: the window is the stored ids, whatever order they came back in."""
        self._kept = deque(sorted(kept))

    def expired(self, now: int) -> list[tuple[str, int]]:
        """(id, partition) of every id kept at or before `now - seconds`, taken out of the window."""
        horizon = now - self.seconds
        gone: list[tuple[str, int]] = []
        while self._kept and self._kept[0][0] <= horizon:
            _, id_, partition = self._kept.popleft()
            gone.append((id_, partition))
        return gone
