"""The sandbox rail's own rules (simulators/rail.py), without a server: an instruction is accepted once (a resubmission
changes nothing), settles after the delay or is returned by a rule on its creditor IBAN, and everything it knows
survives a restart (its state file)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simulators.rail import Inbound, Instruction, Rail

pytestmark = pytest.mark.unit

CREDITOR = "DE89370400440532013000"


def _instruction(instruction_id: str, iban: str = CREDITOR) -> Instruction:
    return Instruction(instruction_id=instruction_id, amount="12.50", currency="EUR", creditor_iban=iban,
                       creditor_name="Erika Mustermann")


def test_an_instruction_is_accepted_once_and_settles_or_returns_by_rule(tmp_path: Path) -> None:
    rail = Rail(tmp_path, "http://bank", "secret", settle_delay_ms=0)
    rail.state["rules"]["DE62370400440532013001"] = "AC01"
    first, duplicate = rail.accept(_instruction("p1"))
    again, duplicate_again = rail.accept(_instruction("p1"))
    assert not duplicate and duplicate_again and again is first and first["submissions"] == 2
    rail.accept(_instruction("p2", "DE62 3704 0044 0532 0130 01"))
    time.sleep(0.01)
    assert rail.settle_due()
    statuses = {i: (r["status"], r["reason_code"]) for i, r in rail.state["instructions"].items()}
    assert statuses == {"p1": ("settled", None), "p2": ("returned", "AC01")}
    assert not rail.settle_due()   # decided once


def test_the_rail_keeps_its_state_across_a_restart(tmp_path: Path) -> None:
    rail = Rail(tmp_path, "http://bank", "secret", settle_delay_ms=60_000)
    rail.accept(_instruction("p1"))
    inbound = rail.originate(Inbound(creditor_iban=CREDITOR, amount="1.00", currency="EUR"))
    restarted = Rail(tmp_path, "http://bank", "secret", settle_delay_ms=0)
    assert restarted.state["instructions"]["p1"]["status"] == "accepted"
    assert restarted.state["settle_delay_ms"] == 60_000   # the configured delay, not the start argument
    assert restarted.state["inbound"][inbound["instruction_id"]]["status"] == "pending"
    _, duplicate = restarted.accept(_instruction("p1"))
    assert duplicate   # a resubmission after the restart is still a duplicate
