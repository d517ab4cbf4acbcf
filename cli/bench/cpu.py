"""Where the machine's cores went during a phase: each stack process's CPU, as a share of one core.

A figure short of its target is bound by something; on a 2-core machine shared by the broker, the worker, the
databases and the bench itself, this says which. Read from /proc (utime + stime of a process and everything it
started, such as PostgreSQL's backends and the bench's load generator), so it costs nothing while the phase runs."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:   # gone meanwhile
        return None
    return text[text.rindex(")") + 2:].split()   # the fields after the command name, which may hold spaces


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _ticks(pid: int, children: Mapping[int, list[int]], measured: set[int]) -> int:
    """CPU ticks of `pid` and of its live descendants, but those `measured` on their own (the bench starts the
    whole stack: its share is its own)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        if current != pid and current in measured:
            continue
        if (fields := _stat_fields(current)) is not None:
            # utime, stime, and cutime, cstime: the descendants it has reaped (a load generator's process, a
            # PostgreSQL backend that has exited), while the live ones are walked
            total += sum(int(field) for field in fields[11:15])
        stack.extend(children.get(current, ()))
    return total


class CpuMeter:
    """`CpuMeter({name: pid})`, then `shares()`: each one's CPU since, in cores (1.0: one core busy throughout)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._started = time.monotonic()
        self._ticks = self._read()

    def _read(self) -> dict[str, int]:
        children = _children_of()
        measured = set(self.pids.values())
        return {name: _ticks(pid, children, measured) for name, pid in self.pids.items()}

    def shares(self) -> dict[str, float]:
        seconds = max(1e-6, time.monotonic() - self._started)
        now = self._read()
        used = {name: (now[name] - self._ticks[name]) / TICKS_PER_SECOND / seconds for name in self.pids}
        return {name: round(share, 2) for name, share in sorted(used.items(), key=lambda item: -item[1]) if share}
