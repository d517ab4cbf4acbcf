"""Who did what: commands carry their actor (user, role, session) into their events, saga steps included;
every command and authentication event is on bank.audit and, through the projection, searchable at
GET /v1/admin/audit."""

from __future__ import annotations

import asyncio
import json
from typing import Any


from core.audit import ACTOR_HEADER, AuditRecorded
from core.topics import AUDIT, LEDGER_EVENTS
from infra.kafka import read_topic
from infra.records import header_list
from schemas.codec import get_codec
from tests.support import Bank, Tokens, _TOKENS


async def _records(bootstrap: str, topic: str) -> list[tuple[Any, dict[str, bytes]]]:
    codec = get_codec()
    return [(codec.decode(r.value, r.headers), dict(header_list(r)))
            for r in (await read_topic(bootstrap, topic)).records]


def _session_of(bank: Bank) -> Tokens:
    [tokens] = [t for (base, email), t in _TOKENS.items() if email == bank.identity.email]
    return tokens


def test_commands_carry_their_actor_into_events_and_onto_the_audit_trail(api_url: str, kafka_bootstrap: str) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], Tokens, str, list[dict[str, Any]]]:
        customer, teller, analyst = await Bank.customer(api_url), Bank(api_url), Bank(api_url, role="analyst")
        try:
            payee = await teller.open(customer="cust-payee")
            mine = await customer.open()
            deposit = await teller.deposit(mine, "50.00")   # cash in at the counter: staff only
            transfer = await customer.transfer(mine, payee, "20.00")
            assert deposit.status_code == transfer.status_code == 200, transfer.text
            trail: list[dict[str, Any]] = []
            for _ in range(150):   # the projection folds bank.audit asynchronously
                page = await analyst.get("/v1/admin/audit", user_id=customer.identity.user_id,
                                         action="command_submitted")
                assert page.status_code == 200, page.text
                trail = page.json()["items"]
                if len(trail) >= 2:
                    break
                await asyncio.sleep(0.2)
            return deposit.json(), transfer.json(), _session_of(customer), customer.identity.user_id, trail
        finally:
            for bank in (customer, teller, analyst):
                await bank.close()

    deposit, transfer, session, user_id, trail = asyncio.run(scenario())
    actor = {"user_id": user_id, "role": "customer", "session_id": session.session_id}

    events = asyncio.run(_records(kafka_bootstrap, LEDGER_EVENTS))
    of_transfer = [(e, h) for e, h in events if e.correlation_id == transfer["command_id"]]
    assert {type(e).__name__ for e, _ in of_transfer} >= {"TransferDebited", "TransferCredited"}
    for event, headers in of_transfer:
        assert json.loads(headers[ACTOR_HEADER]) == actor, type(event).__name__   # the saga's credit too
    of_deposit = [h for e, h in events if e.correlation_id == deposit["command_id"]]
    assert of_deposit and all(json.loads(h[ACTOR_HEADER])["role"] == "teller" for h in of_deposit)

    submitted = [r for r, _ in asyncio.run(_records(kafka_bootstrap, AUDIT))
                 if isinstance(r, AuditRecorded) and r.action == "command_submitted" and r.actor_user_id == user_id]
    assert transfer["command_id"] in {r.details["command_id"] for r in submitted}
    assert all((r.actor_role, r.actor_session_id, r.ip) == ("customer", session.session_id, "127.0.0.1")
               for r in submitted)

    by_command = {item["details"]["command_id"]: item for item in trail}
    entry = by_command[transfer["command_id"]]
    assert entry["actor"] == actor and entry["outcome"] == "success"
    assert entry["details"]["command_type"] == "Transfer" and entry["user_agent"].startswith("python-httpx")
    assert deposit["command_id"] not in by_command   # the teller's, on the teller's trail


def test_the_audit_trail_pages_newest_first(api_url: str) -> None:
    async def scenario() -> None:
        analyst = Bank(api_url, role="analyst")
        try:
            first = await analyst.get("/v1/admin/audit", limit=2)
            assert first.status_code == 200, first.text
            items, cursor = first.json()["items"], first.json()["next_cursor"]
            assert len(items) == 2 and cursor
            second = (await analyst.get("/v1/admin/audit", limit=2, cursor=cursor)).json()["items"]
            assert second and {i["event_id"] for i in items}.isdisjoint(i["event_id"] for i in second)
            moments = [i["occurred_at"] for i in items + second]
            assert moments == sorted(moments, reverse=True)
            only_logins = (await analyst.get("/v1/admin/audit", action="login", limit=20)).json()["items"]
            assert only_logins and {i["action"] for i in only_logins} == {"login"}
            bad = await analyst.get("/v1/admin/audit", cursor="garbage")
            assert bad.status_code == 400 and bad.json()["reason"] == "invalid_cursor"
        finally:
            await analyst.close()

    asyncio.run(scenario())
