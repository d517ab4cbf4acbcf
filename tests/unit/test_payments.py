"""External payments, the pure parts (core/ledger.py, core/books.py, core/payments.py): the legs of every payment
event, the ledger's rules for payments and their outcomes (a payment ends once), the inbound return codes, a
payment's status, and the property that any sequence of payment commands and rail reports keeps the books balanced
with the payments in flight held in clearing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import commands as c
from core import events as e
from core.books import CLEARING, SETTLEMENT, Books, customer_account, legs_of, unbalanced
from core.ledger import AccountState, apply, decide, held_command
from core.payments import PaymentRecord, fold_payment, inbound_return_code, instruction_of
from core.risk.evaluate import Assessment
from core.risk.scoring import movement_of

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
CREDITOR = "DE89370400440532013000"


def _open(account: str = "A", balance: int = 0) -> AccountState:
    return AccountState(account_id=account, customer_id="cust", currency="EUR", overdraft_limit=0,
                        balance=balance, sequence=1)


def _payment(payment_id: str = "p1", account: str = "A", amount: int = 3000) -> c.Payment:
    return c.Payment(command_id=payment_id, account_id=account, issued_at=NOW, correlation_id=payment_id,
                     amount=amount, currency="EUR", creditor_iban=CREDITOR, creditor_name="Erika Mustermann",
                     remittance_information="invoice 42", counterparty_country="DE")


def _outcome(payment_id: str, outcome: str, account: str = "A", code: str | None = None) -> c.RecordPaymentOutcome:
    command_id = f"{c.payment_outcome_id(payment_id, outcome)}"
    return c.RecordPaymentOutcome(command_id=command_id, account_id=account, issued_at=NOW, correlation_id=command_id,
                                  payment_id=payment_id, outcome=outcome, reason_code=code)


def _fold(state: AccountState | None, events: list[e.Event]) -> AccountState | None:
    for event in events:
        state = apply(state, event)
    return state


def test_a_payment_debits_the_customer_to_clearing_and_settles_to_the_settlement_account() -> None:
    state = _open(balance=10_000)
    [debited] = decide(state, _payment(), NOW)
    assert isinstance(debited, e.PaymentDebited) and debited.balance_after == 7000 and debited.payment_id == "p1"
    assert [(leg.side, leg.ledger_account_id) for leg in legs_of(debited)] == [
        ("debit", customer_account("A")), ("credit", CLEARING)]
    state = apply(state, debited)
    assert state is not None and state.payments_in_flight == {"p1": 3000}
    [sent] = decide(state, _outcome("p1", "sent"), NOW)
    assert isinstance(sent, e.PaymentSent) and legs_of(sent) == () and apply(state, sent) == state
    [settled] = decide(state, _outcome("p1", "settled"), NOW)
    assert isinstance(settled, e.PaymentSettled) and settled.amount == 3000
    assert [(leg.side, leg.ledger_account_id) for leg in legs_of(settled)] == [("debit", CLEARING),
                                                                             ("credit", SETTLEMENT)]
    state = apply(state, settled)
    assert state is not None and state.payments_in_flight == {} and state.balance == 7000
    # ended once: a second report, or a late `sent`, is refused and moves nothing
    for again in (_outcome("p1", "settled"), _outcome("p1", "returned", code="AC01"), _outcome("p1", "sent")):
        [rejected] = decide(state, again, NOW)
        assert isinstance(rejected, e.CommandRejected) and rejected.reason == "payment_not_in_flight"


def test_a_returned_payment_gives_the_money_back_with_its_reason_code() -> None:
    state = _fold(_open(balance=5000), decide(_open(balance=5000), _payment(amount=5000), NOW))
    assert state is not None and state.balance == 0
    frozen = AccountState(**{**state.to_dict(), "status": "frozen"})
    [returned] = decide(frozen, _outcome("p1", "returned", code="AC01"), NOW)   # even on a frozen account
    assert isinstance(returned, e.PaymentReturned) and returned.reason_code == "AC01"
    assert returned.balance_after == 5000
    assert [(leg.side, leg.ledger_account_id) for leg in legs_of(returned)] == [("debit", CLEARING),
                                                                              ("credit", customer_account("A"))]
    [missing] = decide(state, _outcome("p1", "returned"), NOW)
    assert isinstance(missing, e.CommandRejected) and missing.reason == "missing_reason_code"


@pytest.mark.parametrize(("state", "reason"), [
    (_open(balance=100), "insufficient_funds"),
    (AccountState(**{**_open(balance=10_000).to_dict(), "status": "frozen"}), "account_frozen"),
    (AccountState(**{**_open(balance=10_000).to_dict(), "status": "closed"}), "account_closed"),
    (None, "unknown_account"),
])
def test_a_payment_is_refused_like_a_transfer(state: AccountState | None, reason: str) -> None:
    [rejected] = decide(state, _payment(), NOW)
    assert isinstance(rejected, e.CommandRejected) and rejected.reason == reason


def test_an_account_with_payments_in_flight_does_not_close() -> None:
    state = _fold(_open(balance=3000), decide(_open(balance=3000), _payment(), NOW))
    close = c.CloseAccount(command_id="close", account_id="A", issued_at=NOW, correlation_id="close")
    [rejected] = decide(state, close, NOW)
    assert isinstance(rejected, e.CommandRejected) and rejected.reason == "payments_in_flight"


def test_an_inbound_credit_posts_from_settlement_or_is_returned_with_the_right_code() -> None:
    def receive(state: AccountState | None, currency: str = "EUR") -> e.Event:
        command = c.ReceivePayment(command_id="in1", account_id="A", issued_at=NOW, correlation_id="in1",
                                   payment_id="rail-1", amount=1234, currency=currency)
        [event] = decide(state, command, NOW)
        return event

    credited = receive(_open())
    assert isinstance(credited, e.PaymentReceived) and credited.balance_after == 1234
    assert [(leg.side, leg.ledger_account_id) for leg in legs_of(credited)] == [("debit", SETTLEMENT),
                                                                              ("credit", customer_account("A"))]
    cases = [(None, "AC01"), (AccountState(**{**_open().to_dict(), "status": "closed"}), "AC04"),
             (AccountState(**{**_open().to_dict(), "status": "frozen"}), "AC06")]
    for state, code in cases:
        refused = receive(state)
        assert isinstance(refused, e.CommandRejected) and inbound_return_code(refused.reason) == code
    refused = receive(_open(), currency="USD")
    assert isinstance(refused, e.CommandRejected) and inbound_return_code(refused.reason) == "AM03"
    assert inbound_return_code("something_else") == "MS03"


def test_payments_are_scored_and_a_held_payment_posts_as_a_payment_on_approval() -> None:
    movement = movement_of(_payment(), "cust")
    assert movement is not None and movement.kind == "transfer_out"
    assert movement.counterparty_name == "Erika Mustermann" and movement.counterparty_account_id == CREDITOR
    hold = Assessment(action="hold", score=80, rule_set_version="v1", hits=())
    [held] = decide(_open(balance=10_000), _payment(), NOW, risk=hold)
    assert isinstance(held, e.FundsHeld) and held.to_account_id == CREDITOR
    state = apply(_open(balance=10_000), held)
    assert state is not None and state.available_balance == 7000   # reserved like a transfer
    rebuilt = held_command("A", "p1", state.holds["p1"])
    assert isinstance(rebuilt, c.Payment)
    assert (rebuilt.creditor_iban, rebuilt.creditor_name, rebuilt.remittance_information, rebuilt.amount) == (
        CREDITOR, "Erika Mustermann", "invoice 42", 3000)


def test_the_saga_writes_one_instruction_per_debit_and_the_status_only_moves_forward() -> None:
    [debited] = decide(_open(balance=10_000), _payment(), NOW)
    instruction = instruction_of(debited)
    assert instruction is not None and instruction.instruction_id == "p1" and instruction.account_id == "A"
    assert instruction_of(_open_event()) is None
    payments: dict[str, PaymentRecord] = {}
    fold_payment(payments, debited)
    state = apply(_open(balance=10_000), debited)
    [settled] = decide(state, _outcome("p1", "settled"), NOW)
    sent = e.PaymentSent(event_id="s", command_id="s", correlation_id="s", account_id="A", occurred_at=NOW,
                         sequence=2, payment_id="p1")
    for event in (settled, sent, debited):   # the gateway's `sent` after the settlement changes nothing
        fold_payment(payments, event)
    assert payments["p1"].status == "settled"


def _open_event() -> e.AccountOpened:
    return e.AccountOpened(event_id="o", command_id="o", correlation_id="o", account_id="A", occurred_at=NOW,
                           sequence=1, customer_id="cust", currency="EUR", overdraft_limit=0)


# ---------------------------------------------------------------- property

ACCOUNTS = ("A", "B")
PAYMENTS = tuple(f"p{n}" for n in range(6))


@st.composite
def steps(draw: st.DrawFn) -> c.Command:
    """Customers' payments and deposits, and the rail's reports in any order, repeated or not."""
    account = draw(st.sampled_from(ACCOUNTS))
    kind = draw(st.sampled_from(["pay", "sent", "settled", "returned", "receive", "deposit"]))
    payment_id = draw(st.sampled_from(PAYMENTS))
    amount = draw(st.integers(1, 500))
    if kind == "pay":
        return _payment(f"{payment_id}-{account}", account, amount)
    if kind == "receive":
        command_id = f"in-{draw(st.uuids())}"
        return c.ReceivePayment(command_id=command_id, account_id=account, issued_at=NOW, correlation_id=command_id,
                                payment_id=command_id, amount=amount, currency="EUR")
    if kind == "deposit":
        command_id = f"dep-{draw(st.uuids())}"
        return c.Deposit(command_id=command_id, account_id=account, issued_at=NOW, correlation_id=command_id,
                         amount=amount, currency="EUR", channel="cash")
    return _outcome(f"{payment_id}-{account}", kind, account, "AC01" if kind == "returned" else None)


@settings(max_examples=200, deadline=None)
@given(st.lists(steps(), max_size=50))
def test_any_sequence_of_payment_commands_keeps_the_books_balanced_with_clearing_holding_what_is_in_flight(
        sequence: list[c.Command]) -> None:
    accounts: dict[str, AccountState | None] = {a: _open(a) for a in ACCOUNTS}
    decided: set[str] = set()
    books = Books()
    ended: dict[str, int] = {}
    for command in sequence:
        if command.command_id in decided:   # the ledger decides a command id once (its processed-ids table)
            continue
        decided.add(command.command_id)
        for event in decide(accounts[command.account_id], command, NOW):
            accounts[event.account_id] = apply(accounts[event.account_id], event)
            assert unbalanced(books.apply(event)) == {}
            if isinstance(event, (e.PaymentSettled, e.PaymentReturned)):
                ended[event.payment_id] = ended.get(event.payment_id, 0) + 1
        trial = books.trial_balance("EUR")
        assert trial.total == 0 and trial.violations == ()   # at every step, not only at the end
    assert all(n == 1 for n in ended.values())    # a payment ends once
    in_flight = sum(sum(s.payments_in_flight.values()) for s in accounts.values() if s is not None)
    assert -books.balance(CLEARING, "EUR") == in_flight   # clearing holds exactly the payments in flight
    for account, state in accounts.items():
        assert state is not None and -books.balance(customer_account(account), "EUR") == state.balance


def test_the_invariant_audit_holds_payments_in_clearing_and_catches_one_ended_twice() -> None:
    from core.invariants import MONEY, SETTLED, LedgerAudit

    opened = _open_event()
    deposit = e.FundsDeposited(event_id="d", command_id="d", correlation_id="d", account_id="A", occurred_at=NOW,
                               sequence=2, amount=10_000, currency="EUR", balance_after=10_000, channel="cash")
    state = _fold(None, [opened, deposit])
    [debited] = decide(state, _payment(), NOW)
    in_flight = LedgerAudit([opened, deposit, debited])
    assert in_flight.checks[MONEY].held and in_flight.checks[SETTLED].held   # balanced with the payment in clearing
    assert not in_flight.quiet and in_flight.payments_in_flight == {"p1"}
    assert not [check for check in in_flight.settled_checks() if check.name == SETTLED][0].held
    state = apply(state, debited)
    [settled] = decide(state, _outcome("p1", "settled"), NOW)
    [returned] = decide(state, _outcome("p1", "returned", code="AC01"), NOW)   # as if decided twice
    done = LedgerAudit([opened, deposit, debited, settled])
    assert done.quiet and done.checks[SETTLED].held and done.checks[SETTLED].counts["payments_settled"] == 1
    twice = LedgerAudit([opened, deposit, debited, settled, returned])
    assert not twice.checks[SETTLED].held and "ended twice" in twice.checks[SETTLED].problems[0]
