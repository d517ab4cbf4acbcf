"""Fraud and AML scoring in the stream, end to end: API -> risk agent -> ledger, on the real stack.

Each test uses its own customer ids, so the customer-wide features (structuring, CTR) of one test cannot
trigger rules in another. The default rule set (rules/default.yaml) is live unless a test publishes one.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from core.audit import AuditRecorded
from core.risk.records import RiskAssessed, RuleSetPublished
from core.risk.rules import load_rule_set
from core.settings import PROJECT_ROOT
from core.topics import RISK_ASSESSMENTS, RISK_RULES
from infra.producer import create_producer
from schemas.codec import get_codec
from streams.ledger_log import read_topic
from tests.support import Bank, settled_audit

DEFAULT_RULES = PROJECT_ROOT / "rules" / "default.yaml"


def _customer() -> str:
    return f"risk-{uuid.uuid4().hex[:10]}"


async def read_assessments(bootstrap: str) -> list[RiskAssessed]:
    """Every RiskAssessed on the assessments topic, up to its current end."""
    return await read_topic(bootstrap, RISK_ASSESSMENTS)


async def assessments_of(bootstrap: str, command_ids: set[str], timeout: float = 60.0) -> dict[str, list[RiskAssessed]]:
    """The assessments of these commands, once each has at least one."""
    for _ in range(int(timeout * 2)):
        found: dict[str, list[RiskAssessed]] = {}
        for record in await read_assessments(bootstrap):
            if record.command_id in command_ids:
                found.setdefault(record.command_id, []).append(record)
        if found.keys() == command_ids:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"no assessment for {sorted(command_ids - found.keys())}")


async def publish_rules(bootstrap: str, text: str, source: str = "test.yaml") -> RuleSetPublished:
    """What `bank rules publish` puts on the rules topic (tests/integration/test_rules_cli.py covers the command itself)."""
    rule_set = load_rule_set(text, source)
    record = RuleSetPublished.of(rule_set.version, text, source, datetime.now(UTC), "tests")
    value, headers = get_codec().encode(record)
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(RISK_RULES, value, key=record.version.encode(), headers=headers)
    finally:
        await producer.stop()
    return record


def test_an_ordinary_deposit_is_allowed_and_recorded_with_the_live_version(stack, api_url: str,
                                                                          kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        try:
            account = await bank.open(customer=_customer())
            deposit = await bank.deposit(account, "120.00")
            assert deposit.status_code == 200 and deposit.json()["status"] == "accepted", deposit.text
            command_id = deposit.json()["command_id"]
            [assessed] = (await assessments_of(kafka_bootstrap, {command_id}))[command_id]
            assert (assessed.action, assessed.score, assessed.hits) == ("allow", 0, [])
            assert assessed.account_id == account and assessed.amount == 12000 and assessed.kind == "deposit"
            assert assessed.rule_set_version  # names the version it was scored with
        finally:
            await bank.close()

    asyncio.run(scenario())


def test_a_sanctioned_counterparty_is_blocked_and_nothing_moves(stack, api_url: str, kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        try:
            account = await bank.open(customer=_customer())
            assert (await bank.deposit(account, "500.00")).status_code == 200
            blocked = await bank.post(f"/v1/accounts/{account}/withdrawals", {
                "amount": "100.00", "currency": "EUR", "counterparty_name": "sergei  IVANOFF"})
            assert blocked.status_code == 422, blocked.text
            problem = blocked.json()
            assert problem["reason"] == "blocked_by_risk"
            assert [ev["type"] for ev in problem["events"]] == ["RiskFlagged", "CommandRejected"]
            assert problem["events"][0]["data"]["action"] == "block"
            assert "sanctions-counterparty" in problem["detail"]
            assert (await bank.account(account))["balance"] == "500.00"
        finally:
            await bank.close()
        audit = await settled_audit(kafka_bootstrap)
        assert audit.violations == []

    asyncio.run(scenario())


def test_a_large_withdrawal_is_held_reserving_the_funds(stack, api_url: str) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        try:
            account = await bank.open(customer=_customer())
            assert (await bank.fund(account, "80000.00")).status_code == 200
            held = await bank.withdraw(account, "60000.00")
            assert held.status_code == 202 and held.json()["status"] == "held", held.text
            assert [ev["type"] for ev in held.json()["events"]] == ["FundsHeld"]
            rules = [hit["rule_id"] for hit in held.json()["events"][0]["data"]["hits"]]
            assert "large-amount-absolute" in rules
            # The hold reserves: 20,000 left to spend, so 30,000 more is refused; 10,000 is fine (more cash would
            # wait for a second staff member).
            refused = await bank.withdraw(account, "30000.00")
            assert refused.status_code == 422 and refused.json()["reason"] == "insufficient_funds", refused.text
            ok = await bank.withdraw(account, "10000.00")
            assert ok.status_code == 200, ok.text
            close = await bank.post(f"/v1/accounts/{account}/close")
            assert close.status_code == 422 and close.json()["reason"] in {"holds_pending", "balance_not_zero"}
        finally:
            await bank.close()

    asyncio.run(scenario())


def test_alerts_flag_the_movement_and_still_post_it(stack, api_url: str) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        try:
            account = await bank.open(customer=_customer())
            assert (await bank.deposit(account, "100.00")).status_code == 200
            statuses = []
            for _ in range(6):  # the sixth debit within 10 minutes is "more than 5": velocity-10m alerts
                statuses.append(await bank.withdraw(account, "1.00"))
            assert all(s.status_code == 200 for s in statuses), [s.text for s in statuses]
            last = statuses[-1].json()
            assert [ev["type"] for ev in last["events"]] == ["RiskFlagged", "FundsWithdrawn"]
            assert [h["rule_id"] for h in last["events"][0]["data"]["hits"]] == ["velocity-10m"]
            assert all(s.json()["events"][0]["type"] == "FundsWithdrawn" for s in statuses[:5])
            assert (await bank.account(account))["balance"] == "94.00"
        finally:
            await bank.close()

    asyncio.run(scenario())


def test_structuring_across_two_accounts_of_one_customer_is_held(stack, api_url: str) -> None:
    async def scenario() -> None:
        bank = Bank(api_url)
        customer = _customer()
        try:
            first, second = await bank.open(customer=customer), await bank.open(customer=customer)
            cash = {"currency": "EUR"}   # a teller's deposit is cash
            one = await bank.post(f"/v1/accounts/{first}/deposits", {"amount": "9500.00"} | cash)
            assert one.status_code == 200, one.text  # one near-threshold deposit is not structuring
            two = await bank.post(f"/v1/accounts/{second}/deposits", {"amount": "9800.00"} | cash)
            assert two.status_code == 202 and two.json()["status"] == "held", two.text
            rules = {h["rule_id"] for h in two.json()["events"][0]["data"]["hits"]}
            assert {"structuring-cash-24h", "ctr-daily-cash"} <= rules
        finally:
            await bank.close()

    asyncio.run(scenario())


def test_a_published_rule_set_is_used_without_a_restart(stack, api_url: str, kafka_bootstrap: str) -> None:
    """Publish a stricter version while commands flow: every command is scored exactly once, each by the
    version live when it was scored, and once the new version is seen, no later command uses the old one."""

    async def scenario() -> None:
        bank = Bank(api_url)
        base = DEFAULT_RULES.read_text()
        old_version = f"test-{uuid.uuid4().hex[:8]}-a"
        new_version = old_version[:-1] + "b"
        await publish_rules(kafka_bootstrap, base.replace('version: "2026-11-24.1"', f'version: "{old_version}"'))
        stricter = base.replace('version: "2026-11-24.1"', f'version: "{new_version}"').replace(
            'EUR: "50000", GBP: "50000",', 'EUR: "50", GBP: "50",')   # large-amount-absolute's EUR threshold
        assert stricter.count(new_version) == 1 and 'EUR: "50",' in stricter
        restore = base.replace('version: "2026-11-24.1"', f'version: "{old_version}-r"')
        try:
            accounts = [await bank.open(customer=_customer()) for _ in range(4)]
            for account in accounts:
                assert (await bank.deposit(account, "10000.00")).status_code == 200

            async def flow(account: str, n: int) -> list[str]:
                ids = []
                for _ in range(n):
                    response = await bank.withdraw(account, "60.00", wait=False)
                    assert response.status_code == 202, response.text
                    ids.append(response.json()["command_id"])
                    await asyncio.sleep(0.02)
                return ids

            load = asyncio.gather(*(flow(a, 40) for a in accounts))
            await asyncio.sleep(0.5)
            await publish_rules(kafka_bootstrap, stricter)
            command_ids = {i for ids in await load for i in ids}
            late = {i for ids in [await flow(a, 1) for a in accounts] for i in ids}
            found = await assessments_of(kafka_bootstrap, command_ids | late)
        finally:
            await bank.close()
            await publish_rules(kafka_bootstrap, restore)  # the default rules again, for the tests after this
        by_command = {cid: {(r.event_id, r.rule_set_version, r.action) for r in records}
                      for cid, records in found.items()}
        assert all(len(v) == 1 for v in by_command.values()), "a command was scored twice, differently"
        versions = {cid: next(iter(v))[1] for cid, v in by_command.items()}
        assert set(versions.values()) <= {old_version, new_version}
        assert {versions[c] for c in late} == {new_version}, "after the switch, the new version scores"
        assert any(v == new_version for c, v in versions.items() if c in command_ids)
        for cid, v in by_command.items():
            (_, version, action) = next(iter(v))  # old: at most velocity's alert; new: every debit >= 50 held
            assert action in ({"hold"} if version == new_version else {"allow", "alert"}), (cid, version, action)
        # Per account, once a command was scored with the new version, no later one used the old.
        records = [r for rs in found.values() for r in rs]
        for account in accounts:
            mine = sorted((r for r in records if r.account_id == account), key=lambda r: r.at)
            seen_new = False
            for record in mine:
                seen_new = seen_new or record.rule_set_version == new_version
                assert not (seen_new and record.rule_set_version == old_version)

    asyncio.run(scenario())


def test_customers_are_not_told_which_rules_fired(stack, api_url: str) -> None:
    """Held or blocked: a customer learns that, not the rules, score or reviewers' notes (no tipping off);
    staff see everything."""

    async def scenario() -> None:
        customer = await Bank.customer(api_url)
        teller = Bank(api_url)
        try:
            account = await customer.open()
            assert (await teller.fund(account, "80000.00")).status_code == 200
            payee = await teller.open(customer=_customer())
            blocked = await customer.post("/v1/transfers", {
                "from_account_id": account, "to_account_id": payee, "amount": "10.00", "currency": "EUR",
                "counterparty_name": "Serge Ivanoff"})
            assert blocked.status_code == 422 and blocked.json()["reason"] == "blocked_by_risk", blocked.text
            text = blocked.text
            assert "sanctions" not in text and "Ivanov" not in text and "score" not in text, text
            assert [ev["type"] for ev in blocked.json()["events"]] == ["CommandRejected"]
            held = await customer.transfer(account, payee, "60000.00")
            assert held.status_code == 202 and held.json()["status"] == "held", held.text
            assert "large-amount" not in held.text and "hits" not in held.json()["events"][0]["data"]
            staff_view = await teller.command(held.json()["command_id"])
            assert "large-amount-absolute" in str(staff_view["events"][0]["data"]["hits"])
        finally:
            await customer.close()
            await teller.close()

    asyncio.run(scenario())


def test_a_held_transfer_is_reserved_then_posted_on_approval_or_released_on_rejection(
        stack, api_url: str, kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        teller, analyst = Bank(api_url), Bank(api_url, role="analyst")
        customer = _customer()
        try:
            source, target = await teller.open(customer=customer), await teller.open(customer=_customer())
            assert (await teller.fund(source, "150000.00")).status_code == 200
            held = [await teller.transfer(source, target, "60000.00") for _ in range(2)]
            assert [h.json()["status"] for h in held] == ["held", "held"], [h.text for h in held]
            account = await teller.account(source)
            assert (account["balance"], account["available_balance"]) == ("150000.00", "30000.00")
            approve, reject = (h.json()["command_id"] for h in held)
            approved = analyst.seen(await analyst.http.post(f"/v1/admin/cases/{approve}/approve",
                                                            params={"wait": "true"}, json={"comment": "known payee"}))
            assert approved.status_code == 200, approved.text
            rejected = analyst.seen(await analyst.http.post(f"/v1/admin/cases/{reject}/reject",
                                                            params={"wait": "true"}, json={"comment": "mule"}))
            assert rejected.status_code == 200, rejected.text
            teller.position = {p: max(teller.position.get(p, 0), o) for p, o in
                               (analyst.position | teller.position).items()}
            for _ in range(100):  # the approved transfer's saga credits the target, then completes
                if (await teller.command(approve))["status"] == "accepted":
                    break
                await asyncio.sleep(0.1)
            assert (await teller.command(approve))["status"] == "accepted"
            assert (await teller.command(reject))["reason"] == "rejected_by_review"
        finally:
            await teller.close()
            await analyst.close()
        audit = await settled_audit(kafka_bootstrap, expected_commands={approve, reject})
        assert audit.violations == []
        assert audit.accounts[source].balance == 9_000_000 and audit.accounts[target].balance == 6_000_000
        assert audit.accounts[source].holds == {}

    asyncio.run(scenario())


def test_a_record_on_the_rules_topic_that_is_no_rule_set_stops_no_rule_switch(stack, api_url: str,
                                                                              kafka_bootstrap: str) -> None:
    """The risk agent's rulebook follows bank.risk.rules; a record of another type there (an audit record) is
    skipped, loudly. It used to kill the follower silently: no later version ever went live."""

    async def scenario() -> None:
        now = datetime.now(UTC)
        forged = AuditRecorded(event_id=str(uuid.uuid4()), occurred_at=now, action="login", outcome="success",
                               reason=None, actor_user_id=None, actor_role=None, actor_session_id=None,
                               subject_user_id=None, ip=None, user_agent=None, trace_id=None)
        value, headers = get_codec().encode(forged)
        producer = create_producer(kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(RISK_RULES, value, key=b"forged", headers=headers)
        finally:
            await producer.stop()
        base = DEFAULT_RULES.read_text()
        version = f"test-{uuid.uuid4().hex[:8]}"
        stricter = base.replace('version: "2026-11-24.1"', f'version: "{version}"').replace(
            'EUR: "50000", GBP: "50000",', 'EUR: "50", GBP: "50",')   # large-amount-absolute's EUR threshold
        assert 'EUR: "50",' in stricter
        bank = Bank(api_url)
        try:
            account = await bank.open(customer=_customer())
            assert (await bank.fund(account, "10000.00")).status_code == 200
            await publish_rules(kafka_bootstrap, stricter)
            for _ in range(60):   # the new version goes live within moments: a debit of 60 is then held
                response = await bank.withdraw(account, "60.00")
                if response.json()["status"] == "held":
                    break
                await asyncio.sleep(0.5)
            assert response.json()["status"] == "held", "the version published after the audit record never went live"
        finally:
            await bank.close()
            await publish_rules(kafka_bootstrap, base.replace('version: "2026-11-24.1"', f'version: "{version}-r"'))

    asyncio.run(scenario())
