"""Run one stream worker: `python -m streams` (settings from BANK_* env vars)."""

from __future__ import annotations

import sys

from streams import ledger, risk, saga  # noqa: F401  (registers the agents)
from streams.app import app, settings
from streams.rulebook import StartupFileError, check_startup_files


def main() -> None:
    try:
        check_startup_files(settings.rules_file, settings.sanctions_file)
    except StartupFileError as error:
        print(f"bankstream worker cannot start: {error}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--web-host", settings.worker_web_host,
                "--web-port", str(settings.worker_web_port)]
    app.main()


if __name__ == "__main__":
    main()
