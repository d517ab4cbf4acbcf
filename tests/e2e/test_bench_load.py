"""The API benchmark's load generator (cli/bench/api_load.py), a lean HTTP client of its own, against the session's
API: what it counts as answered must be what the API answered, with ?wait=true and with ?wait=false."""

from __future__ import annotations

import asyncio

import pytest

from cli.bench.api_load import Connections, _closed_loop
from tests.support import Bank, login, staff

pytestmark = pytest.mark.usefixtures("stack")


def test_the_load_generator_counts_what_the_api_answers(api_url: str) -> None:
    async def accounts() -> list[str]:
        bank = Bank(api_url)
        try:
            return [await bank.open(), await bank.open()]
        finally:
            await bank.close()

    opened = asyncio.run(accounts())
    token = login(api_url, staff("teller"))["access_token"]
    waited = asyncio.run(_closed_loop(api_url, token, opened, 4, 1.5, wait=True))
    assert waited["errors"] == 0 and waited["statuses"] == {"200": waited["requests"]} and waited["requests"] >= 4
    assert 0 < waited["p50_ms"] <= waited["p99_ms"]
    queued = asyncio.run(_closed_loop(api_url, token, opened, 4, 1.5, wait=False))
    assert queued["errors"] == 0 and queued["statuses"] == {"202": queued["requests"]}

    async def refused() -> int:   # a bad token: the generator reports the API's 401, it does not fail
        connections = Connections(api_url, "not-a-token", 1)
        try:
            return await connections.post(f"/v1/accounts/{opened[0]}/deposits", b"{}", "key-1")
        finally:
            connections.close()

    assert asyncio.run(refused()) == 401
