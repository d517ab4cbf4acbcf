"""Run the projection worker: `python -m streams.projections` (settings from BANK_* env vars).

Each projection in BANK_PROJECTIONS runs as its own consumer group in this one process (with mongo, also the
audit trail of people's actions, from bank.audit: streams/projections/audit.py); a small web
server on BANK_WORKER_WEB_PORT answers /healthz with each projection's progress and /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from core.settings import get_settings
from infra import kafka_fetch
from infra.logs import configure_logging
from streams.metrics import exposition
from streams.projections import create_store
from streams.projections.audit import AuditTrailProjection
from streams.projections.runner import ProjectionRunner

log = logging.getLogger("streams.projections")


async def serve() -> None:
    settings = get_settings()
    runners: list[ProjectionRunner | AuditTrailProjection] = [
        ProjectionRunner(create_store(name, settings), settings.kafka, settings.worker_id)
        for name in settings.projections]
    if "mongo" in settings.projections:   # people's actions (bank.audit) land beside the ledger's audit trail
        runners.append(AuditTrailProjection(settings.kafka, settings.mongo, settings.worker_id))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    site = await _health_site(runners, settings.worker_web_host, settings.worker_web_port)
    tasks = [asyncio.create_task(runner.run(stop), name=f"projection-{runner.name}") for runner in runners]
    log.info("projection worker %s: running %s", settings.worker_id, ", ".join(r.name for r in runners))
    try:
        done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())],
                                     return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in tasks and task.exception():  # a runner died: stop the process so the supervisor sees it
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await site.stop()


async def _health_site(runners: list[ProjectionRunner | AuditTrailProjection], host: str, port: int) -> web.TCPSite:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "projections": {r.name: {"applied": r.applied} for r in runners}})

    async def metrics(_request: web.Request) -> web.Response:
        body, content_type = exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return site


def main() -> None:
    configure_logging("projector", get_settings().log_level)
    kafka_fetch.install_for(get_settings())
    asyncio.run(serve())


if __name__ == "__main__":
    main()
