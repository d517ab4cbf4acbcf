"""Run the payment gateway connector: `python -m gateway`."""

from __future__ import annotations

import asyncio

from gateway.connector import main

if __name__ == "__main__":
    asyncio.run(main())
