"""Run the notifier: `python -m streams.notifications` (settings from BANK_* env vars; `bank up` starts it).

The agent (consumer group bankstream-notifier), the sender and the loan instalment reminders (a periodic task of
business time, reminders.py) run side by side in this process, over the folds of the standing orders, the loans
and the loans' postings (folds.py); a small web server on BANK_WORKER_WEB_PORT answers /healthz and /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import asyncpg
from aiohttp import web

from core.settings import get_settings
from infra import kafka_fetch
from infra.clock import BusinessTime
from infra.logs import configure_logging
from schemas.codec import get_codec
from streams.metrics import exposition
from streams.notifications.agent import NotificationAgent
from streams.notifications.channels import EmailChannel, sms_provider
from streams.notifications.folds import Folds
from streams.notifications.reminders import InstalmentReminders
from streams.notifications.sender import Sender

log = logging.getLogger("streams.notifications")


async def serve() -> None:
    settings = get_settings()
    pool = await asyncpg.create_pool(settings.pg, min_size=1, max_size=4)
    business_time = BusinessTime(settings.kafka, settings.clock_control, get_codec())
    await business_time.start()
    sms = sms_provider(settings)
    folds = Folds(settings.kafka)
    await folds.start()
    agent = NotificationAgent(settings.kafka, pool, business_time, settings.worker_id, settings.notify_max_age,
                              folds)
    reminders = InstalmentReminders(folds, agent, pool, business_time, settings.customer_time_zone,
                                    settings.loan_due_reminder_days, settings.scheduler_interval)
    sender = Sender(pool, settings, business_time, EmailChannel(settings), sms)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    site = await _health_site(agent, sender, settings.worker_web_host, settings.worker_web_port)
    tasks = [asyncio.create_task(agent.run(stop), name="notifier-agent"),
             asyncio.create_task(sender.run(stop), name="notifier-sender"),
             asyncio.create_task(reminders.run(stop), name="notifier-reminders")]
    log.info("notifier %s: running", settings.worker_id)
    try:
        done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in tasks and task.exception():   # a loop died: stop the process so the supervisor sees it
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await site.stop()
        await sms.close()
        await folds.stop()
        await business_time.stop()
        await pool.close()


async def _health_site(agent: NotificationAgent, sender: Sender, host: str, port: int) -> web.TCPSite:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "records_handled": agent.handled, "messages_sent": sender.sent})

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
    configure_logging("notifier", get_settings().log_level)
    kafka_fetch.install_for(get_settings())
    asyncio.run(serve())


if __name__ == "__main__":
    main()
