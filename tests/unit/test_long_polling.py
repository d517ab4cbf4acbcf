"""Every Kafka-consuming process the stack starts turns on client-side long polling (infra/kafka_fetch.py).

Without it each idle consumer of the embedded broker spins at about 1,800 fetches a second: the standing-order
scheduler, which started without it, took 44 % of a core and the broker 30 % more while idle, and the test suite
ran at half speed on a 2-core machine.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from infra.kafka_fetch import backoff_after

# The `python -m` modules of cli/devstack.py's services that consume Kafka, and the module that installs for each.
CONSUMING_PROCESSES = {
    "streams": "streams/app.py",
    "streams.projections": "streams/projections/__main__.py",
    "streams.scheduler": "streams/scheduler.py",
    "streams.notifications": "streams/notifications/__main__.py",
    "gateway": "gateway/connector.py",
    "server.main (the API)": "api/main.py",
    "cli.main lag": "cli/main.py",
}
ROOT = Path(__file__).resolve().parents[2]


def _installs_long_polling(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.Call) and ast.unparse(node.func) == "kafka_fetch.install_for"
               for node in ast.walk(tree))


@pytest.mark.parametrize("process", sorted(CONSUMING_PROCESSES))
def test_the_process_installs_long_polling(process: str) -> None:
    assert _installs_long_polling(ROOT / CONSUMING_PROCESSES[process]), f"{process} would spin on empty fetches"


def test_every_python_module_the_dev_stack_starts_is_known_here() -> None:
    """A new service in cli/devstack.py must be listed above (or below, if it consumes no Kafka)."""
    consuming_nothing = {"secantus", "uvicorn", "simulators.rail", "simulators.bureau", "simulators.smtp", "simulators.sms",
                         "cli.main"}
    source = (ROOT / "cli/devstack.py").read_text()
    started = {node.elts[2].value for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.List) and len(node.elts) > 2 and isinstance(node.elts[1], ast.Constant)
               and node.elts[1].value == "-m" and isinstance(node.elts[2], ast.Constant)}
    known = {name.split()[0] for name in CONSUMING_PROCESSES} | consuming_nothing
    assert started <= known, started - known
    assert all(importlib.util.find_spec(name) for name in started)


def test_the_backoff_doubles_while_fetches_stay_empty_up_to_the_ceiling() -> None:
    assert [backoff_after(n, 5, 40) for n in range(6)] == [5, 10, 20, 40, 40, 40]
    assert backoff_after(10_000, 5, 40) == 40
    assert [backoff_after(n, 5, 0) for n in range(3)] == [5, 5, 5]     # no ceiling above the start: fixed
