"""Many random concurrent commands, then the ledger's invariants checked on the event log itself."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.load import bounded, open_accounts, random_commands
from tests.support import Bank, settled_audit

pytestmark = pytest.mark.usefixtures("stack")


def test_invariants_hold_under_concurrent_random_commands(api_url: str, kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        try:
            accounts = await open_accounts(bank, 50)
            result = await random_commands(bank, accounts, count=bounded(2000), seed=20261124)
        finally:
            await bank.close()
        assert set(result.statuses) == {202}, result.statuses
        audit = await settled_audit(kafka_bootstrap, expected_commands=result.command_ids)
        assert audit.violations == []
        assert not audit.in_flight
        assert result.command_ids <= audit.outcome_command_ids(), "an accepted command has no events"
        rejected = sum(1 for ev in audit.events if type(ev).__name__ == "CommandRejected")
        assert rejected > 0  # the generator does ask for impossible withdrawals
        assert audit.deposited > 0 and audit.withdrawn > 0
        # The books: zero in total, and nothing left in transit once every transfer is credited or reversed.
        assert audit.books.trial_balance("EUR").total == 0 and audit.books.balance("transit", "EUR") == 0

    asyncio.run(scenario())
