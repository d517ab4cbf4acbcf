"""The bench's CPU figures (cli/bench/cpu.py): a process's cores, its reaped children's included."""

from __future__ import annotations

import subprocess
import sys

from cli.bench.cpu import CpuMeter

# Waits for a line, runs a child that spins for a second of CPU and reaps it, says so, and waits for a line again.
PARENT = """
import subprocess, sys
sys.stdin.readline()
subprocess.run([sys.executable, "-c", "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 1.0: pass"])
print("done", flush=True)
sys.stdin.readline()
"""


def test_a_busy_child_counts_for_its_parent_and_an_idle_process_for_nothing() -> None:
    # both measured processes are the test's own, so nothing else this process runs is counted
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    idle = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    assert parent.stdin is not None and parent.stdout is not None and idle.stdin is not None
    try:
        meter = CpuMeter({"parent": parent.pid, "idle": idle.pid})
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline().strip() == "done"   # the child has run and been reaped
        shares = meter.shares()
    finally:
        for process, pipe in ((parent, parent.stdin), (idle, idle.stdin)):
            pipe.close()
            process.wait(timeout=30)
    # a second of the child's CPU over a little more than a second: in the parent's share (cutime), about one core
    assert 0.3 <= shares["parent"] < 1.3   # (less than one when the machine is busy: the wall clock stretches)
    assert shares.get("idle", 0.0) < 0.2   # its start-up at most
