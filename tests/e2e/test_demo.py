"""`bank demo` against the session's stack: a small demo bank, made through the API, checked through the API.

Business time is moved by a minute per round (the shared stack's other tests expect it near real time); the
default, ten days a round, is the same code path.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from cli.demo import DemoState, Persona
from cli.main import app
from core.settings import get_settings

DOMAIN = "demo-e2e.example.com"


def _run() -> Any:
    result = CliRunner().invoke(app, ["demo", "--customers", "4", "--months", "1", "--email-domain", DOMAIN,
                                      "--round-every", "PT1M"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result


def _login(api_url: str, persona: Persona) -> httpx.Client:
    """Signs in with the printed details; a staff code from the secret, never a time step the demo used."""
    form = {"username": persona.email, "password": persona.password}
    code, wait = persona.otp()
    while wait:
        time.sleep(wait)
        code, wait = persona.otp()
    if code is not None:
        form["otp"] = code
    token = httpx.post(f"{api_url}/v1/auth/token", data=form, timeout=30)
    assert token.status_code == 200, token.text
    return httpx.Client(base_url=api_url, timeout=30,
                        headers={"Authorization": f"Bearer {token.json()['access_token']}"})


def test_bank_demo_fills_the_stack_through_the_api_and_runs_again(api_url: str) -> None:
    first = _run()
    path = Path(get_settings().home) / "demo.json"
    state = DemoState.load(path)
    staff = {role: state.personas[role] for role in ("admin", "teller", "analyst")}
    customers = [p for p in state.customers if p.email.endswith(DOMAIN)]
    assert len(customers) == 4
    # the sign-in details are printed: every email, password and TOTP secret
    for persona in [*staff.values(), *customers]:
        assert persona.email in first.output and persona.password in first.output
    for persona in staff.values():
        assert persona.totp_secret and persona.totp_secret in first.output
    assert "/admin/" in first.output and "/app/" in first.output

    # staff sign in with their printed TOTP secret; the analyst sees the held transfers in the queue
    analyst = _login(api_url, staff["analyst"])
    me = analyst.get("/v1/auth/me").json()
    assert me["role"] == "analyst" and me["mfa_enabled"] is True
    assert state.held
    for case_id in state.held:
        case = analyst.get(f"/v1/admin/cases/{case_id}")
        assert case.status_code == 200, case.text
        assert case.json()["action"] == "hold" and "large-amount-relative" in case.json()["rule_ids"]

    # customers have accounts in a couple of currencies, history, and payees
    teller = _login(api_url, staff["teller"])
    currencies: set[str] = set()
    for persona in customers:
        accounts = teller.get(f"/v1/customers/{persona.customer_id}/accounts").json()["accounts"]
        currencies |= {a["currency"] for a in accounts}
    assert {"EUR", "USD"} <= currencies
    somebody = _login(api_url, customers[0])
    account = customers[0].accounts["EUR"]
    history = somebody.get(f"/v1/accounts/{account}/transactions", params={"limit": 100}).json()["items"]
    assert {"deposit", "transfer_out"} <= {t["type"] for t in history}
    assert len(somebody.get("/v1/payees").json()["payees"]) >= 1

    # history spans rounds of business time: the admin moved the clock between them
    admin = _login(api_url, staff["admin"])
    clock = admin.get("/v1/admin/clock").json()
    assert timedelta(seconds=_seconds(clock["offset"])) >= timedelta(minutes=2), clock
    state.save(path)   # the time steps these sign-ins used, for the next run's

    # a second run signs in as the same people and adds nothing
    second = _run()
    assert "nothing added" in second.output
    again = DemoState.load(path)
    assert again.held == state.held and again.personas.keys() == state.personas.keys()
    assert somebody.get(f"/v1/accounts/{account}/transactions", params={"limit": 100}).json()["items"] == history


def _seconds(duration: str) -> float:
    """An ISO 8601 duration as the clock reports it (PnDTnHnMn.nS)."""
    match = re.fullmatch(r"(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?", duration)
    assert match, duration
    sign, days, hours, minutes, seconds = match.groups()
    total = int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    return -total if sign else total
