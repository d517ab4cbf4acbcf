"""A seeded generator of random concurrent commands over HTTP, for the invariant and crash tests."""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field

from tests.support import Bank


# The load tests' size: full with BANK_SLOW_TESTS=1 (long on demand), half by default, which keeps the clean-clone
# CI run in budget; every kill still lands while commands flow (the tests assert it).
LOAD_SCALE = 1.0 if os.environ.get("BANK_SLOW_TESTS") == "1" else 0.5


def bounded(count: int) -> int:
    """How many commands a load test sends: `count` on demand, fewer by default (LOAD_SCALE)."""
    return max(1, round(count * LOAD_SCALE))


@dataclass
class LoadResult:
    accounts: list[str]
    command_ids: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)


async def open_accounts(bank: Bank, count: int, overdraft_every: int = 5) -> list[str]:
    async def one(i: int) -> str:
        return await bank.open("EUR", overdraft="25.00" if i % overdraft_every == 0 else None, customer=f"c{i % 7}")

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def random_commands(bank: Bank, accounts: list[str], count: int, seed: int, concurrency: int = 32,
                          retry_share: float = 0.05) -> LoadResult:
    """Deposits, withdrawals and transfers (some impossible, some retried with the same key)."""
    rng = random.Random(seed)
    result = LoadResult(accounts)
    gate = asyncio.Semaphore(concurrency)

    def plan(i: int) -> tuple[str, str, dict[str, str]]:
        roll = rng.random()
        cents = rng.randint(1, 5000)
        amount = f"{cents // 100}.{cents % 100:02d}"
        a, b = rng.sample(accounts, 2)
        if roll < 0.35:
            return f"/v1/accounts/{a}/deposits", f"k{seed}-{i}", {"amount": amount, "currency": "EUR"}
        if roll < 0.6:
            return f"/v1/accounts/{a}/withdrawals", f"k{seed}-{i}", {"amount": amount, "currency": "EUR"}
        return "/v1/transfers", f"k{seed}-{i}", {"from_account_id": a, "to_account_id": b, "amount": amount,
                                                  "currency": "EUR"}

    plans = [plan(i) for i in range(count)]
    plans += [rng.choice(plans) for _ in range(int(count * retry_share))]  # retries: same key, same body
    rng.shuffle(plans)

    async def send(path: str, key: str, body: dict[str, str]) -> None:
        async with gate:
            response = await bank.post(path, body, key=key, wait=False)
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        if response.status_code == 202:
            result.command_ids.add(response.json()["command_id"])

    await asyncio.gather(*(send(*p) for p in plans))
    return result
