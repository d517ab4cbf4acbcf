"""Notifications against the real stack (issue 19): the notifier process, the dev SMTP server and the SMS gateway
simulator the session stack runs, through the HTTP API.

- a transfer: the receiver's live stream (SSE) carries it within 1 s, their email is at the SMTP server within 2 s
- thresholds fire above their amount and not below; quiet hours hold an SMS until business time passes their end
- the SMTP server stopped during a burst and restarted: every email arrives, exactly once
- a customer's stream never carries another's notification; a reconnection resumes without loss or repeat
- a sign-in from a new device, a held payment (the customer told, the analysts alerted, no rule named)
- a standing order failing for want of money; a loan approved, paid out, its instalment coming due, missed
  (collection refused, late fee): each told to the customer, business time moved by an admin, never slept
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from cli.devstack import Stack
from cli.lag import collect
from core.notifications import NOTIFIER_GROUP, NOTIFIER_TOPICS
from core.settings import get_settings
from tests.support import Bank, auth_as, problem

FAST = 1.0      # the stream, from the transfer's answer
EMAIL = 2.0     # the email at the SMTP server, from the transfer's answer


# ---------------------------------------------------------------- helpers


class EventStream:
    """A client of GET /v1/notifications/stream: parses Server-Sent Events into (id, data) as they come."""

    def __init__(self, bank: Bank, last_event_id: int | None = None, since: int | None = None) -> None:
        self.bank = bank
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.arrived: list[float] = []
        self.connected = asyncio.Event()
        self._new = asyncio.Event()
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        params = {"since": since} if since is not None else {}
        self._task = asyncio.create_task(self._read(headers, params))

    async def _read(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        async with self.bank.http.stream("GET", "/v1/notifications/stream", headers=headers, params=params,
                                         timeout=httpx.Timeout(30, read=None)) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            self.connected.set()
            event: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line == "":
                    if "data" in event and event.get("event") == "notification":
                        self.events.append((int(event["id"]), json.loads(event["data"])))
                        self.arrived.append(time.monotonic())
                        self._new.set()
                    event = {}
                elif not line.startswith(":") and ":" in line:
                    name, value = line.split(":", 1)
                    event[name] = value[1:] if value.startswith(" ") else value

    async def started(self) -> EventStream:
        await asyncio.wait_for(self.connected.wait(), 30)
        return self

    async def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> tuple[float, dict]:
        """The first event matching, and when it arrived (time.monotonic)."""
        deadline = time.monotonic() + timeout
        while True:
            for arrived, (_seq, data) in zip(self.arrived, self.events, strict=True):
                if predicate(data):
                    return arrived, data
            left = deadline - time.monotonic()
            assert left > 0, f"no such notification on the stream; got {[d['type'] for _, d in self.events]}"
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except TimeoutError:
                pass

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(interval)


async def mailbox(to: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{get_settings().mailbox_url}/messages", params={"to": to})
    response.raise_for_status()
    return list(response.json()["messages"])


async def texts(to: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{get_settings().sms}/v1/messages", params={"to": to})
    response.raise_for_status()
    return list(response.json()["messages"])


async def inbox(bank: Bank, **params: Any) -> dict[str, Any]:
    response = await bank.http.get("/v1/notifications", params={"limit": 100} | params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def choose(bank: Bank, **prefs: Any) -> dict[str, Any]:
    response = await bank.http.put("/v1/me/notification-preferences", json=prefs)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def funded_account(teller: Bank, customer: Bank, amount: str = "1000.00") -> str:
    account = await teller.open(customer=customer.customer_id)
    if amount:
        response = await teller.fund(account, amount)
        assert response.status_code == 200, response.text
    return account


def scenario(api_url: str, body: Callable[..., Awaitable[Any]], customers: int = 1) -> Any:
    async def main() -> Any:
        teller = Bank(api_url)
        people = [await Bank.customer(api_url, f"Notified {n}") for n in range(customers)]
        try:
            return await body(teller, *people)
        finally:
            for client in (teller, *people):
                await client.close()

    return asyncio.run(main())


# ---------------------------------------------------------------- the tests


@pytest.fixture(scope="module", autouse=True)
def notifier_caught_up(stack: Stack) -> None:
    """Earlier tests of the session may have written thousands of events: the notifier reads them all first, so
    these tests measure the path of their own records, not a backlog. Its committed offsets reach the end of the
    log (positions, past transaction markers) once it has nothing left."""
    deadline = time.monotonic() + 180
    groups = {NOTIFIER_GROUP: list(NOTIFIER_TOPICS)}
    while True:
        rows = asyncio.run(collect(stack.settings.kafka, groups))
        behind = sum(row.lag for row in rows)
        if behind == 0:
            return
        assert time.monotonic() < deadline, f"the notifier is still {behind} record(s) behind"
        time.sleep(0.5)



def test_a_transfer_reaches_the_stream_within_a_second_and_the_mailbox_within_two(api_url: str) -> None:
    async def body(teller: Bank, sender: Bank, receiver: Bank) -> None:
        chosen = await choose(receiver, channels={"transaction_posted": ["in_app", "email"]})
        assert chosen["channels"]["transaction_posted"] == ["in_app", "email"]
        source, destination = await funded_account(teller, sender), await funded_account(teller, receiver, "")
        stream = await EventStream(receiver).started()
        try:
            # A first transfer, awaited however long it takes: the notifier has caught up with whatever earlier
            # tests wrote, so the second measures the path, not a backlog.
            assert (await sender.transfer(source, destination, "1.00", reference="warm-up")).status_code == 200
            await stream.until(lambda n: n["data"].get("reference") == "warm-up", timeout=60)
            reference = f"rent-{uuid.uuid4().hex[:6]}"
            response = await sender.transfer(source, destination, "42.50", reference=reference)
            assert response.status_code == 200 and response.json()["status"] == "accepted", response.text
            answered = time.monotonic()
            arrived, shown = await stream.until(lambda n: n["data"].get("reference") == reference)
            assert arrived - answered < FAST, f"on the stream {arrived - answered:.2f}s after the transfer"
            assert shown["type"] == "transaction_posted" and shown["data"]["direction"] == "credit"
            assert shown["data"]["amount"] == "42.50" and not shown["read"]
            emails = await eventually(lambda: _with(mailbox(receiver.identity.email), reference), timeout=10)
            assert time.monotonic() - answered < EMAIL, f"email {time.monotonic() - answered:.2f}s after"
            assert len(emails) == 1 and "42.50 EUR" in emails[0]["body"], emails
            assert len(await _with(mailbox(receiver.identity.email), "warm-up")) == 1
            # the sender did not choose email for transactions (the default is in-app only)
            assert await _with(mailbox(sender.identity.email), reference) == []
            listed = await inbox(receiver)
            assert listed["unread_count"] >= 1
            mine = next(n for n in listed["notifications"] if n["notification_id"] == shown["notification_id"])
            read = await receiver.http.post(f"/v1/notifications/{mine['notification_id']}/read")
            assert read.status_code == 204, read.text
            after = await inbox(receiver)
            assert after["unread_count"] == listed["unread_count"] - 1
            problem(await sender.http.post(f"/v1/notifications/{mine['notification_id']}/read"), 404,
                    "unknown_notification")   # another's notification: as unknown as one that does not exist
        finally:
            await stream.close()

    scenario(api_url, body, customers=2)


async def _with(messages: Awaitable[list[dict[str, Any]]], text: str) -> list[dict[str, Any]]:
    return [m for m in await messages if text in m["body"]]


def test_thresholds_fire_above_their_amount_and_not_below(api_url: str) -> None:
    async def body(teller: Bank, customer: Bank, payee: Bank) -> None:
        account, other = await funded_account(teller, customer), await funded_account(teller, payee, "")
        problem(await customer.http.put("/v1/me/notification-preferences", json={
            "thresholds": [{"account_id": other, "debit_above": "1.00"}]}), 422, "unknown_account")
        await choose(customer, thresholds=[{"account_id": account, "debit_above": "100.00",
                                            "balance_below": "900.00"}])
        for amount in ("50.00", "100.00", "150.00"):   # balance 950, 850 (crosses 900), 700
            assert (await customer.transfer(account, other, amount)).status_code == 200

        async def posted() -> dict[str, Any] | None:
            listed = await inbox(customer)
            debits = [n for n in listed["notifications"] if n["type"] == "transaction_posted"
                      and n["data"]["direction"] == "debit"]
            return listed if len(debits) == 3 else None

        listed = await eventually(posted)
        large = [n["data"]["amount"] for n in listed["notifications"] if n["type"] == "large_debit"]
        low = [n["data"]["balance_after"] for n in listed["notifications"] if n["type"] == "low_balance"]
        assert large == ["150.00"], large           # 50.00 and exactly 100.00 are not above 100.00
        assert low == ["850.00"], low               # once, when the balance crossed 900.00
        alerts = await eventually(lambda: _with(mailbox(customer.identity.email), "above the alert amount"))
        assert len(alerts) == 1 and "150.00 EUR" in alerts[0]["body"], alerts   # sent after the inbox row

    scenario(api_url, body, customers=2)


def test_quiet_hours_hold_an_sms_until_they_end(api_url: str) -> None:
    """The phone is confirmed with the code the SMS gateway received (a profile code delivered by the notifier);
    then an SMS due in quiet hours waits until business time passes their end (the clock is moved, never slept)."""
    admin = Bank(api_url, role="admin")

    async def body(teller: Bank, customer: Bank) -> None:
        try:
            phone = f"+49151{uuid.uuid4().int % 10**8:08d}"
            asked = await customer.http.patch("/v1/me/profile", json={"phone": phone})
            assert asked.status_code == 200, asked.text
            [code_sms] = await eventually(lambda: texts(phone))
            code = re.search(r"\b(\d{6})\b", code_sms["body"])
            assert code is not None, code_sms
            verified = await customer.http.post("/v1/me/profile/verify", json={"code": code.group(1)})
            assert verified.status_code == 200, verified.text
            now = datetime.fromisoformat((await admin.http.get("/v1/admin/clock")).json()["now"]).astimezone(UTC)
            start, end = now - timedelta(minutes=2), now + timedelta(minutes=30)
            await choose(customer, channels={"transaction_posted": ["in_app", "sms"]},
                         quiet_hours={"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"),
                                      "timezone": "UTC"})
            account = await funded_account(teller, customer, "")
            reference = f"quiet-{uuid.uuid4().hex[:6]}"
            assert (await teller.deposit(account, "12.00", reference=reference)).status_code == 200
            await eventually(lambda: _in_inbox(customer, reference))   # the notifier has handled it
            await asyncio.sleep(1.0)   # a few rounds of the sender (0.1 s apart): it must keep holding the SMS
            assert [m for m in await texts(phone) if "12.00" in m["body"]] == [], "sent in quiet hours"
            moved = await admin.http.put("/v1/admin/clock", json={"advance": "PT33M"})
            assert moved.status_code == 200, moved.text
            sent = await eventually(lambda: _with_amount(texts(phone), "12.00"), timeout=10)
            assert len(sent) == 1 and sent[0]["status"] in ("queued", "delivered"), sent
        finally:
            await admin.close()

    scenario(api_url, body)


async def _in_inbox(bank: Bank, reference: str) -> bool:
    return any(n["data"].get("reference") == reference for n in (await inbox(bank))["notifications"])


async def _with_amount(messages: Awaitable[list[dict[str, Any]]], amount: str) -> list[dict[str, Any]]:
    return [m for m in await messages if amount in m["body"]]


def test_the_smtp_server_down_during_a_burst_every_email_arrives_exactly_once(
        api_url: str, stack: Stack, pg_dsn: str) -> None:
    """The session's dev SMTP server is stopped (its messages are on disk), a burst of deposits queues emails that
    fail and are retried with backoff; restarted, it receives every one, once each."""
    burst = 8

    async def body(teller: Bank, customer: Bank) -> None:
        await choose(customer, channels={"transaction_posted": ["in_app", "email"]})
        account = await funded_account(teller, customer, "")
        address = customer.identity.email
        stack.kill("smtp-sim")
        try:
            references = [f"burst-{n}-{uuid.uuid4().hex[:6]}" for n in range(burst)]
            answers = await asyncio.gather(*(teller.deposit(account, "1.00", reference=r) for r in references))
            assert all(a.status_code == 200 for a in answers)
            retried = await eventually(lambda: _outbox(pg_dsn, address, "attempts > 0 AND status = 'pending'",
                                                       burst), timeout=20)
            assert retried == burst    # every one failed at least once and waits for a retry
        finally:
            stack.start(stack.smtp_sim_spec())
        got = await eventually(lambda: _all_there(address, burst), timeout=20)
        await asyncio.sleep(1.0)       # anything sent twice would arrive now
        got = await mailbox(address)
        ids = [m["notification_id"] for m in got]
        assert len(got) == burst and len(set(ids)) == burst, [m["subject"] for m in got]
        assert sorted(re.search(r"burst-\d+-\w+", m["body"]).group(0) for m in got) == sorted(references)
        assert await _outbox(pg_dsn, address, "status = 'sent'", burst) == burst

    scenario(api_url, body)


async def _all_there(address: str, count: int) -> list[dict[str, Any]] | None:
    try:
        got = await mailbox(address)
    except httpx.HTTPError:
        return None
    return got if len(got) >= count else None


async def _outbox(pg_dsn: str, recipient: str, condition: str, at_least: int) -> int | None:
    connection = await asyncpg.connect(pg_dsn)
    try:
        count = await connection.fetchval(f"SELECT count(*) FROM notification_outbox WHERE recipient = $1 AND "
                                          f"channel = 'email' AND {condition}", recipient)
    finally:
        await connection.close()
    return int(count) if count >= at_least else None


def test_a_stream_carries_only_its_customers_notifications_and_resumes_without_loss_or_repeat(api_url: str) -> None:
    async def body(teller: Bank, ada: Bank, bob: Bank) -> None:
        ada_account, bob_account = await funded_account(teller, ada), await funded_account(teller, bob)
        streams = {"ada": await EventStream(ada, since=0).started(), "bob": await EventStream(bob, since=0).started()}
        try:
            for n in range(3):
                assert (await ada.transfer(ada_account, bob_account, f"{n + 1}.00")).status_code == 200
                assert (await bob.transfer(bob_account, ada_account, f"{n + 1}.50")).status_code == 200
            for name, stream in streams.items():
                side = "debit" if name == "bob" else "credit"
                await stream.until(lambda d, side=side: d["data"].get("amount") == "3.50"
                                   and d["data"]["direction"] == side)
            owned = {"ada": {ada_account}, "bob": {bob_account}}
            for name, stream in streams.items():
                seqs = [seq for seq, _ in stream.events]
                assert seqs == list(range(1, len(seqs) + 1)), seqs   # the whole inbox, in order, once each
                assert {d["data"]["account_id"] for _, d in stream.events} == owned[name], name
            assert not {d["notification_id"] for _, d in streams["ada"].events} & {
                d["notification_id"] for _, d in streams["bob"].events}
            # Ada drops her connection; what arrives meanwhile is sent when she comes back, after her last id
            await streams["ada"].close()
            last = streams["ada"].events[-1][0]
            for amount in ("7.00", "8.00"):
                assert (await bob.transfer(bob_account, ada_account, amount)).status_code == 200
            await eventually(lambda: _count(ada, last + 2))
            resumed = await EventStream(ada, last_event_id=last).started()
            streams["ada"] = resumed
            await resumed.until(lambda d: d["data"].get("amount") == "8.00")
            assert [seq for seq, _ in resumed.events] == [last + 1, last + 2]
            assert [d["data"]["amount"] for _, d in resumed.events] == ["7.00", "8.00"]
            problem(await ada.http.get("/v1/notifications/stream", headers={"Last-Event-ID": "x"}), 422,
                    "invalid_last_event_id")
        finally:
            for stream in streams.values():
                await stream.close()

    scenario(api_url, body, customers=2)


async def _count(bank: Bank, seq: int) -> bool:
    return any(n["seq"] >= seq for n in (await inbox(bank))["notifications"])


def test_a_sign_in_from_a_new_device_is_notified_and_security_cannot_be_turned_off(api_url: str) -> None:
    async def body(_teller: Bank, customer: Bank) -> None:
        await inbox(customer)     # signed in from the tests' client: the first device is no news
        problem(await customer.http.put("/v1/me/notification-preferences", json={
            "channels": {"new_device_sign_in": ["in_app"]}}), 422, "security_notification_required")
        phone = {"username": customer.identity.email, "password": customer.identity.password}
        agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Version/18.0 Mobile/15E148 Safari/604.1"
        async with httpx.AsyncClient(base_url=str(customer.http.base_url), timeout=30) as http:
            assert (await http.post("/v1/auth/token", data=phone, headers={"User-Agent": agent})).status_code == 200
            assert (await http.post("/v1/auth/token", data=phone, headers={"User-Agent": agent})).status_code == 200

        async def told() -> list[dict[str, Any]]:
            return [n for n in (await inbox(customer))["notifications"] if n["type"] == "new_device_sign_in"]

        [notice] = await eventually(told)
        assert notice["data"]["device"] == "Safari on iOS", notice
        emails = await eventually(lambda: _with(mailbox(customer.identity.email), "Safari on iOS"))
        assert len(emails) == 1   # the second sign-in from the same device is no news either

    scenario(api_url, body)


def test_a_held_payment_tells_the_customer_and_alerts_the_analysts_without_naming_the_rule(api_url: str) -> None:
    analyst = Bank(api_url, role="analyst")

    async def body(teller: Bank, customer: Bank) -> None:
        try:
            account = await teller.open(customer=customer.customer_id)
            held = await teller.deposit(account, "15000.00")   # above the cash dual-control threshold: held
            assert held.status_code == 202 and held.json()["status"] == "held", held.text
            case_id = held.json()["command_id"]

            async def alerted() -> list[dict[str, Any]]:
                return [n for n in (await inbox(analyst))["notifications"]
                        if n["type"] == "staff_alert" and n["data"]["case_id"] == case_id]

            [alert] = await eventually(alerted)
            shown = (await analyst.http.get("/v1/me/notification-preferences")).json()
            assert shown["channels"]["staff_alert"] == ["in_app"] and shown["defaults"]["staff_alert"] == ["in_app"]
            customers = (await customer.http.get("/v1/me/notification-preferences")).json()
            assert "staff_alert" not in customers["channels"], customers   # analysts' alerts only
            assert customers["security_types"] == ["mfa_changed", "new_device_sign_in", "password_changed"]
            assert alert["data"]["action"] == "hold" and alert["data"]["account_id"] == account
            approved = await teller.approved(case_id, "analyst")
            assert approved.status_code == 200, approved.text

            async def told() -> list[str]:
                kinds = [n["type"] for n in (await inbox(customer))["notifications"]
                         if n["data"].get("case_id") == case_id]
                return kinds if "payment_released" in kinds else []

            kinds = await eventually(told)
            assert sorted(kinds) == ["payment_held", "payment_released"], kinds
            everything = json.dumps((await inbox(customer))["notifications"])
            assert "dual-control" not in everything and "score" not in everything
            failed = httpx.get(f"{api_url}/v1/admin/notifications/failed", auth=auth_as("analyst"), timeout=30)
            assert failed.status_code == 200 and isinstance(failed.json()["failed"], list), failed.text
        finally:
            await analyst.close()

    scenario(api_url, body)


@pytest.mark.parametrize("path", ["/v1/notifications", "/v1/notifications/stream", "/v1/me/notification-preferences"])
def test_notifications_need_a_session(api_url: str, path: str) -> None:
    problem(httpx.get(f"{api_url}{path}", timeout=30), 401, "not_authenticated")


def test_the_sms_gateway_failing_is_retried_then_a_refused_message_is_failed_for_staff(api_url: str,
                                                                                       pg_dsn: str) -> None:
    """The gateway answers 503 three times: the SMS goes on the fourth try. It refuses one (400): that one is
    failed at once, listed for staff, and goes once an admin re-queues it."""
    admin = Bank(api_url, role="admin")

    async def control(fail: int, status: int = 503) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.put(f"{get_settings().sms}/v1/control", json={"fail": fail, "status": status})
        assert response.status_code == 200, response.text

    async def body(teller: Bank, customer: Bank) -> None:
        try:
            phone = f"+49152{uuid.uuid4().int % 10**8:08d}"
            assert (await customer.http.patch("/v1/me/profile", json={"phone": phone})).status_code == 200
            [code_sms] = await eventually(lambda: texts(phone))
            code = re.search(r"\b(\d{6})\b", code_sms["body"]).group(1)  # type: ignore[union-attr]
            assert (await customer.http.post("/v1/me/profile/verify", json={"code": code})).status_code == 200
            await choose(customer, channels={"transaction_posted": ["in_app", "sms"]})
            account = await funded_account(teller, customer, "")
            await control(3)
            assert (await teller.deposit(account, "3.00")).status_code == 200
            [sent] = await eventually(lambda: _with_amount(texts(phone), "3.00"), timeout=20)
            row = await _sms_row(pg_dsn, phone, "3.00")
            assert row["status"] == "sent" and row["attempts"] == 4, dict(row)
            await control(1, 400)
            assert (await teller.deposit(account, "4.00")).status_code == 200
            failed = await eventually(lambda: _failed_for(admin, row["user_id"]))
            assert failed[0]["channel"] == "sms" and "HTTP 400" in failed[0]["last_error"], failed
            assert await _with_amount(texts(phone), "4.00") == []
            retried = await admin.http.post(f"/v1/admin/notifications/{failed[0]['notification_id']}/retry")
            assert retried.status_code == 204, retried.text
            again = await eventually(lambda: _with_amount(texts(phone), "4.00"))
            assert len(again) == 1 and sent["id"] != again[0]["id"]
            problem(await admin.http.post(f"/v1/admin/notifications/{failed[0]['notification_id']}/retry"), 404,
                    "unknown_notification")   # no longer failed
        finally:
            await control(0)
            await admin.close()

    scenario(api_url, body)


async def _sms_row(pg_dsn: str, phone: str, amount: str) -> Any:
    connection = await asyncpg.connect(pg_dsn)
    try:
        return await connection.fetchrow("SELECT notification_id, user_id::text AS user_id, status, attempts FROM "
                                         "notification_outbox WHERE recipient = $1 AND body LIKE $2", phone,
                                         f"%{amount}%")
    finally:
        await connection.close()


async def _failed_for(admin: Bank, user_id: str) -> list[dict[str, Any]]:
    response = await admin.http.get("/v1/admin/notifications/failed", params={"channel": "sms"})
    assert response.status_code == 200, response.text
    return [f for f in response.json()["failed"] if f["user_id"] == user_id]


def test_the_notifier_killed_mid_burst_loses_nothing_and_sends_nothing_twice(api_url: str, stack: Stack) -> None:
    """kill -9 of the notifier while a burst of deposits is being notified, then a restart: every deposit is in
    the inbox once and in the mailbox as one message (one Message-ID)."""
    burst = 20

    async def body(teller: Bank, customer: Bank) -> None:
        await choose(customer, channels={"transaction_posted": ["in_app", "email"]})
        account = await funded_account(teller, customer, "")
        tag = uuid.uuid4().hex[:6]
        references = [f"kill-{tag}-{n:02d}" for n in range(burst)]

        async def deposits() -> None:
            for chunk in range(0, burst, 4):
                answers = await asyncio.gather(*(teller.deposit(account, "1.00", reference=r)
                                                 for r in references[chunk:chunk + 4]))
                assert all(a.status_code == 200 for a in answers)

        sending = asyncio.create_task(deposits())
        await eventually(lambda: _with(mailbox(customer.identity.email), f"kill-{tag}"), interval=0.01)
        code = await asyncio.to_thread(stack.kill, "notifier", signal.SIGKILL)
        assert code == -signal.SIGKILL
        await sending
        await asyncio.to_thread(stack.start, stack.notifier_spec())

        async def inbox_complete() -> list[str] | None:
            shown = [n["data"].get("reference") for n in (await inbox(customer))["notifications"]
                     if n["type"] == "transaction_posted"]
            return shown if set(references) <= set(shown) else None

        shown = await eventually(inbox_complete, timeout=30)
        emails = await eventually(lambda: _all_there(customer.identity.email, burst), timeout=45)
        await asyncio.sleep(1.0)   # a second copy of anything would arrive now
        emails = await mailbox(customer.identity.email)
        assert sorted(shown) == sorted(references)
        # SMTP is at least once: an email the server took just before the kill, not yet marked sent, goes again
        # on restart, under the same Message-ID (mail clients show it once). Never as a second message.
        by_message_id: dict[str, set[str]] = {}
        for m in emails:
            reference = re.search(r"kill-\w+-\d+", m["body"]).group(0)  # type: ignore[union-attr]
            by_message_id.setdefault(m["message_id"], set()).add(reference)
        assert all(len(found) == 1 for found in by_message_id.values()), by_message_id
        found = sorted(next(iter(found)) for found in by_message_id.values())
        assert found == sorted(references), found
        assert len(emails) - len(by_message_id) <= 1, "more than the one email in hand at the kill went twice"

    scenario(api_url, body)


def test_a_stream_is_counted_but_not_timed_as_a_request(api_url: str) -> None:
    """An event stream lasts minutes by design: it must not read as API latency on the dashboards and alerts."""
    route = 'route="/v1/notifications/stream"'

    def figures() -> tuple[float, float]:
        text = httpx.get(f"{api_url}/metrics", timeout=30).text
        served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("bank_http_requests_total{") and route in line and 'status="200"' in line)
        timed = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("bank_http_request_duration_seconds_count{") and route in line)
        return served, timed

    before = figures()
    response = httpx.get(f"{api_url}/v1/notifications/stream", params={"follow": "false", "since": 0},
                         auth=auth_as("teller"), timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    # The middleware counts a stream once its last chunk is sent, which may be just after the client has read it
    # (CI read the metrics first once).
    deadline = time.monotonic() + 10
    while (after := figures())[0] == before[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after == (before[0] + 1, before[1]), (before, after)


def test_a_new_payee_is_notified(api_url: str) -> None:
    async def body(_teller: Bank, customer: Bank) -> None:
        added = await customer.http.post("/v1/payees", json={"iban": "DE89 3704 0044 0532 0130 00",
                                                              "name": "Notified Payee"})
        assert added.status_code == 201, added.text

        async def told() -> list[dict[str, Any]]:
            return [n for n in (await inbox(customer))["notifications"] if n["type"] == "payee_added"]

        [notice] = await eventually(told)
        assert notice["data"]["payee_id"] == added.json()["payee_id"]
        assert "Notified Payee" not in json.dumps(notice)   # the payee's name is personal data: not in the log
        await eventually(lambda: _with(mailbox(customer.identity.email), "new payee was added"))

    scenario(api_url, body)


# ---------------------------------------------------------------- standing orders and loans


async def business_now(admin: Bank) -> datetime:
    response = await admin.http.get("/v1/admin/clock")
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["now"])


async def move_to(admin: Bank, moment: datetime) -> None:
    """Business time to `moment`, or left where it is if it is already later (it never runs back)."""
    if moment > await business_now(admin):
        response = await admin.http.put("/v1/admin/clock", json={"at": moment.isoformat()})
        assert response.status_code == 200, response.text


async def told(bank: Bank, kind: str, **data: Any) -> dict[str, Any]:
    """The customer's in-app notification of `kind` whose data has `data`, once the notifier has written it."""
    async def found() -> dict[str, Any] | None:
        return next((n for n in (await inbox(bank))["notifications"] if n["type"] == kind
                     and all(n["data"].get(key) == value for key, value in data.items())), None)

    return dict(await eventually(found, timeout=60))


def test_a_standing_order_failing_for_want_of_money_is_told_to_its_customer(api_url: str) -> None:
    async def body(_teller: Bank, customer: Bank) -> None:
        admin = Bank(api_url, role="admin")
        try:
            empty, target = await customer.open(), await customer.open()
            tomorrow = (await business_now(admin)).date() + timedelta(days=1)
            reference = f"gym-{uuid.uuid4().hex[:6]}"
            created = await customer.http.post("/v1/standing-orders", json={
                "from_account_id": empty, "to_account_id": target, "amount": "5.00", "currency": "EUR",
                "frequency": "once", "start_date": tomorrow.isoformat(), "time_zone": "UTC", "reference": reference})
            assert created.status_code == 201, created.text
            # past the same-day retry time (14:00 local): refused, retried at once, refused again: failed
            await move_to(admin, datetime.combine(tomorrow, datetime.min.time(), UTC) + timedelta(hours=15))
            notice = await told(customer, "standing_order_failed", reference=reference)
            assert notice["data"]["amount"] == "5.00" and notice["data"]["due_date"] == tomorrow.isoformat()
            assert notice["data"]["insufficient_funds"] is True and "not enough money" in notice["body"]
            [email] = await eventually(lambda: _with(mailbox(customer.identity.email), reference), timeout=20)
            assert "5.00 EUR" in email["body"]
        finally:
            await admin.close()

    scenario(api_url, body)


def test_a_loan_approved_paid_out_coming_due_and_missed_is_told_to_its_customer(api_url: str) -> None:
    async def body(teller: Bank, customer: Bank) -> None:
        admin, analyst = Bank(api_url, role="admin"), Bank(api_url, role="analyst")
        try:
            product = await admin.http.post("/v1/admin/loan-products", json={
                "name": f"Notified loan {uuid.uuid4().hex[:6]}", "currency": "EUR", "principal_min": "500.00",
                "principal_max": "50000.00", "term_min": 3, "term_max": 36, "annual_rate_percent": "12",
                "origination_fee_percent": "0", "late_fee": "15.00"})
            assert product.status_code == 201, product.text
            account = await customer.open()
            applied = await customer.http.post("/v1/loans", json={
                "product_id": product.json()["product_id"], "account_id": account, "amount": "600.00", "term": 3,
                "purpose": "a bicycle"})
            assert applied.status_code == 201, applied.text
            loan_id = applied.json()["loan_id"]
            await loan_until(analyst, loan_id, "in_review")
            decided = await analyst.http.post(f"/v1/admin/loans/{loan_id}/decision", json={"decision": "approve"})
            assert decided.status_code == 200, decided.text
            loan = await loan_until(customer, loan_id, "active")

            approved = await told(customer, "loan_decided", loan_id=loan_id)
            assert approved["data"]["outcome"] == "approved" and approved["data"]["amount"] == "600.00"
            assert "score" not in json.dumps(approved)
            paid_out = await told(customer, "loan_disbursed", loan_id=loan_id)
            assert paid_out["data"]["amount"] == "600.00" and paid_out["data"]["account_id"] == account

            # the money is spent; three days before the first due date the customer is reminded, once
            assert (await teller.withdraw(account, "600.00")).status_code == 200
            first = date.fromisoformat(loan["schedule"][0]["due_on"])
            await move_to(admin, datetime.combine(first - timedelta(days=3), datetime.min.time(), UTC)
                          + timedelta(hours=3))   # 03:00 UTC: the same day in the bank's zone (Europe/Berlin)
            due = await told(customer, "loan_instalment_due", loan_id=loan_id)
            assert (due["data"]["instalment"], due["data"]["due_on"], due["data"]["days"]) == (1, first.isoformat(), 3)
            # the day after: the collection is refused and the late fee charged
            await move_to(admin, datetime.combine(first + timedelta(days=1), datetime.min.time(), UTC)
                          + timedelta(hours=3))
            await told(customer, "loan_repayment_failed", account_id=account)
            overdue = await told(customer, "loan_overdue", loan_id=loan_id)
            assert overdue["data"]["amount"] == "15.00" and overdue["data"]["instalment"] == 1
            reminders = [n for n in (await inbox(customer))["notifications"] if n["type"] == "loan_instalment_due"
                         and n["data"]["loan_id"] == loan_id]
            assert len(reminders) == 1, reminders   # asked every tick since: still one
        finally:
            await admin.close()
            await analyst.close()

    scenario(api_url, body)


async def loan_until(client: Bank, loan_id: str, status: str) -> dict[str, Any]:
    """The loan once it has `status` (the servicer works in the background: poll, with a deadline)."""
    async def there() -> dict[str, Any] | None:
        response = await client.http.get(f"/v1/loans/{loan_id}")
        assert response.status_code == 200, response.text
        return dict(response.json()) if response.json()["status"] == status else None

    return dict(await eventually(there, timeout=60, interval=0.1))
