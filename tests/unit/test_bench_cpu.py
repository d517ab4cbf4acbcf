"""The bench's CPU figures (cli/bench/cpu.py): a process's cores, its reaped children's included."""

from __future__ import annotations

import os
import subprocess
import sys

from cli.bench.cpu import CpuMeter


def test_a_busy_child_counts_for_its_parent_and_an_idle_process_for_nothing() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    try:
        meter = CpuMeter({"bench": os.getpid(), "idle": idle.pid})
        # a child that spins for about a second, then is reaped: its CPU moves into the parent's cutime
        subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\n"
                        "while time.process_time() - t < 1.0: pass"], check=True)
        shares = meter.shares()
    finally:
        idle.kill()
        idle.wait()
    assert 0.5 <= shares["bench"] < 1.5
    assert shares.get("idle", 0.0) < 0.2   # its start-up only, and not counted for its parent too
