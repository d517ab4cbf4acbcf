"""The ledger's rules as pure functions: every command, every rejection reason, idempotent folding."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core import commands as c
from core import events as e
from core.ledger import AccountState, CommandOutcome, LedgerPolicy, apply, decide, held_command, internal_error
from core.money import MAX_BALANCE_MINOR_UNITS, MoneyError
from core.risk.evaluate import Assessment
from core.settings import Settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def cmd(cls: type[c.Command], account: str = "A", cid: str | None = None, **kw: object) -> c.Command:
    cid = cid or f"{cls.__name__}-{account}-{len(kw)}-{sorted(kw.items())}"
    return cls(command_id=cid, account_id=account, issued_at=NOW, correlation_id=cid, **kw)


def run(state: AccountState | None, command: c.Command) -> tuple[AccountState | None, list[e.Event]]:
    produced = decide(state, command, NOW)
    for event in produced:
        state = apply(state, event)
    return state, produced


def opened(balance: int = 0, overdraft: int = 0, currency: str = "EUR") -> AccountState:
    state, _ = run(None, cmd(c.OpenAccount, customer_id="cust", currency=currency, overdraft_limit=overdraft))
    if balance:
        state, _ = run(state, cmd(c.Deposit, amount=balance, currency=currency))
    assert state is not None
    return state


def rejection(events: list[e.Event]) -> str:
    assert len(events) == 1 and isinstance(events[0], e.CommandRejected), events
    return events[0].reason


def test_open_deposit_withdraw() -> None:
    state = opened(balance=1000)
    state, events = run(state, cmd(c.Withdraw, amount=300, currency="EUR"))
    assert isinstance(events[0], e.FundsWithdrawn) and events[0].balance_after == 700
    assert state is not None and state.balance == 700 and state.sequence == 3


def test_overdraft_is_the_floor() -> None:
    state = opened(balance=100, overdraft=50)
    after, events = run(state, cmd(c.Withdraw, amount=150, currency="EUR"))
    assert after is not None and after.balance == -50
    _, events = run(after, cmd(c.Withdraw, amount=1, currency="EUR", cid="one-more"))
    assert rejection(events) == "insufficient_funds"


@pytest.mark.parametrize(("command", "reason"), [
    (cmd(c.Deposit, account="B", amount=1, currency="EUR"), "unknown_account"),
    (cmd(c.Deposit, amount=1, currency="USD"), "currency_mismatch"),
    (cmd(c.Deposit, amount=0, currency="EUR"), "invalid_amount"),
    (cmd(c.Deposit, amount=-5, currency="EUR"), "invalid_amount"),
    (cmd(c.Deposit, amount=5, currency="XXX"), "unknown_currency"),
    (cmd(c.Withdraw, amount=10_001, currency="EUR"), "insufficient_funds"),
    (cmd(c.Transfer, to_account_id="A", amount=1, currency="EUR"), "same_account"),
    (cmd(c.Transfer, to_account_id="B", amount=1, currency="GBP"), "currency_mismatch"),
    (cmd(c.OpenAccount, customer_id="x", currency="EUR"), "duplicate"),
    (cmd(c.UnfreezeAccount), "account_not_frozen"),
    (cmd(c.CloseAccount), "balance_not_zero"),
])
def test_rejections(command: c.Command, reason: str) -> None:
    state = opened(balance=10_000) if command.account_id == "A" else None
    after, events = run(state, command)
    assert rejection(events) == reason
    assert after == state  # a rejection changes nothing


def test_frozen_account_moves_no_money_and_closed_account_nothing() -> None:
    state, _ = run(opened(balance=500), cmd(c.FreezeAccount))
    assert state is not None and state.status == "frozen"
    for command in (cmd(c.Deposit, amount=1, currency="EUR"), cmd(c.Withdraw, amount=1, currency="EUR"),
                    cmd(c.Transfer, to_account_id="B", amount=1, currency="EUR")):
        assert rejection(run(state, command)[1]) == "account_frozen"
    assert rejection(run(state, cmd(c.FreezeAccount, cid="again"))[1]) == "account_frozen"
    state, _ = run(state, cmd(c.UnfreezeAccount))
    state, _ = run(state, cmd(c.Withdraw, amount=500, currency="EUR", cid="empty"))
    state, _ = run(state, cmd(c.CloseAccount))
    assert state is not None and state.status == "closed"
    assert rejection(run(state, cmd(c.Deposit, amount=1, currency="EUR", cid="late"))[1]) == "account_closed"


def test_transfer_saga_success_and_in_flight_blocks_close() -> None:
    source = opened(balance=100)
    transfer = cmd(c.Transfer, to_account_id="B", amount=100, currency="EUR")
    source, events = run(source, transfer)
    debit = events[0]
    assert isinstance(debit, e.TransferDebited) and source is not None and source.transfers_out_in_flight == 1
    assert rejection(run(source, cmd(c.CloseAccount))[1]) == "transfers_in_flight"
    dest, _ = run(None, cmd(c.OpenAccount, account="B", customer_id="d", currency="EUR"))
    credit = c.CreditTransfer(command_id=c.credit_step_id(debit.transfer_id), account_id="B", issued_at=NOW,
                              correlation_id=transfer.command_id, transfer_id=debit.transfer_id,
                              from_account_id="A", amount=100, currency="EUR")
    dest, credited = run(dest, credit)
    assert isinstance(credited[0], e.TransferCredited) and dest is not None and dest.balance == 100
    complete = c.CompleteTransfer(command_id=c.complete_step_id(debit.transfer_id), account_id="A", issued_at=NOW,
                                  correlation_id=transfer.command_id, transfer_id=debit.transfer_id,
                                  to_account_id="B")
    source, _ = run(source, complete)
    assert source is not None and source.transfers_out_in_flight == 0
    assert run(source, cmd(c.CloseAccount))[1][0].__class__ is e.AccountClosed

    outcome = CommandOutcome(transfer.command_id)
    outcome.add(debit)
    assert outcome.status == "pending" and outcome.in_flight
    outcome.add(credited[0])
    assert outcome.status == "accepted" and not outcome.in_flight


def test_failed_credit_is_compensated() -> None:
    closed_dest = opened(currency="EUR")
    closed_dest, _ = run(closed_dest, cmd(c.CloseAccount))
    credit = cmd(c.CreditTransfer, transfer_id="t", from_account_id="S", amount=10, currency="EUR")
    _, events = run(closed_dest, credit)
    assert isinstance(events[0], e.TransferCreditFailed) and events[0].reason == "account_closed"
    source = opened(balance=50)
    source, _ = run(source, cmd(c.Transfer, to_account_id="B", amount=10, currency="EUR"))
    source, reversed_ = run(source, cmd(c.ReverseTransfer, transfer_id="t", to_account_id="B", amount=10,
                                        currency="EUR", reason="account_closed"))
    assert isinstance(reversed_[0], e.TransferReversed)
    assert source is not None and source.balance == 50 and source.transfers_out_in_flight == 0


def test_apply_is_idempotent_and_ordered() -> None:
    state = opened()
    _, events = run(state, cmd(c.Deposit, amount=7, currency="EUR"))
    once = apply(state, events[0])
    assert apply(once, events[0]) == once  # the same event twice changes nothing
    gap = e.FundsDeposited(event_id="x", command_id="x", correlation_id="x", account_id="A", occurred_at=NOW,
                           sequence=state.sequence + 3, amount=1, currency="EUR", balance_after=1)
    with pytest.raises(ValueError):
        apply(state, gap)


def test_event_ids_are_deterministic() -> None:
    command = cmd(c.Deposit, amount=7, currency="EUR")
    state = opened()
    assert [x.event_id for x in decide(state, command, NOW)] == [x.event_id for x in decide(state, command, NOW)]


# ---------------------------------------------------------------- the balance range (MAX_BALANCE_MINOR_UNITS)

LIMIT = MAX_BALANCE_MINOR_UNITS


def test_a_deposit_past_the_balance_limit_is_rejected() -> None:
    state = opened(balance=LIMIT)
    after, events = run(state, cmd(c.Deposit, amount=1, currency="EUR", cid="one-too-many"))
    assert rejection(events) == "balance_limit" and after == state
    assert "outside the limit" in events[0].detail


def test_a_credit_past_the_balance_limit_fails_and_the_saga_reverses_it() -> None:
    dest = opened(balance=LIMIT - 5)
    credit = cmd(c.CreditTransfer, transfer_id="t", from_account_id="S", amount=10, currency="EUR")
    after, events = run(dest, credit)
    assert isinstance(events[0], e.TransferCreditFailed) and events[0].reason == "balance_limit"
    assert after is not None and after.balance == LIMIT - 5
    source = opened(balance=10)
    source, _ = run(source, cmd(c.Transfer, to_account_id="B", amount=10, currency="EUR"))
    source, reversed_ = run(source, cmd(c.ReverseTransfer, transfer_id="t", to_account_id="B", amount=10,
                                        currency="EUR", reason="balance_limit"))
    assert isinstance(reversed_[0], e.TransferReversed) and source is not None and source.balance == 10


def test_a_reversal_returns_money_even_past_the_limit() -> None:
    """The money was the account's before the transfer: it comes back whatever came in meanwhile."""
    source = opened(balance=100)
    source, _ = run(source, cmd(c.Transfer, to_account_id="B", amount=100, currency="EUR"))
    source, _ = run(source, cmd(c.Deposit, amount=LIMIT, currency="EUR"))
    source, events = run(source, cmd(c.ReverseTransfer, transfer_id="t", to_account_id="B", amount=100,
                                     currency="EUR", reason="account_closed"))
    assert isinstance(events[0], e.TransferReversed) and source is not None and source.balance == LIMIT + 100
    assert rejection(run(source, cmd(c.Deposit, amount=1, currency="EUR", cid="after"))[1]) == "balance_limit"


def test_an_overdraft_reaches_down_to_the_limit_and_no_further() -> None:
    state = replace(opened(), overdraft_limit=LIMIT)   # past the bank's maximum grant: the range still holds
    after, events = run(state, cmd(c.Withdraw, amount=LIMIT, currency="EUR"))
    assert isinstance(events[0], e.FundsWithdrawn) and after is not None and after.balance == -LIMIT
    too_much = cmd(c.OpenAccount, account="C", customer_id="cust", currency="EUR", overdraft_limit=LIMIT + 1)
    assert rejection(run(None, too_much)[1]) == "invalid_overdraft_limit"
    # A state from before the limit (a snapshot with a larger overdraft) still cannot go past it.
    old = replace(opened(), overdraft_limit=2 * LIMIT)
    after, events = run(old, cmd(c.Withdraw, amount=LIMIT, currency="EUR", cid="first"))
    assert rejection(run(after, cmd(c.Withdraw, amount=1, currency="EUR", cid="second"))[1]) == "balance_limit"
    assert rejection(run(after, cmd(c.Transfer, to_account_id="B", amount=1, currency="EUR"))[1]) == "balance_limit"


def test_the_held_total_is_bounded() -> None:
    hold = Assessment(score=70, action="hold", hits=(), rule_set_version="v-test")
    state: AccountState | None = opened()
    for number in range(2):
        events = decide(state, cmd(c.Deposit, amount=LIMIT // 2, currency="EUR", cid=f"held-{number}"), NOW, hold)
        assert isinstance(events[0], e.FundsHeld)
        state = apply(state, events[0])
    assert state is not None and state.held_total == LIMIT
    events = decide(state, cmd(c.Deposit, amount=1, currency="EUR", cid="held-more"), NOW, hold)
    assert rejection(events) == "balance_limit" and "held for review" in events[0].detail


def test_a_command_whose_decision_raises_can_be_rejected_with_the_error() -> None:
    state = opened()
    command = cmd(c.Deposit, amount=1, currency="EUR")
    [rejected] = [internal_error(state, command, NOW, TypeError("x" * 2000))]
    assert rejected.reason == "internal_error" and rejected.detail.startswith("TypeError: xxx")
    assert len(rejected.detail) <= 500 and apply(state, rejected) == state


def test_staff_set_an_overdraft_within_the_maximum_per_currency_and_not_below_its_use() -> None:
    state = opened(balance=1000)
    assert rejection(run(state, cmd(c.SetOverdraftLimit, overdraft_limit=500_001, currency="EUR"))[1]) \
        == "overdraft_limit_too_high"   # above the default 5000.00
    assert rejection(run(state, cmd(c.SetOverdraftLimit, overdraft_limit=100, currency="USD"))[1]) \
        == "currency_mismatch"
    granted, events = run(state, cmd(c.SetOverdraftLimit, overdraft_limit=500_000, currency="EUR", reason="r"))
    assert isinstance(events[0], e.OverdraftLimitSet) and (events[0].previous_limit, events[0].reason) == (0, "r")
    assert granted.overdraft_limit == 500_000 and granted.available_balance == 501_000
    spent, _ = run(granted, cmd(c.Withdraw, amount=3000, currency="EUR"))
    assert spent.balance == -2000
    assert rejection(run(spent, cmd(c.SetOverdraftLimit, overdraft_limit=1999, currency="EUR"))[1]) \
        == "overdraft_in_use"
    assert run(spent, cmd(c.SetOverdraftLimit, overdraft_limit=2000, currency="EUR"))[0].overdraft_limit == 2000
    assert rejection(run(None, cmd(c.OpenAccount, customer_id="x", currency="EUR", overdraft_limit=500_001))[1]) \
        == "overdraft_limit_too_high"


def test_the_overdraft_maximum_is_read_in_each_currencys_units_with_overrides() -> None:
    settings = Settings(max_overdraft_limit="2000", max_overdraft_limits={"JPY": "300000"})
    policy = LedgerPolicy.of(settings)
    assert (policy.max_overdraft["EUR"], policy.max_overdraft["JPY"], policy.max_overdraft["BHD"]) == (
        200_000, 300_000, 2_000_000)
    with pytest.raises(MoneyError, match="BANK_MAX_OVERDRAFT_LIMIT"):
        LedgerPolicy.of(Settings(max_overdraft_limits={"XXX": "1"}))
    refused = decide(opened(), cmd(c.SetOverdraftLimit, overdraft_limit=200_001, currency="EUR"), NOW, None, policy)
    assert rejection(refused) == "overdraft_limit_too_high"


def test_an_unverified_customers_account_takes_credits_up_to_its_receive_limit_then_none() -> None:
    state, _ = run(None, cmd(c.OpenAccount, customer_id="cust", currency="EUR", overdraft_limit=0,
                             receive_limit=10_000))
    assert state is not None and state.receive_limit == 10_000
    state, _ = run(state, cmd(c.Deposit, amount=6_000, currency="EUR"))
    state, _ = run(state, cmd(c.Withdraw, amount=6_000, currency="EUR"))   # spending frees nothing: it counts in all
    _, refused = run(state, cmd(c.Deposit, amount=4_001, currency="EUR"))
    assert rejection(refused) == "kyc_limit"
    _, [failed] = run(state, cmd(c.CreditTransfer, transfer_id="t", from_account_id="B", amount=4_001,
                                 currency="EUR"))
    assert isinstance(failed, e.TransferCreditFailed) and failed.reason == "kyc_limit"
    state, [lifted] = run(state, cmd(c.SetReceiveLimit, receive_limit=None, currency="EUR", reason="kyc verified"))
    assert isinstance(lifted, e.ReceiveLimitSet) and state is not None and state.receive_limit is None
    state, [posted] = run(state, cmd(c.Deposit, amount=50_000, currency="EUR"))
    assert isinstance(posted, e.FundsDeposited) and state is not None and state.received == 56_000
    _, refused = run(state, cmd(c.SetReceiveLimit, receive_limit=-1, currency="EUR"))
    assert rejection(refused) == "invalid_receive_limit"


def test_a_held_exchanged_transfer_keeps_its_quote_and_posts_it_once_approved() -> None:
    exchange = {"quote_id": "q", "rate": "11.47", "sell_amount": 10_000, "sell_currency": "EUR",
                "buy_amount": 114_700, "buy_currency": "NOK", "position_amount": 114_701, "rounding_amount": 1,
                "rounded_currency": "NOK"}
    state = opened(balance=50_000)
    transfer = cmd(c.Transfer, to_account_id="B", amount=10_000, currency="EUR", exchange=exchange)
    hold = Assessment(score=70, action="hold", hits=(), rule_set_version="v-test")
    [held] = decide(state, transfer, NOW, hold)
    assert isinstance(held, e.FundsHeld) and held.exchange == exchange
    state = apply(state, held)
    assert state is not None
    rebuilt = held_command("A", transfer.command_id, state.holds[transfer.command_id])
    assert isinstance(rebuilt, c.Transfer) and rebuilt.exchange == exchange
    _, refused = run(opened(balance=50_000), cmd(c.Transfer, to_account_id="B", amount=9_000, currency="EUR",
                                                 exchange=exchange))
    assert rejection(refused) == "invalid_exchange"     # the amount is the quote's sell side
