"""The code passes the project's checks: lint rules (pyflakes, bugbear, pyupgrade; see [tool.ruff] in pyproject.toml),
the layer rules (import-linter, [tool.importlinter]) and the type checks of core/ and infra/ (mypy, [tool.mypy])."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # Our packages importable from the checkout, whatever the caller's PYTHONPATH (import-linter imports them).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env)


def test_ruff_is_clean() -> None:
    result = _run("-m", "ruff", "check", "core", "infra", "streams", "api", "schemas", "cli", "web", "server", "tests", "scripts",
                  "examples", "simulators", "gateway")
    assert result.returncode == 0, result.stdout + result.stderr


def test_layers_are_kept() -> None:
    """core/ imports no I/O library and none of our other packages; api/ and streams/ never import each other."""
    result = _run("-c", "import sys; from importlinter.cli import lint_imports_command; "
                        "sys.exit(lint_imports_command())", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_and_infra_type_check() -> None:
    result = _run("-m", "mypy")   # the files and the strictness are in [tool.mypy]
    assert result.returncode == 0, result.stdout + result.stderr
