"""Read-model rates on the history the ledger phase wrote: catch-up from offset 0, then rebuild (with swap)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

from cli.devstack import Stack
from streams.projections import create_store
from streams.projections.admin import end_offsets, rebuild


async def projection_rates(stack: Stack, names: list[str], progress: Any = None) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        results[name] = {"catch_up": await catch_up_rate(stack, name, progress)}
        report = await rebuild(create_store(name, stack.settings), stack.settings.kafka)
        results[name]["rebuild"] = {"events": report.events, "seconds": round(report.seconds, 2),
                                    "events_per_s": round(report.events_per_second)}
    return results


async def catch_up_rate(stack: Stack, name: str, progress: Any = None) -> dict[str, Any]:
    """Start a projection worker for `name` alone on a model that has seen nothing, and time it from its first
    applied batch to the end of the log (start-up and the group join are not the projection's rate)."""
    store = create_store(name, stack.settings)
    await store.open()
    ends = await end_offsets(stack.settings.kafka)
    total = sum(ends.values())
    task = progress.add_task(f"projections: {name} catch-up", total=total) if progress else None
    spec = stack.projector_spec(1)
    only = dataclasses.replace(spec, env=spec.env | {"BANK_PROJECTIONS": json.dumps([name])})
    await asyncio.to_thread(stack.start, only)
    first: tuple[float, int] | None = None
    try:
        while True:
            done = sum(min(o, ends.get(p, 0)) for p, o in (await store.offsets()).items())
            now = time.monotonic()
            if first is None and done > 0:
                first = (now, done)
            if task is not None:
                progress.update(task, completed=done)
            if done >= total:
                break
            await asyncio.sleep(0.05)
    finally:
        await store.close()
        stack.kill("projector-1")
    assert first is not None, f"{name} applied nothing"
    seconds, events = now - first[0], total - first[1]
    if events < 1000:  # the whole log fit in a few batches: too little to time
        return {"events": total, "seconds": None, "events_per_s": None}
    return {"events": events, "seconds": round(seconds, 2), "events_per_s": round(events / seconds)}
