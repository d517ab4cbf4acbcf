"""End to end over HTTP against the running stack: API -> Kafka -> ledger agent -> event log -> API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from core import commands as c
from core.topics import LEDGER_COMMANDS, LEDGER_EVENTS
from infra.kafka import partition_for, read_topic
from tests.support import Bank, decoded, seed_customers, settled_audit

pytestmark = pytest.mark.usefixtures("stack")
PARTITIONS = 6


def partition_of(account_id: str) -> int:
    return partition_for(account_id.encode(), PARTITIONS)


def run(api_url: str, scenario: Callable[[Bank], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        bank = Bank(api_url)
        try:
            return await scenario(bank)
        finally:
            await bank.close()

    return asyncio.run(main())


def problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["reason"] == reason and body["status"] == status and body["detail"]
    return body


def test_open_deposit_withdraw_and_read(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        account = await bank.open("EUR", customer="alice")
        assert (await bank.deposit(account, "100.50")).status_code == 200
        response = await bank.withdraw(account, "0.50")
        assert response.status_code == 200 and response.json()["status"] == "accepted"
        assert response.json()["events"][0]["data"]["balance_after"] == "100.00"
        view = await bank.account(account)
        numbers = {name: view.pop(name) for name in ("account_number", "iban", "iban_formatted")}
        assert all(numbers.values()) and numbers["iban"].endswith(numbers["account_number"])   # tests/e2e/test_iban.py
        assert view | {"account_id": account} == {
            "account_id": account, "customer_id": "alice", "currency": "EUR", "balance": "100.00",
            "available_balance": "100.00", "overdraft_limit": "0.00", "status": "open", "version": 3}

    run(api_url, scenario)


def test_currency_precision_jpy_and_bhd(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        yen = await bank.open("JPY")
        assert (await bank.deposit(yen, "1500", "JPY")).status_code == 200
        problem(await bank.deposit(yen, "1.5", "JPY"), 422, "too_many_decimals")
        dinar = await bank.open("BHD")
        assert (await bank.deposit(dinar, "1.125", "BHD")).status_code == 200
        assert (await bank.account(dinar))["balance"] == "1.125"
        assert (await bank.account(yen))["balance"] == "1500"

    run(api_url, scenario)


def test_transfers_both_ways_across_partitions(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        a = await bank.open()
        b = await bank.open()
        while partition_of(b) == partition_of(a):
            b = await bank.open()
        await bank.deposit(a, "100")
        await bank.deposit(b, "10")
        there = await bank.transfer(a, b, "30.25")
        assert there.status_code == 200, there.text
        kinds = [ev["type"] for ev in there.json()["events"]]
        assert kinds[:2] == ["TransferDebited", "TransferCredited"]
        back = await bank.transfer(b, a, "40.25")
        assert back.status_code == 200, back.text
        assert (await bank.account(a))["balance"] == "110.00"
        assert (await bank.account(b))["balance"] == "0.00"

    run(api_url, scenario)


def test_a_transfer_within_one_partition_settles_in_one_step(api_url: str, kafka_bootstrap: str) -> None:
    """Both accounts on one partition: the ledger decides the transfer's steps in the batch that debits the source,
    and the saga sends none of them; into a frozen account, the debit is reversed in that step too."""
    async def scenario(bank: Bank) -> tuple[int, list[str]]:
        a = await bank.open()
        b = await bank.open()
        while partition_of(b) != partition_of(a):
            b = await bank.open()
        await bank.deposit(a, "100")
        there = await bank.transfer(a, b, "30.25")
        assert there.status_code == 200, there.text
        assert [ev["type"] for ev in there.json()["events"]][:2] == ["TransferDebited", "TransferCredited"]
        assert (await bank.post(f"/v1/accounts/{b}/freeze", {"reason": "fraud check"})).status_code == 200
        body = problem(await bank.transfer(a, b, "5"), 422, "account_frozen")
        assert [ev["type"] for ev in body["events"]] == ["TransferDebited", "TransferCreditFailed",
                                                         "TransferReversed"]
        assert (await bank.account(a))["balance"] == "69.75"
        assert (await bank.account(b))["balance"] == "30.25"
        return partition_of(a), [there.json()["events"][0]["data"]["transfer_id"],
                                 body["events"][0]["data"]["transfer_id"]]

    partition, transfers = run(api_url, scenario)
    steps = {step_id(transfer) for transfer in transfers
             for step_id in (c.credit_step_id, c.complete_step_id, c.reverse_step_id)}
    commands = asyncio.run(read_topic(kafka_bootstrap, LEDGER_COMMANDS, partitions=[partition])).records
    sent = {command.command_id for command in decoded(commands)}
    assert not steps & sent   # no step went through the log
    events = asyncio.run(read_topic(kafka_bootstrap, LEDGER_EVENTS, partitions=[partition])).records
    decided = decoded(events)
    assert {event.command_id for event in decided} >= {c.credit_step_id(transfers[0]),
                                                      c.complete_step_id(transfers[0]),
                                                      c.reverse_step_id(transfers[1])}


def test_overdraft_is_a_floor(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        account = await bank.open(overdraft="50.00")
        await bank.deposit(account, "10")
        assert (await bank.withdraw(account, "60")).status_code == 200
        view = await bank.account(account)
        assert view["balance"] == "-50.00" and view["available_balance"] == "0.00"
        body = problem(await bank.withdraw(account, "0.01"), 422, "insufficient_funds")
        assert body["command_id"] and body["events"][0]["type"] == "CommandRejected"
        other = await bank.open()
        problem(await bank.transfer(account, other, "0.01"), 422, "insufficient_funds")
        assert (await bank.account(account))["balance"] == "-50.00"

    run(api_url, scenario)


def test_frozen_account(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        frozen = await bank.open()
        source = await bank.open()
        await bank.deposit(frozen, "20")
        await bank.deposit(source, "20")
        assert (await bank.post(f"/v1/accounts/{frozen}/freeze", {"reason": "fraud check"})).status_code == 200
        assert (await bank.account(frozen))["status"] == "frozen"
        problem(await bank.deposit(frozen, "1"), 422, "account_frozen")
        problem(await bank.withdraw(frozen, "1"), 422, "account_frozen")
        problem(await bank.post(f"/v1/accounts/{frozen}/freeze"), 422, "account_frozen")
        # Into a frozen account: the debit happens on the source, the credit fails, the saga reverses it.
        body = problem(await bank.transfer(source, frozen, "5"), 422, "account_frozen")
        assert [ev["type"] for ev in body["events"]] == ["TransferDebited", "TransferCreditFailed",
                                                         "TransferReversed"]
        assert (await bank.account(source))["balance"] == "20.00"
        assert (await bank.post(f"/v1/accounts/{frozen}/unfreeze")).status_code == 200
        problem(await bank.post(f"/v1/accounts/{frozen}/unfreeze"), 422, "account_not_frozen")
        assert (await bank.transfer(source, frozen, "5")).status_code == 200
        assert (await bank.account(frozen))["balance"] == "25.00"

    run(api_url, scenario)


def test_balances_are_bounded(api_url: str) -> None:
    """An account holds at most 10^13 EUR (10^15 minor units): a deposit past it is rejected, and so is a
    transfer credit (the saga reverses the debit). Before the bound, enough deposits overflowed Avro's long:
    the event could not be encoded, and the ledger retried it until the worker died."""
    async def scenario(bank: Bank) -> None:
        rich, other = await bank.open(), await bank.open()
        huge = "6000000000000.00"
        assert (await bank.fund(rich, huge)).status_code == 200
        body = problem(await bank.fund(rich, huge), 422, "balance_limit")
        assert "outside the limit of ±10000000000000.00" in body["detail"]
        assert (await bank.fund(rich, "3999999999999.50")).status_code == 200   # later commands post
        assert (await bank.account(rich))["balance"] == "9999999999999.50"
        await bank.fund(other, "1.00")
        body = problem(await bank.transfer(other, rich, "0.51"), 422, "balance_limit")
        assert [ev["type"] for ev in body["events"]] == ["TransferDebited", "TransferCreditFailed",
                                                         "TransferReversed"]
        assert (await bank.account(other))["balance"] == "1.00"
        assert (await bank.transfer(other, rich, "0.50")).status_code == 200
        assert (await bank.account(rich))["balance"] == "10000000000000.00"

    run(api_url, scenario)


def test_closed_account(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        account = await bank.open()
        source = await bank.open()
        await bank.deposit(account, "3")
        await bank.deposit(source, "3")
        problem(await bank.post(f"/v1/accounts/{account}/close"), 422, "balance_not_zero")
        await bank.withdraw(account, "3")
        assert (await bank.post(f"/v1/accounts/{account}/close")).status_code == 200
        assert (await bank.account(account))["status"] == "closed"
        problem(await bank.deposit(account, "1"), 422, "account_closed")
        body = problem(await bank.transfer(source, account, "1"), 422, "account_closed")
        assert body["events"][-1]["type"] == "TransferReversed"
        assert (await bank.account(source))["balance"] == "3.00"

    run(api_url, scenario)


def test_currency_mismatch_and_unknown_accounts(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        eur = await bank.open("EUR")
        gbp = await bank.open("GBP")
        await bank.deposit(eur, "10")
        problem(await bank.deposit(eur, "1", "GBP"), 422, "currency_mismatch")
        problem(await bank.transfer(eur, gbp, "1", "EUR"), 422, "currency_mismatch")
        problem(await bank.transfer(eur, eur, "1"), 422, "same_account")
        ghost = str(uuid.uuid4())
        problem(await bank.deposit(ghost, "1"), 404, "unknown_account")
        problem(await bank.transfer(eur, ghost, "1"), 404, "unknown_account")
        problem(await bank.http.get(f"/v1/accounts/{ghost}"), 404, "unknown_account")
        problem(await bank.http.get(f"/v1/commands/{ghost}"), 404, "unknown_command")

    run(api_url, scenario)


def test_idempotent_retry_and_key_reuse(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        account = await bank.open()
        key = f"retry-{uuid.uuid4()}"
        first = await bank.deposit(account, "7.00", key=key)
        again = await bank.deposit(account, "7.00", key=key)
        assert first.status_code == again.status_code == 200
        assert first.json()["command_id"] == again.json()["command_id"]
        assert (await bank.account(account))["balance"] == "7.00"
        problem(await bank.deposit(account, "8.00", key=key), 409, "idempotency_key_reused")
        # The same key, without waiting, many times at once: still one posting.
        key2 = f"burst-{uuid.uuid4()}"
        responses = await asyncio.gather(*(bank.deposit(account, "1.00", key=key2, wait=False) for _ in range(10)))
        assert {r.status_code for r in responses} == {202}
        assert len({r.json()["command_id"] for r in responses}) == 1
        await bank.deposit(account, "1.00", key=key2)  # waits for the outcome
        assert (await bank.account(account))["balance"] == "8.00"
        # Open-account retries return the same account.
        key3 = f"open-{uuid.uuid4()}"
        await seed_customers("bob")
        body = {"customer_id": "bob", "currency": "EUR"}
        one, two = (await bank.post("/v1/accounts", body, key=key3), await bank.post("/v1/accounts", body, key=key3))
        assert one.status_code == two.status_code == 201 and one.json()["account_id"] == two.json()["account_id"]

    run(api_url, scenario)


def test_a_key_counts_as_used_only_once_a_command_went_out_under_it(api_url: str) -> None:
    """The API takes a new key as it looks for an earlier answer (one round trip). A request the route refuses
    sends nothing and gives the key back, so the corrected request may use it; a command the ledger rejected went
    out, so its key stays used."""
    async def scenario(bank: Bank) -> None:
        source, destination = await bank.open(), await bank.open()
        await bank.deposit(source, "10.00")
        key = f"corrected-{uuid.uuid4()}"
        problem(await bank.transfer(source, str(uuid.uuid4()), "1.00", key=key), 404, "unknown_account")
        corrected = await bank.transfer(source, destination, "1.00", key=key)
        assert corrected.status_code == 200, corrected.text
        again = await bank.transfer(source, destination, "1.00", key=key)
        assert again.json()["command_id"] == corrected.json()["command_id"]
        assert (await bank.account(destination))["balance"] == "1.00"

        rejected_key = f"rejected-{uuid.uuid4()}"
        rejected = await bank.transfer(source, destination, "500.00", key=rejected_key)
        problem(rejected, 422, "insufficient_funds")
        problem(await bank.transfer(source, destination, "2.00", key=rejected_key), 409, "idempotency_key_reused")

    run(api_url, scenario)


def test_idempotency_keys_are_per_caller(api_url: str) -> None:
    """Two customers (and two staff members) using the same Idempotency-Key each get their own command: no 409
    across callers, no outcome of the other's, and the same caller's retry is still deduplicated."""
    async def scenario(teller: Bank) -> None:
        ann, bob, admin = await Bank.customer(api_url), await Bank.customer(api_url), Bank(api_url, role="admin")
        try:
            accounts = {}
            for customer in (ann, bob):
                accounts[customer] = (await customer.open(), await customer.open())
                funded = await teller.deposit(accounts[customer][0], "50.00")   # staff fund it, as a teller would
                assert funded.status_code == 200, funded.text
            key = f"shared-{uuid.uuid4()}"
            ann_first = await ann.transfer(*accounts[ann], "5.00", key=key)
            bob_first = await bob.transfer(*accounts[bob], "7.00", key=key)   # another body: not a 409
            assert ann_first.status_code == bob_first.status_code == 200, (ann_first.text, bob_first.text)
            ann_id, bob_id = ann_first.json()["command_id"], bob_first.json()["command_id"]
            assert ann_id != bob_id
            assert {ev["account_id"] for ev in bob_first.json()["events"]} <= set(accounts[bob]), bob_first.text
            # Neither sees the other's outcome.
            problem(await ann.http.get(f"/v1/commands/{bob_id}"), 404, "unknown_command")
            problem(await bob.http.get(f"/v1/commands/{ann_id}"), 404, "unknown_command")
            # Each caller's retry is the same command, posted once; another body under the key is their 409.
            again = await ann.transfer(*accounts[ann], "5.00", key=key)
            assert (again.status_code, again.json()["command_id"]) == (200, ann_id), again.text
            problem(await ann.transfer(*accounts[ann], "6.00", key=key), 409, "idempotency_key_reused")
            problem(await bob.transfer(*accounts[bob], "5.00", key=key), 409, "idempotency_key_reused")
            for customer, moved in ((ann, "45.00"), (bob, "43.00")):
                assert (await customer.account(accounts[customer][0]))["balance"] == moved
            # Staff too: the teller's and the admin's same key are two commands.
            by_teller = await teller.deposit(accounts[ann][1], "1.00", key=key)
            by_admin = await admin.deposit(accounts[bob][1], "2.00", key=key)
            assert by_teller.status_code == by_admin.status_code == 200, (by_teller.text, by_admin.text)
            assert len({ann_id, bob_id, by_teller.json()["command_id"], by_admin.json()["command_id"]}) == 4
        finally:
            for bank in (ann, bob, admin):
                await bank.close()

    run(api_url, scenario)


def test_without_wait_returns_202_and_a_status_url(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        account = await bank.open()
        response = await bank.deposit(account, "5", wait=False)
        assert response.status_code == 202
        accepted = response.json()
        assert accepted["status"] == "pending" and accepted["account_id"] == account
        assert response.headers["location"] == accepted["status_url"]
        for _ in range(100):
            status = (await bank.http.get(accepted["status_url"])).json()
            if status["status"] != "pending":
                break
            await asyncio.sleep(0.05)
        assert status["status"] == "accepted" and status["events"][0]["type"] == "FundsDeposited"

    run(api_url, scenario)


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({"amount": "-1", "currency": "EUR"}, 422, "invalid_amount"),
    ({"amount": "0", "currency": "EUR"}, 422, "non_positive_amount"),
    ({"amount": "0.00", "currency": "EUR"}, 422, "non_positive_amount"),
    ({"amount": "1.001", "currency": "EUR"}, 422, "too_many_decimals"),
    ({"amount": "1", "currency": "XYZ"}, 422, "unknown_currency"),
    ({"amount": "1", "currency": "eur"}, 422, "string_pattern_mismatch"),
    ({"amount": 1.5, "currency": "EUR"}, 422, "string_type"),
    ({"amount": "1"}, 422, "missing"),
    ({"amount": "1", "currency": "EUR", "bogus": 1}, 422, "extra_forbidden"),
    ({"amount": "99999999999999999999", "currency": "EUR"}, 422, "amount_too_large"),
])
def test_bad_input_is_a_clear_4xx(api_url: str, body: dict[str, Any], status: int, reason: str) -> None:
    async def scenario(bank: Bank) -> None:
        account = await bank.open()
        problem(await bank.post(f"/v1/accounts/{account}/deposits", body), status, reason)

    run(api_url, scenario)


def test_transport_level_bad_input(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        account = await bank.open()
        path = f"/v1/accounts/{account}/deposits"
        problem(await bank.http.post(path, content=b'{"amount": "1",', headers={"content-type": "application/json"}),
                400, "malformed_json")
        problem(await bank.http.post(path, content=b"amount=1", headers={"content-type": "text/plain"}),
                415, "unsupported_media_type")
        huge = b'{"amount": "1", "currency": "EUR", "reference": "' + b"x" * 100_000 + b'"}'
        problem(await bank.http.post(path, content=huge, headers={"content-type": "application/json"}),
                413, "body_too_large")

        async def chunks() -> Any:
            for _ in range(100):
                yield b"x" * 1000

        problem(await bank.http.post(path, content=chunks(), headers={"content-type": "application/json"}),
                413, "body_too_large")
        problem(await bank.post(path, {"amount": "1", "currency": "EUR"}, key="x" * 300), 400,
                "invalid_idempotency_key")
        problem(await bank.post("/v1/accounts", {"customer_id": "c", "currency": "EUR", "overdraft_limit": "-5"}),
                422, "invalid_amount")

    run(api_url, scenario)


def test_health_and_openapi(api_url: str) -> None:
    with httpx.Client(base_url=api_url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert set(checks) == {"ledger_view", "postgres", "redis", "mongo", "workers", "projection_workers",
                               "read_models"}
        assert "bankstream-ledger-workers: 1 member(s)" in checks["workers"]["detail"]
        assert checks["projection_workers"]["detail"].count("1 member(s)") == 3
        assert checks["read_models"]["detail"].startswith("events behind the log: postgres ")
        spec = http.get("/openapi.json").json()
        for path in ("/v1/accounts", "/v1/accounts/{account_id}/deposits", "/v1/accounts/{account_id}/withdrawals",
                     "/v1/transfers", "/v1/accounts/{account_id}/freeze", "/v1/accounts/{account_id}/unfreeze",
                     "/v1/accounts/{account_id}/close", "/v1/commands/{command_id}",
                     "/v1/accounts/{account_id}", "/v1/customers/{customer_id}/accounts",
                     "/v1/accounts/{account_id}/transactions", "/v1/accounts/{account_id}/transactions.csv",
                     "/v1/accounts/{account_id}/statements/{month}", "/v1/audit",
                     "/v1/customers/{customer_id}/timeline"):
            assert path in spec["paths"], path


def test_log_invariants_after_the_e2e_tests(kafka_bootstrap: str) -> None:
    audit = asyncio.run(settled_audit(kafka_bootstrap))
    assert audit.violations == []
    assert not audit.in_flight
