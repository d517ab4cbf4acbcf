"""Run one stream worker: `python -m streams` (settings from BANK_* env vars)."""

from __future__ import annotations

import sys

from streams import ledger, risk, saga  # noqa: F401  (registers the agents)
from streams.app import app, settings


def main() -> None:
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--web-host", settings.worker_web_host,
                "--web-port", str(settings.worker_web_port)]
    app.main()


if __name__ == "__main__":
    main()
