"""Business time that tests can move (GET/PUT /v1/admin/clock, BANK_CLOCK_CONTROL; core/clock.py, infra/clock.py).

The session stack runs with the setting on. Moves here stay a few minutes in all: every later test of the session
shares this business time, and tests that write commands with real timestamps straight to Kafka must stay within
the risk rules' windows of the API's commands.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from core.audit import AuditRecorded
from core.clock import ClockSet
from core.commands import Deposit
from core.topics import AUDIT, CLOCK, LEDGER_COMMANDS
from infra.kafka import read_topic
from tests.support import bearer, decoded, login, problem, seed_customers, staff

pytestmark = pytest.mark.usefixtures("stack")

DURATION = TypeAdapter(timedelta)
PROPAGATION_S = 30.0   # how long a move may take to reach another process through the topic



def _offset(state: dict[str, Any]) -> timedelta:
    return DURATION.validate_python(state["offset"])


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def admin_token(api_url: str) -> str:
    """One admin session; its token works on every API instance (they share keys and sessions)."""
    return str(login(api_url, staff("admin"))["access_token"])


@pytest.fixture(scope="module")
def clients(api_url: str, admin_token: str) -> Iterator[Callable[[str], httpx.Client]]:
    made: list[httpx.Client] = []

    def client(url: str) -> httpx.Client:
        made.append(httpx.Client(base_url=url, timeout=60, headers=bearer(admin_token)))
        return made[-1]

    yield client
    for each in made:
        each.close()


def _records(bootstrap: str, topic: str) -> list[Any]:
    return decoded(asyncio.run(read_topic(bootstrap, topic)).records)


def test_a_move_on_one_api_is_business_time_on_another_through_the_topic(
        api_url: str, extra_api: Callable[[dict[str, str]], str], clients: Callable[[str], httpx.Client],
        kafka_bootstrap: str) -> None:
    here, there = clients(api_url), clients(extra_api({}))   # a second instance with the session's settings
    before = here.get("/v1/admin/clock")
    assert before.status_code == 200, before.text

    moved = there.put("/v1/admin/clock", json={"advance": "PT2M"})
    assert moved.status_code == 200, moved.text
    state = moved.json()
    assert _offset(state) >= _offset(before.json()) + timedelta(minutes=2)
    assert _moment(state["now"]) - _moment(state["real_now"]) == _offset(state)
    assert state["set_by"] == staff("admin").user_id

    # The session API never saw that request: it can only have learnt the move from bank.clock.
    deadline, seen = time.monotonic() + PROPAGATION_S, here.get("/v1/admin/clock").json()
    while _offset(seen) != _offset(state) and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = here.get("/v1/admin/clock").json()
    assert _offset(seen) == _offset(state), seen
    assert _moment(seen["now"]) >= _moment(state["now"]) and seen["set_at"] == state["set_at"]

    moves = [r for r in _records(kafka_bootstrap, CLOCK) if isinstance(r, ClockSet)]
    assert moves and moves[-1].offset == _offset(state)


def test_a_move_to_a_moment_then_backwards_is_refused_and_both_are_audited(
        api_url: str, clients: Callable[[str], httpx.Client], kafka_bootstrap: str) -> None:
    admin = clients(api_url)
    now = _moment(admin.get("/v1/admin/clock").json()["now"])
    target = now + timedelta(minutes=1)
    moved = admin.put("/v1/admin/clock", json={"at": target.isoformat()})
    assert moved.status_code == 200, moved.text
    assert _moment(moved.json()["now"]) >= target

    backwards = problem(admin.put("/v1/admin/clock", json={"at": now.isoformat()}), 409, "clock_backwards")
    assert _moment(backwards["now"]) >= target
    problem(admin.put("/v1/admin/clock", json={"advance": "-PT1S"}), 409, "clock_backwards")
    assert _offset(admin.get("/v1/admin/clock").json()) == _offset(moved.json())   # nothing moved

    problem(admin.put("/v1/admin/clock", json={"advance": "P36700D"}), 422, "clock_too_far")
    problem(admin.put("/v1/admin/clock", json={"at": "0001-01-01T00:00:00+01:00"}), 422, "date_out_of_range")
    problem(admin.put("/v1/admin/clock", json={}), 422, "value_error")   # neither `at` nor `advance`
    problem(admin.put("/v1/admin/clock", json={"at": "2030-01-01T00:00:00"}), 422, "timezone_aware")

    audited = [r for r in _records(kafka_bootstrap, AUDIT) if isinstance(r, AuditRecorded)
               and r.action == "clock_moved" and r.actor_user_id == staff("admin").user_id]
    done = [r for r in audited if r.outcome == "success" and r.details["to"] == target.isoformat()]
    backwards = [r for r in audited if r.reason == "clock_backwards" and r.details["to"] == now.isoformat()]
    too_far = [r for r in audited if r.reason == "clock_too_far" and _moment(r.details["from"]) >= target]
    assert len(done) == 1 and len(backwards) == 1 and len(too_far) == 1, audited
    assert backwards[0].outcome == too_far[0].outcome == "denied"


def test_commands_are_issued_at_business_time(api_url: str, clients: Callable[[str], httpx.Client],
                                              kafka_bootstrap: str) -> None:
    """issued_at is business time (risk windows read it, and standing orders will): ahead of real time here."""
    admin = clients(api_url)
    state = admin.put("/v1/admin/clock", json={"advance": "PT1M"}).json()
    assert _offset(state) >= timedelta(minutes=1)
    asyncio.run(seed_customers("cust-clock"))
    account = admin.post("/v1/accounts", params={"wait": "true"}, json={"customer_id": "cust-clock",
                                                                          "currency": "EUR"},
                         headers={"Idempotency-Key": str(uuid.uuid4())})
    assert account.status_code == 201, account.text
    deposit = admin.post(f"/v1/accounts/{account.json()['account_id']}/deposits", params={"wait": "true"},
                         json={"amount": "5.00", "currency": "EUR"}, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert deposit.status_code == 200, deposit.text
    [command] = [r for r in _records(kafka_bootstrap, LEDGER_COMMANDS)
                 if isinstance(r, Deposit) and r.command_id == deposit.json()["command_id"]]
    assert command.issued_at >= _moment(state["now"])
    assert command.issued_at > datetime.now(UTC) + timedelta(seconds=30)   # real time plus the offset


def test_without_the_setting_the_endpoint_is_not_there(extra_api: Callable[[dict[str, str]], str],
                                                       clients: Callable[[str], httpx.Client]) -> None:
    """As in production (BANK_CLOCK_CONTROL off): 404 for admins, business time is real time."""
    off = clients(extra_api({"BANK_CLOCK_CONTROL": "false"}))
    problem(off.get("/v1/admin/clock"), 404, "clock_control_off")
    problem(off.put("/v1/admin/clock", json={"advance": "P31D"}), 404, "clock_control_off")
