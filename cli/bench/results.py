"""Saved benchmark runs: bench/results/<UTC time>.json with the machine's description, and comparisons."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    memory_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory_kb / 1024 / 1024, 1),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "commit": _git("rev-parse", "--short", "HEAD"), "dirty": bool(_git("status", "--porcelain"))}


def save(result: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.rename(path)
    return path


def previous(directory: Path = RESULTS_DIR, before: Path | None = None) -> dict[str, Any] | None:
    runs = sorted(p for p in directory.glob("*.json") if p != before) if directory.exists() else []
    return json.loads(runs[-1].read_text()) if runs else None


def headline(result: dict[str, Any]) -> dict[str, float]:
    """The figures worth comparing between runs, flattened: name -> value."""
    figures: dict[str, float] = {}
    raw = result.get("raw_broker") or {}
    for key in ("produce_per_s", "consume_per_s"):
        if key in raw:
            figures[f"raw broker {key.replace('_per_s', '')} records/s"] = raw[key]
    ledger = result.get("ledger") or {}
    if "transfers_per_s" in ledger:
        figures["ledger transfers/s"] = ledger["transfers_per_s"]
    if "records_per_transfer" in ledger:
        figures["ledger Kafka records per transfer"] = ledger["records_per_transfer"]
    if "deposits_per_s" in ledger:
        figures["ledger cash deposits/s"] = ledger["deposits_per_s"]
    restart = result.get("restart") or {}
    if "kill_to_first_decision_s" in restart:
        figures["ledger worker kill -9 to first decision, s"] = restart["kill_to_first_decision_s"]
    if "worker_restore_s" in restart:
        figures["ledger worker table restore, s"] = restart["worker_restore_s"]
        figures["changelog records restored"] = restart["worker_restored_records"]
    retention = result.get("retention") or {}
    if retention.get("rss_growth_after_first_window_mb") is not None:
        figures["worker memory growth after the first retention window, MB"] = retention[
            "rss_growth_after_first_window_mb"]
    if "ratio_to_raw" in result:
        figures["ledger / raw broker"] = result["ratio_to_raw"]
    for load in (result.get("api") or {}).get("loads", []):
        name = f"api {load['offered_per_s']}/s" if load.get("offered_per_s") else \
            "api saturation" if load.get("wait", True) else "api saturation, wait=false"
        figures[f"{name} achieved/s"] = load["achieved_per_s"]
        figures[f"{name} p99 ms"] = load["p99_ms"]
    for name, figure in (result.get("projections") or {}).items():
        for kind in ("catch_up", "rebuild"):
            if figure.get(kind, {}).get("events_per_s") is not None:
                figures[f"{name} {kind.replace('_', '-')} events/s"] = figure[kind]["events_per_s"]
    return figures


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except OSError:
        return ""
