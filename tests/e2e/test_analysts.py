"""What analysts read from the log, on the real stack: `bank tail` (filters, offsets, times, JSON lines),
point-in-time balances (GET /v1/accounts/{id}/balance?as_of=) and `bank replay --until`, both checked against a
fold of the log with core.ledger.apply at moments and positions taken from the events themselves."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from core import events as e
from core.catalog import render_markdown
from core.ledger import AccountState, apply
from core.money import format_amount
from core.topics import LEDGER_EVENTS
from schemas.catalog import CATALOG_FILE, current_catalog
from schemas.codec import get_codec
from infra.kafka import partition_for, read_topic
from tests.support import Bank, auth_as

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Logged:
    partition: int
    offset: int
    timestamp: datetime       # the Kafka record's
    event: e.Event


@dataclass
class History:
    """Three accounts of one customer with deposits, withdrawals, a transfer that succeeds and one whose credit
    fails (the destination is frozen) and is reversed; and the log's events of those accounts."""

    customer: Bank
    stranger: Bank
    accounts: list[str]
    log: list[Logged]
    transfers: dict[str, str]     # "ok" / "reversed" -> transfer id

    def of(self, account: str) -> list[Logged]:
        return [item for item in self.log if item.event.account_id == account]


def fold(items: list[Logged], account: str, moment: datetime | None = None,
         position: dict[int, int] | None = None) -> AccountState | None:
    """The test's own fold: the account's events up to the moment (occurred at or before) or the position."""
    state = None
    for item in items:
        if item.event.account_id != account:
            continue
        if moment is not None and item.event.occurred_at > moment:
            break
        if position is not None and item.offset >= position.get(item.partition, 0):
            break
        state = apply(state, item.event)
    return state


async def _read_log(bootstrap: str, accounts: set[str]) -> list[Logged]:
    codec = get_codec()
    return [Logged(r.partition, r.offset, datetime.fromtimestamp(r.timestamp / 1000, UTC), event)
            for r in (await read_topic(bootstrap, LEDGER_EVENTS)).records
            if (event := codec.decode(r.value, r.headers)).account_id in accounts]


async def _settled_log(bootstrap: str, accounts: set[str], transfers: set[str]) -> list[Logged]:
    """The log once both transfers' sagas are over (TransferCompleted or TransferReversed)."""
    deadline = time.monotonic() + 90
    while True:
        log = await _read_log(bootstrap, accounts)
        ended = {i.event.transfer_id for i in log if isinstance(i.event, (e.TransferCompleted, e.TransferReversed))}
        if transfers <= ended or time.monotonic() > deadline:
            return log
        await asyncio.sleep(0.5)


async def _make_history(api_url: str, bootstrap: str) -> History:
    teller, customer = Bank(api_url), await Bank.customer(api_url, "Ann Analysed")
    stranger = await Bank.customer(api_url, "Bob Stranger")
    owner = customer.customer_id
    a = await teller.open(overdraft="100.00", customer=owner)
    b = await teller.open(customer=owner)
    c = await teller.open(customer=owner)
    spares = []   # the customer's too: listed after a, b and c, so the customer's accounts are all in the history
    while partition_for(c.encode(), 6) == partition_for(a.encode(), 6):
        # The reversed transfer must cross partitions to have a moment in flight: between accounts of one
        # partition the ledger settles (or reverses) a transfer in the step that debits it.
        spares.append(c)
        c = await teller.open(customer=owner)
    for step in (teller.deposit(a, "500.00"), teller.deposit(b, "50.00"), teller.deposit(c, "5.00")):
        assert (await step).status_code == 200
    ok = await teller.transfer(a, b, "120.00")
    assert ok.json()["status"] == "accepted", ok.text
    assert (await teller.withdraw(b, "30.00")).status_code == 200
    assert (await teller.post(f"/v1/accounts/{c}/freeze")).status_code == 200
    reversed_ = await teller.transfer(a, c, "7.00")
    assert (reversed_.status_code, reversed_.json()["reason"]) == (422, "account_frozen"), reversed_.text
    assert (await teller.post(f"/v1/accounts/{c}/unfreeze")).status_code == 200
    assert (await teller.withdraw(a, "20.00")).status_code == 200
    assert (await teller.transfer(b, a, "10.00")).json()["status"] == "accepted"
    assert (await teller.deposit(a, "3.33")).status_code == 200
    await teller.close()
    transfers = {"ok": ok.json()["command_id"], "reversed": reversed_.json()["command_id"]}
    log = await _settled_log(bootstrap, {a, b, c, *spares}, set(transfers.values()))
    return History(customer, stranger, [a, b, c, *spares], log, transfers)


@pytest.fixture(scope="module")
def history(api_url: str, kafka_bootstrap: str) -> History:
    return asyncio.run(_make_history(api_url, kafka_bootstrap))


def _moments(history: History) -> list[datetime]:
    """20 moments from the events' own times: exactly at events, just before them, and mid-transfer (the
    debit done, the credit or reversal not yet)."""
    times = sorted({item.event.occurred_at for item in history.log})
    chooser = random.Random(20)
    mid = [item.event.occurred_at for item in history.log if isinstance(item.event, e.TransferDebited)]
    moments = mid + chooser.sample(times, 12) + [t - timedelta(microseconds=1) for t in chooser.sample(times, 6)]
    return moments[:20]


def _expected(state: AccountState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    figures = {"balance": state.balance, "available_balance": state.available_balance, "held": state.held_debits}
    return {**{name: format_amount(minor, state.currency) for name, minor in figures.items()},
            "status": state.status, "version": state.sequence}


def _answer(response: httpx.Response) -> dict[str, Any] | None:
    if response.status_code == 404:
        assert response.json()["reason"] == "not_open_yet", response.text
        return None
    assert response.status_code == 200, response.text
    body = response.json()
    return {k: body[k] for k in ("balance", "available_balance", "held", "status", "version")}


# ---------------------------------------------------------------- point in time


def test_balance_as_of_equals_a_fold_of_the_log_at_20_moments_and_at_positions(history: History, api_url: str) -> None:
    moments = _moments(history)
    assert len(moments) == 20
    debit = next(i for i in history.log if isinstance(i.event, e.TransferDebited)
                 and i.event.transfer_id == history.transfers["reversed"])
    source_mid = fold(history.log, debit.event.account_id, debit.event.occurred_at)
    assert source_mid is not None and source_mid.transfers_out_in_flight == 1   # a moment mid-transfer indeed
    with httpx.Client(base_url=api_url, timeout=60, auth=history.customer.http.auth) as http:
        for moment in moments:
            for account in history.accounts:
                response = http.get(f"/v1/accounts/{account}/balance", params={"as_of": moment.isoformat()})
                assert _answer(response) == _expected(fold(history.log, account, moment)), (account, moment)
        for item in random.Random(6).sample(history.log, 6):   # positions: just after an event
            position = {item.partition: item.offset + 1}
            for account in history.accounts:
                response = http.get(f"/v1/accounts/{account}/balance",
                                    params={"as_of": f"{item.partition}:{item.offset + 1}"})
                assert _answer(response) == _expected(fold(history.log, account, position=position)), (account, item)
        now = http.get(f"/v1/accounts/{history.accounts[0]}/balance").json()
        assert now["balance"] == format_amount(fold(history.log, history.accounts[0]).balance, "EUR")


def test_balance_as_of_refuses_nonsense_and_the_future(history: History, api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=60, auth=history.customer.http.auth) as http:
        path = f"/v1/accounts/{history.accounts[0]}/balance"
        assert http.get(path, params={"as_of": "yesterday-ish"}).json()["reason"] == "invalid_as_of"
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert http.get(path, params={"as_of": future}).json()["reason"] == "as_of_in_future"
        assert http.get(path, params={"as_of": "0:999999999"}).json()["reason"] == "position_beyond_log"
        first = min(i.event.occurred_at for i in history.of(history.accounts[0]))
        before = http.get(path, params={"as_of": (first - timedelta(seconds=1)).isoformat()})
        assert (before.status_code, before.json()["reason"]) == (404, "not_open_yet")


def test_a_customer_cannot_read_another_customers_balance(history: History, api_url: str) -> None:
    account = history.accounts[0]
    with httpx.Client(base_url=api_url, timeout=60, auth=history.stranger.http.auth) as http:
        theirs = http.get(f"/v1/accounts/{account}/balance")
        ghost = http.get("/v1/accounts/ghost-account/balance")
    assert theirs.status_code == ghost.status_code == 404
    assert theirs.json()["reason"] == ghost.json()["reason"] == "unknown_account"
    with httpx.Client(base_url=api_url, timeout=60, auth=history.customer.http.auth) as http:
        assert http.get(f"/v1/accounts/{account}/balance").status_code == 200


# ---------------------------------------------------------------- bank replay


def _bank(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_bank_replay_until_a_moment_matches_the_fold(history: History) -> None:
    debit = next(i for i in history.log if isinstance(i.event, e.TransferDebited)
                 and i.event.transfer_id == history.transfers["reversed"])
    for moment in (debit.event.occurred_at, max(i.event.occurred_at for i in history.log)):
        report = json.loads(_bank("replay", "--until", moment.isoformat(), "--json").stdout)
        accounts = {row["account_id"]: row for row in report["accounts"]}
        for account in history.accounts:
            expected = fold(history.log, account, moment)
            row = accounts[account]
            assert (row["balance_minor"], row["available_balance_minor"], row["status"], row["version"]) == (
                expected.balance, expected.available_balance, expected.status, expected.sequence), account
        in_flight = {t["transfer_id"] for t in report["in_flight"]}
        assert (history.transfers["reversed"] in in_flight) == (moment == debit.event.occurred_at)
        assert report["totals"]["EUR"]["balanced"], report["totals"]


def test_bank_replay_until_offsets_and_its_readable_report(history: History) -> None:
    item = history.of(history.accounts[1])[2]
    position = {item.partition: item.offset + 1}
    report = json.loads(_bank("replay", "--until", f"{item.partition}:{item.offset + 1}", "--json").stdout)
    accounts = {row["account_id"]: row for row in report["accounts"]}
    expected = fold(history.log, history.accounts[1], position=position)
    assert accounts[history.accounts[1]]["balance_minor"] == expected.balance
    text = _bank("replay", "--until", datetime.now(UTC).isoformat()).stdout
    assert "totals per currency" in text and history.accounts[0] in text and "balance" in text


# ---------------------------------------------------------------- bank tail


def _tail(*args: str) -> list[dict[str, Any]]:
    result = _bank("tail", LEDGER_EVENTS, "--no-follow", "--json", *args)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_tail_filters_by_account_and_type_as_json_lines(history: History) -> None:
    account = history.accounts[0]
    lines = _tail("--from-offset", "0", "--account", account)
    assert [m["value"]["event_id"] for m in lines] == [i.event.event_id for i in history.of(account)]
    assert {m["key"] for m in lines} == {account} and {m["topic"] for m in lines} == {LEDGER_EVENTS}
    typed = _tail("--from-offset", "0", "--account", account, "--type", "FundsDeposited", "--type", "TransferDebited")
    assert {m["type"] for m in typed} == {"FundsDeposited", "TransferDebited"}
    assert len(typed) == sum(isinstance(i.event, (e.FundsDeposited, e.TransferDebited)) for i in history.of(account))
    assert typed[0]["value"]["amount"] == 50000 and typed[0]["value"]["currency"] == "EUR"


def test_tail_filters_by_customer(history: History) -> None:
    lines = _tail("--from-offset", "0", "--customer", history.customer.customer_id)
    assert {m["value"]["account_id"] for m in lines} == set(history.accounts)
    assert len(lines) == len(history.log)


def test_tail_from_an_offset_with_a_limit(history: History) -> None:
    item = history.of(history.accounts[0])[3]
    lines = _tail("--from-offset", f"{item.partition}:{item.offset}", "--account", history.accounts[0])
    assert [m["offset"] for m in lines] == [i.offset for i in history.of(history.accounts[0])[3:]]
    assert {m["partition"] for m in lines} == {item.partition}
    assert len(_tail("--from-offset", "0", "--limit", "2")) == 2


def test_tail_since_a_time(history: History) -> None:
    events = history.of(history.accounts[1])
    since = events[3].timestamp
    lines = _tail("--since", since.isoformat(), "--account", history.accounts[1])
    assert [m["offset"] for m in lines] == [i.offset for i in events if i.timestamp >= since]
    assert len(_tail("--since", "1h", "--account", history.accounts[1])) == len(events)


def test_tail_reads_as_readable_lines(history: History) -> None:
    result = _bank("tail", LEDGER_EVENTS, "--no-follow", "--from-offset", "0", "--account", history.accounts[0],
                   "--type", "FundsDeposited")
    first = result.stdout.splitlines()[0]
    assert f"FundsDeposited {history.accounts[0]} amount=500.00 EUR balance_after=500.00 EUR" in first
    assert first.startswith(history.of(history.accounts[0])[1].timestamp.date().isoformat())


async def _deposit(api_url: str, account: str, amount: str) -> httpx.Response:
    teller = Bank(api_url)
    try:
        return await teller.deposit(account, amount)
    finally:
        await teller.close()


def test_tail_follows_new_messages(history: History, api_url: str) -> None:
    """Started before a deposit, it prints the deposit as it arrives (then stops at --limit)."""
    account = history.accounts[2]
    since = datetime.now(UTC).isoformat()
    follower = subprocess.Popen([sys.executable, "-m", "cli.main", "tail", LEDGER_EVENTS, "--since", since,
                                 "--account", account, "--json", "--limit", "1"],
                                cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        time.sleep(3)
        assert follower.poll() is None, follower.communicate()   # nothing yet: still waiting
        assert asyncio.run(_deposit(api_url, account, "1.23")).status_code == 200
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    message = json.loads(out.splitlines()[0])
    assert (message["type"], message["value"]["amount"], message["key"]) == ("FundsDeposited", 123, account), err


# ---------------------------------------------------------------- the catalogue


def test_staff_read_the_catalogue_as_json_markdown_and_html(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=60, auth=auth_as("analyst")) as http:
        as_json = http.get("/v1/catalog")
        assert as_json.json() == json.loads(json.dumps(current_catalog().as_dict()))
        markdown = http.get("/v1/catalog", headers={"Accept": "text/markdown"})
        assert markdown.headers["content-type"].startswith("text/markdown")
        assert markdown.text == http.get("/v1/catalog.md").text == CATALOG_FILE.read_text() == render_markdown(
            current_catalog())
        page = http.get("/v1/catalog", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert page.headers["content-type"].startswith("text/html") and "<h3 id='bank.ledger.events'>" in page.text
