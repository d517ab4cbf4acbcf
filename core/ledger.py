"""The ledger's rules: decide(state, command) -> events, and apply(state, event) -> state. Pure functions.

The stream agent, the API's view of the ledger and the tests' invariant checks all fold events with
`apply`, so there is one definition of what an event does to an account.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from core import commands as c
from core import events as e
from core.money import CURRENCY_DIGITS, MAX_BALANCE_MINOR_UNITS, MAX_MINOR_UNITS, amounts_per_currency, format_amount
from core.risk.evaluate import Assessment
from core.settings import Settings

AccountStatus = Literal["open", "frozen", "closed"]


@dataclass(frozen=True, slots=True)
class AccountState:
    account_id: str
    customer_id: str
    currency: str
    overdraft_limit: int
    balance: int = 0
    status: AccountStatus = "open"
    sequence: int = 0
    transfers_out_in_flight: int = 0
    # Movements held for review, by case id (the held command's id): what is needed to post them on approval.
    # Plain JSON-able values, since the state is stored as is in a Faust table.
    holds: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Outbound payments debited and not yet settled or returned: payment id -> amount (minor units). The money
    # sits in `clearing`; each one ends once, settled or returned.
    payments_in_flight: dict[str, int] = field(default_factory=dict)
    # Loans paid out into this account and not yet repaid: loan id -> outstanding principal (minor units). The
    # bank's `loans` receivable lives on the customer's partition: the ledger refuses a repayment of more principal
    # than is outstanding, and a second disbursement of one loan.
    loans: dict[str, int] = field(default_factory=dict)
    # Those loans' interest accrual: loan id -> {"through": the last business date accrued (ISO), "receivable":
    # interest accrued and not yet paid (minor units)}. Dates are taken in order, each once; `interest-receivable`
    # lives here beside `loans`.
    loan_accruals: dict[str, dict[str, Any]] = field(default_factory=dict)
    # KYC tiers: the most the account may be credited in all while its customer is unverified (None: no limit),
    # and what it has been credited so far (deposits, transfers and payments in).
    receive_limit: int | None = None
    received: int = 0

    @property
    def held_debits(self) -> int:
        """The amount reserved by held withdrawals and transfers out."""
        return sum(h["amount"] for h in self.holds.values() if h["command_type"] in _DEBITS)

    @property
    def held_total(self) -> int:
        """Everything held for review, deposits included: bounded like the balance (MAX_BALANCE_MINOR_UNITS)."""
        return sum(h["amount"] for h in self.holds.values())

    @property
    def available_balance(self) -> int:
        """What can still be spent: the balance plus the overdraft the account may use, minus reservations."""
        return self.balance + self.overdraft_limit - self.held_debits

    def to_dict(self) -> dict[str, Any]:
        data = {f: getattr(self, f) for f in self.__slots__}
        data["holds"] = {k: dict(v) for k, v in self.holds.items()}
        data["payments_in_flight"] = dict(self.payments_in_flight)
        data["loans"] = dict(self.loans)
        data["loan_accruals"] = {k: dict(v) for k, v in self.loan_accruals.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountState:
        return cls(**data)


_DEBITS = ("Withdraw", "Transfer", "Payment")
# The shape of a national account number (BBAN account codes are alphanumeric in some countries). Its uniqueness
# is the API's allocation's (core/account_numbers.py): one partition of the ledger cannot see the others' numbers.
_ACCOUNT_NUMBER = re.compile(r"[0-9A-Z]{4,30}")
INTERNAL_ERROR_DETAIL_MAX = 500   # characters of the error an internal_error rejection records


@dataclass(frozen=True, slots=True)
class LedgerPolicy:
    """The bank's limits the ledger enforces, in minor units of each accepted currency."""

    max_overdraft: Mapping[str, int]

    @classmethod
    def of(cls, settings: Settings) -> LedgerPolicy:
        return cls(max_overdraft=amounts_per_currency(settings.max_overdraft_limit, settings.max_overdraft_limits,
                                                      "BANK_MAX_OVERDRAFT_LIMIT(S)"))


# The defaults of core/settings.py, for callers that decide without settings (tests, invariant checks).
DEFAULT_POLICY = LedgerPolicy(max_overdraft=amounts_per_currency(
    Settings.model_fields["max_overdraft_limit"].default, {}, "BANK_MAX_OVERDRAFT_LIMIT"))

# The case hit of a cash movement held for a second staff member (maker-checker), beside the risk engine's.
DUAL_CONTROL_RULE = "dual-control-cash"


class Rejection(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- decide


def decide(state: AccountState | None, cmd: c.Command, now: datetime,
           risk: Assessment | None = None, policy: LedgerPolicy = DEFAULT_POLICY) -> list[e.Event]:
    """The events a command produces against the account's current state (a rejection is an event too).

    `risk` is the risk engine's assessment of a money movement. block: the command is recorded as flagged
    and rejected (`blocked_by_risk`). hold: a command that would post is held instead (`FundsHeld`) until a
    reviewer decides. alert: recorded as flagged, then posted as usual. A command that fails the ledger's
    own checks is rejected for that reason whatever the assessment, unless it was blocked. A staff cash
    movement marked `second_approval` is held like a risk hold, until another staff member approves it.
    """
    try:
        return _decide(state, cmd, now, risk, policy)
    except Rejection as rejection:
        return [_rejected(state, cmd, now, rejection)]


def _decide(state: AccountState | None, cmd: c.Command, now: datetime, risk: Assessment | None,
            policy: LedgerPolicy) -> list[e.Event]:
    _validate_payload(cmd)
    if risk is not None and risk.action == "block" and state is not None:
        flagged = _risk_case(e.RiskFlagged, state, cmd, now, risk, state.sequence if state else 0)
        return [flagged, _rejected(state, cmd, now, Rejection(
            "blocked_by_risk", f"blocked by rule(s) {', '.join(h['rule_id'] for h in flagged.hits)} "
                               f"of rule set {risk.rule_set_version}"))]
    _check_overdraft_maximum(cmd, policy)
    decider = _DECIDERS.get(type(cmd))
    if decider is None:
        raise Rejection("invalid_command", f"{type(cmd).__name__} is not a command the ledger decides")
    events = decider(state, cmd, now)
    if isinstance(events[0], e.CommandRejected) or state is None:
        return events
    if getattr(cmd, "second_approval", False) or (risk is not None and risk.action == "hold"):
        held = _risk_case(e.FundsHeld, state, cmd, now, risk, state.sequence + 1)
        _require_hold_room(state, held.amount)
        return [held]
    if risk is None or risk.action == "allow":
        return events
    return [_risk_case(e.RiskFlagged, state, cmd, now, risk, state.sequence), *events]


def internal_error(state: AccountState | None, cmd: c.Command, now: datetime, error: Exception) -> e.CommandRejected:
    """The rejection of a command whose decision raised (a bug, or values no check foresaw): recorded with the
    error, so the command has an outcome and the agent goes on instead of retrying it until it dies."""
    detail = f"{type(error).__name__}: {error}"
    return _rejected(state, cmd, now, Rejection("internal_error", detail[:INTERNAL_ERROR_DETAIL_MAX]))


def _risk_case(kind: type[e.RiskCase], state: AccountState | None, cmd: c.Command, now: datetime,
               risk: Assessment | None, seq: int) -> e.RiskCase:
    if not isinstance(cmd, c.MONEY_MOVEMENTS):
        raise Rejection("invalid_command", f"{type(cmd).__name__} is not a money movement the risk engine scores")
    hits = [dict(h) for h in risk.hit_dicts()] if risk is not None else []
    if kind is e.FundsHeld and getattr(cmd, "second_approval", False):
        hits.append(_dual_control_hit(cmd))
    case = kind(
        **_base(state, cmd, now, kind, seq),
        customer_id=state.customer_id if state else "", command_type=type(cmd).__name__,
        amount=cmd.amount, currency=cmd.currency, channel=getattr(cmd, "channel", "transfer"),
        # A payment's destination is another bank's account: its IBAN (held_command rebuilds the payment from it).
        to_account_id=cmd.creditor_iban if isinstance(cmd, c.Payment) else getattr(cmd, "to_account_id", None),
        reference=cmd.reference,
        counterparty_name=cmd.counterparty_name, counterparty_country=cmd.counterparty_country,
        issued_at=cmd.issued_at, action="hold" if kind is e.FundsHeld else risk.action if risk else "alert",
        score=risk.score if risk else 0, rule_set_version=risk.rule_set_version if risk else "dual-control",
        hits=hits, submitted_by=cmd.submitted_by,
    )
    if isinstance(case, e.FundsHeld) and isinstance(cmd, c.Transfer) and cmd.exchange:
        case = replace(case, exchange=cmd.exchange)   # held, it keeps its quote: approved, it posts as asked
    return case


def _dual_control_hit(cmd: c.Deposit | c.Withdraw | c.Transfer | c.Payment) -> dict[str, Any]:
    what = "deposit" if isinstance(cmd, c.Deposit) else "withdrawal"
    return {"rule_id": DUAL_CONTROL_RULE, "kind": "dual_control", "action": "hold", "severity": "medium",
            "score": 0, "reason": f"cash {what} of {format_amount(cmd.amount, cmd.currency)} {cmd.currency} above the "
                      f"dual-control threshold: another staff member must approve it"}


def _check_overdraft_maximum(cmd: c.Command, policy: LedgerPolicy) -> None:
    """Staff grant overdrafts up to the bank's maximum per currency (BANK_MAX_OVERDRAFT_LIMIT)."""
    if not isinstance(cmd, (c.OpenAccount, c.SetOverdraftLimit)) or cmd.overdraft_limit == 0:
        return
    maximum = policy.max_overdraft.get(cmd.currency, 0)
    if cmd.overdraft_limit > maximum:
        def money(minor: int) -> str:
            return f"{format_amount(minor, cmd.currency)} {cmd.currency}"

        raise Rejection("overdraft_limit_too_high", f"an overdraft of {money(cmd.overdraft_limit)} is above the "
                        f"bank's maximum of {money(maximum)}")


def _validate_payload(cmd: c.Command) -> None:
    """Guards against producers other than the API writing nonsense onto the command topic."""
    amount = getattr(cmd, "amount", None)   # an accrual's is signed (_check_accrual)
    if amount is not None and not isinstance(cmd, c.AccrueLoanInterest) and not 0 < amount <= MAX_MINOR_UNITS:
        raise Rejection("invalid_amount", f"amount of {amount} minor units is outside 1..{MAX_MINOR_UNITS}")
    currency = getattr(cmd, "currency", None)
    if currency is not None and currency not in CURRENCY_DIGITS:
        raise Rejection("unknown_currency", f"{currency!r} is not a supported currency")
    if isinstance(cmd, (c.OpenAccount, c.SetOverdraftLimit)) and \
            not 0 <= cmd.overdraft_limit <= MAX_BALANCE_MINOR_UNITS:
        raise Rejection("invalid_overdraft_limit", "overdraft limit must be between 0 and the balance limit "
                                                   f"({MAX_BALANCE_MINOR_UNITS} minor units)")
    receive_limit = getattr(cmd, "receive_limit", None)
    if receive_limit is not None and not 0 <= receive_limit <= MAX_BALANCE_MINOR_UNITS:
        raise Rejection("invalid_receive_limit", "a receive limit is between 0 and the balance limit "
                                                 f"({MAX_BALANCE_MINOR_UNITS} minor units), or none")
    if isinstance(cmd, c.OpenAccount) and cmd.account_number is not None and \
            not _ACCOUNT_NUMBER.fullmatch(cmd.account_number):
        raise Rejection("invalid_account_number", "an account number is 4 to 30 ASCII digits or capital letters")
    if isinstance(cmd, c.RecordPaymentOutcome) and cmd.outcome not in c.PAYMENT_OUTCOMES:
        raise Rejection("invalid_outcome", f"outcome {cmd.outcome!r} is not one of {', '.join(c.PAYMENT_OUTCOMES)}")
    if isinstance(cmd, c.RecordPaymentOutcome) and cmd.outcome == "returned" and not cmd.reason_code:
        raise Rejection("missing_reason_code", "a returned payment needs its ISO 20022 reason code")
    if isinstance(cmd, c.Payment) and not (cmd.creditor_iban and cmd.creditor_name.strip()):
        raise Rejection("invalid_creditor", "a payment needs the creditor's IBAN and name")
    if isinstance(cmd, c.Transfer) and cmd.exchange is not None:
        _check_exchange(cmd)
    if isinstance(cmd, c.Transfer) and cmd.to_account_id == cmd.account_id:
        raise Rejection("same_account", "a transfer needs two different accounts")
    channel = getattr(cmd, "channel", None)
    if channel is not None and channel not in c.CHANNELS:
        raise Rejection("invalid_channel", f"channel {channel!r} is not one of {', '.join(c.CHANNELS)}")
    if isinstance(cmd, c.DisburseLoan) and not (0 < cmd.principal <= MAX_MINOR_UNITS and 0 <= cmd.fee < cmd.principal):
        raise Rejection("invalid_amount", "a disbursement pays out a positive principal, less a smaller fee")
    if isinstance(cmd, c.RepayLoan) and (min(cmd.principal, cmd.interest, cmd.fees) < 0
                                         or cmd.principal + cmd.interest + cmd.fees != cmd.amount):
        raise Rejection("invalid_amount", "a repayment's principal, interest and fees are not negative and add up "
                                          "to its amount")
    if isinstance(cmd, c.AccrueLoanInterest):
        _check_accrual(cmd)
    if isinstance(cmd, c.WriteOffLoan) and not cmd.reason.strip():
        raise Rejection("missing_reason", "a write-off needs a reason")
    if isinstance(cmd, c.ReviewCase) and cmd.decision not in c.REVIEW_DECISIONS:
        raise Rejection("invalid_decision", f"decision {cmd.decision!r} is not approve or reject")


_EXCHANGE_KEYS = frozenset({"quote_id", "rate", "sell_amount", "sell_currency", "buy_amount", "buy_currency",
                            "position_amount", "rounding_amount", "rounded_currency"})


def _check_accrual(cmd: c.AccrueLoanInterest) -> None:
    try:
        first, last = date.fromisoformat(cmd.from_date), date.fromisoformat(cmd.through_date)
    except ValueError:
        raise Rejection("invalid_date", "an accrual's dates are ISO business dates") from None
    if first > last:
        raise Rejection("invalid_date", f"an accrual from {cmd.from_date} through {cmd.through_date} has no date")
    if not 0 < abs(cmd.amount) <= MAX_MINOR_UNITS:
        raise Rejection("invalid_amount", f"an accrual's amount is not zero and within {MAX_MINOR_UNITS} minor units")


def _check_exchange(cmd: c.Transfer) -> None:
    """An exchanged transfer's quote must be whole and agree with the transfer: it posts the books' FX legs."""
    exchange = cmd.exchange or {}
    if set(exchange) != _EXCHANGE_KEYS:
        raise Rejection("invalid_exchange", "an exchange names its quote, rate, both sides, position and rounding")
    if (exchange["sell_amount"], exchange["sell_currency"]) != (cmd.amount, cmd.currency):
        raise Rejection("invalid_exchange", "the transfer's amount is the quote's sell side")
    if exchange["buy_currency"] not in CURRENCY_DIGITS or exchange["buy_currency"] == cmd.currency:
        raise Rejection("invalid_exchange", "an exchange buys another supported currency")
    if not 0 < exchange["buy_amount"] <= MAX_MINOR_UNITS or exchange["rounding_amount"] not in (0, 1) or \
            exchange["rounded_currency"] not in (cmd.currency, exchange["buy_currency"]) or \
            exchange["position_amount"] < 0:
        raise Rejection("invalid_exchange", "the quote's amounts are out of range")


def _base(state: AccountState | None, cmd: c.Command, now: datetime, kind: type[e.Event], seq: int) -> dict[str, Any]:
    return dict(
        event_id=e.event_id_for(cmd.command_id, kind),
        command_id=cmd.command_id,
        correlation_id=cmd.correlation_id,
        account_id=cmd.account_id,
        occurred_at=now,
        sequence=seq,
    )


def _rejected(state: AccountState | None, cmd: c.Command, now: datetime, r: Rejection) -> e.CommandRejected:
    seq = state.sequence if state else 0
    return e.CommandRejected(
        **_base(state, cmd, now, e.CommandRejected, seq),
        command_type=type(cmd).__name__, reason=r.reason, detail=r.detail,
    )


def _require_account(state: AccountState | None, cmd: c.Command) -> AccountState:
    if state is None:
        raise Rejection("unknown_account", f"account {cmd.account_id} does not exist")
    if state.status == "closed":
        raise Rejection("account_closed", f"account {cmd.account_id} is closed")
    return state


def _require_movable(state: AccountState | None, cmd: c.Command, currency: str) -> AccountState:
    acct = _require_account(state, cmd)
    if acct.status == "frozen":
        raise Rejection("account_frozen", f"account {cmd.account_id} is frozen")
    if currency != acct.currency:
        raise Rejection("currency_mismatch", f"account {cmd.account_id} holds {acct.currency}, not {currency}")
    return acct


def _require_funds(acct: AccountState, amount: int) -> None:
    if acct.balance - acct.held_debits - amount < -acct.overdraft_limit:
        def money(minor: int) -> str:
            return format_amount(minor, acct.currency)

        held = f" (of which {money(acct.held_debits)} held for review)" if acct.held_debits else ""
        raise Rejection(
            "insufficient_funds",
            f"balance {money(acct.balance)}{held} minus {money(amount)} {acct.currency} would pass the "
            f"overdraft limit of {money(acct.overdraft_limit)}",
        )


def _require_in_range(acct: AccountState, balance_after: int) -> None:
    """Keeps the balance within the documented range, so no sum of balances overflows an Avro long."""
    if not -MAX_BALANCE_MINOR_UNITS <= balance_after <= MAX_BALANCE_MINOR_UNITS:
        limit = format_amount(MAX_BALANCE_MINOR_UNITS, acct.currency)
        raise Rejection("balance_limit", f"the balance would be {format_amount(balance_after, acct.currency)} "
                                         f"{acct.currency}, outside the limit of ±{limit}")


def _require_hold_room(acct: AccountState, amount: int) -> None:
    if acct.held_total + amount > MAX_BALANCE_MINOR_UNITS:
        limit = format_amount(MAX_BALANCE_MINOR_UNITS, acct.currency)
        raise Rejection("balance_limit", f"holding {format_amount(amount, acct.currency)} {acct.currency} more "
                                         f"would take what the account has held for review past {limit}")


def _open(state: AccountState | None, cmd: c.OpenAccount, now: datetime) -> list[e.Event]:
    if state is not None:
        raise Rejection("duplicate", f"account {cmd.account_id} already exists")
    return [e.AccountOpened(**_base(state, cmd, now, e.AccountOpened, 1), customer_id=cmd.customer_id,
                            currency=cmd.currency, overdraft_limit=cmd.overdraft_limit,
                            account_number=cmd.account_number, receive_limit=cmd.receive_limit)]


def _require_receivable(acct: AccountState, amount: int) -> None:
    """KYC tiers: an unverified customer's account takes at most its receive limit in all (core/kyc.py)."""
    if acct.receive_limit is not None and acct.received + amount > acct.receive_limit:
        left = format_amount(max(0, acct.receive_limit - acct.received), acct.currency)
        raise Rejection("kyc_limit", f"an account of a customer whose identity is not verified takes at most "
                        f"{format_amount(acct.receive_limit, acct.currency)} {acct.currency} in all; {left} is left")


def _deposit(state: AccountState | None, cmd: c.Deposit, now: datetime) -> list[e.Event]:
    acct = _require_movable(state, cmd, cmd.currency)
    _require_receivable(acct, cmd.amount)
    _require_in_range(acct, acct.balance + cmd.amount)
    return [e.FundsDeposited(**_base(state, cmd, now, e.FundsDeposited, acct.sequence + 1), amount=cmd.amount,
                             currency=cmd.currency, balance_after=acct.balance + cmd.amount,
                             reference=cmd.reference, channel=cmd.channel)]


def _withdraw(state: AccountState | None, cmd: c.Withdraw, now: datetime) -> list[e.Event]:
    acct = _require_movable(state, cmd, cmd.currency)
    _require_funds(acct, cmd.amount)
    _require_in_range(acct, acct.balance - cmd.amount)
    return [e.FundsWithdrawn(**_base(state, cmd, now, e.FundsWithdrawn, acct.sequence + 1), amount=cmd.amount,
                             currency=cmd.currency, balance_after=acct.balance - cmd.amount,
                             reference=cmd.reference, channel=cmd.channel)]


def _transfer(state: AccountState | None, cmd: c.Transfer, now: datetime) -> list[e.Event]:
    acct = _require_movable(state, cmd, cmd.currency)
    _require_funds(acct, cmd.amount)
    _require_in_range(acct, acct.balance - cmd.amount)
    return [e.TransferDebited(**_base(state, cmd, now, e.TransferDebited, acct.sequence + 1),
                              transfer_id=cmd.correlation_id, to_account_id=cmd.to_account_id,
                              amount=cmd.amount, currency=cmd.currency, balance_after=acct.balance - cmd.amount,
                              reference=cmd.reference, exchange=cmd.exchange)]


def _payment(state: AccountState | None, cmd: c.Payment, now: datetime) -> list[e.Event]:
    """The transfer's rules (funds, frozen, closed, currency, range); the money goes to `clearing`."""
    acct = _require_movable(state, cmd, cmd.currency)
    _require_funds(acct, cmd.amount)
    _require_in_range(acct, acct.balance - cmd.amount)
    return [e.PaymentDebited(**_base(state, cmd, now, e.PaymentDebited, acct.sequence + 1),
                             payment_id=cmd.correlation_id, amount=cmd.amount, currency=cmd.currency,
                             balance_after=acct.balance - cmd.amount, creditor_iban=cmd.creditor_iban,
                             creditor_name=cmd.creditor_name, creditor_bic=cmd.creditor_bic,
                             remittance_information=cmd.remittance_information)]


def _payment_outcome(state: AccountState | None, cmd: c.RecordPaymentOutcome, now: datetime) -> list[e.Event]:
    """A payment ends once: settled or returned only while in flight; a second report is rejected. A return,
    like a transfer's reversal, always applies (frozen or past the balance limit): the money was the account's."""
    if state is None:
        raise Rejection("unknown_account", f"account {cmd.account_id} does not exist")
    amount = state.payments_in_flight.get(cmd.payment_id)
    if amount is None:
        raise Rejection("payment_not_in_flight", f"payment {cmd.payment_id} is not in flight on {cmd.account_id} "
                                                 "(unknown, or already settled or returned)")
    if cmd.outcome == "sent":
        return [e.PaymentSent(**_base(state, cmd, now, e.PaymentSent, state.sequence), payment_id=cmd.payment_id,
                              rail_reference=cmd.rail_reference)]
    if cmd.outcome == "settled":
        return [e.PaymentSettled(**_base(state, cmd, now, e.PaymentSettled, state.sequence + 1),
                                 payment_id=cmd.payment_id, amount=amount, currency=state.currency,
                                 rail_reference=cmd.rail_reference)]
    return [e.PaymentReturned(**_base(state, cmd, now, e.PaymentReturned, state.sequence + 1),
                              payment_id=cmd.payment_id, amount=amount, currency=state.currency,
                              balance_after=state.balance + amount, reason_code=str(cmd.reason_code))]


def _receive(state: AccountState | None, cmd: c.ReceivePayment, now: datetime) -> list[e.Event]:
    """An inbound credit: refused (and returned to the sender by the rail endpoint) like a transfer's credit."""
    acct = _require_movable(state, cmd, cmd.currency)
    _require_receivable(acct, cmd.amount)
    _require_in_range(acct, acct.balance + cmd.amount)
    return [e.PaymentReceived(**_base(state, cmd, now, e.PaymentReceived, acct.sequence + 1),
                              payment_id=cmd.payment_id, amount=cmd.amount, currency=cmd.currency,
                              balance_after=acct.balance + cmd.amount, debtor_iban=cmd.debtor_iban,
                              remittance_information=cmd.remittance_information)]


def _disburse_loan(state: AccountState | None, cmd: c.DisburseLoan, now: datetime) -> list[e.Event]:
    """An approved loan paid out once into an open account of its currency (frozen or closed: refused, and the
    loan shows the disbursement failed)."""
    acct = _require_movable(state, cmd, cmd.currency)
    if cmd.loan_id in acct.loans:
        raise Rejection("duplicate", f"loan {cmd.loan_id} is already disbursed")
    amount = cmd.principal - cmd.fee
    _require_in_range(acct, acct.balance + amount)
    return [e.LoanDisbursed(**_base(state, cmd, now, e.LoanDisbursed, acct.sequence + 1), loan_id=cmd.loan_id,
                            principal=cmd.principal, fee=cmd.fee, amount=amount, currency=cmd.currency,
                            balance_after=acct.balance + amount, disbursed_on=cmd.disbursed_on)]


def _repay_loan(state: AccountState | None, cmd: c.RepayLoan, now: datetime) -> list[e.Event]:
    """A repayment from the loan's account: the funds rule of any debit, and never more principal than owed. Its
    interest settles what was accrued first; the rest is income at once. A repayment that pays the principal off
    also trues the loan's accrued interest up to what was paid: the accrual left unpaid is reversed, so the loan's
    interest income is exactly the interest its customer paid."""
    acct = _require_movable(state, cmd, cmd.currency)
    outstanding = _require_outstanding(acct, cmd)
    if cmd.principal > outstanding:
        raise Rejection("more_than_owed", f"the repayment's principal {cmd.principal} is more than the "
                                          f"{outstanding} outstanding")
    _require_funds(acct, cmd.amount)
    _require_in_range(acct, acct.balance - cmd.amount)
    receivable = _receivable(acct, cmd.loan_id)
    settled = min(cmd.interest, receivable)
    repaid = e.LoanRepaid(**_base(state, cmd, now, e.LoanRepaid, acct.sequence + 1), loan_id=cmd.loan_id,
                          amount=cmd.amount, currency=cmd.currency, principal=cmd.principal, interest=cmd.interest,
                          fees=cmd.fees, kind=cmd.kind, paid_on=cmd.paid_on, balance_after=acct.balance - cmd.amount,
                          outstanding_principal=outstanding - cmd.principal, interest_accrued=settled)
    if repaid.outstanding_principal or receivable == settled:
        return [repaid]
    true_up = e.LoanInterestAccrued(**_base(state, cmd, now, e.LoanInterestAccrued, acct.sequence + 2),
                                    loan_id=cmd.loan_id, amount=settled - receivable, currency=cmd.currency,
                                    from_date=cmd.paid_on, through_date=cmd.paid_on, receivable_after=0)
    return [repaid, true_up]


def _require_outstanding(acct: AccountState, cmd: c.RepayLoan | c.AccrueLoanInterest | c.WriteOffLoan) -> int:
    outstanding = acct.loans.get(cmd.loan_id)
    if not outstanding:
        raise Rejection("no_outstanding_loan", f"loan {cmd.loan_id} owes nothing on {cmd.account_id}")
    return outstanding


def _receivable(acct: AccountState, loan_id: str) -> int:
    return int(acct.loan_accruals.get(loan_id, {}).get("receivable", 0))


def _accrue_loan_interest(state: AccountState | None, cmd: c.AccrueLoanInterest, now: datetime) -> list[e.Event]:
    """A loan's interest for the business dates after its last accrual, in order, each date once (a frozen
    account's loan earns interest too). A negative adjustment reverses at most what is receivable."""
    acct = _require_account(state, cmd)
    if cmd.currency != acct.currency:
        raise Rejection("currency_mismatch", f"account {cmd.account_id} holds {acct.currency}, not {cmd.currency}")
    _require_outstanding(acct, cmd)
    through = acct.loan_accruals.get(cmd.loan_id, {}).get("through")
    if through is not None and cmd.through_date <= through:
        raise Rejection("already_accrued", f"loan {cmd.loan_id} is accrued through {through}")
    if through is not None and cmd.from_date != (date.fromisoformat(through) + timedelta(days=1)).isoformat():
        raise Rejection("not_next_date", f"loan {cmd.loan_id} is accrued through {through}: the next accrual "
                                         f"starts the day after, not {cmd.from_date}")
    receivable = _receivable(acct, cmd.loan_id)
    amount = max(cmd.amount, -receivable)
    return [e.LoanInterestAccrued(**_base(state, cmd, now, e.LoanInterestAccrued, acct.sequence + 1),
                                  loan_id=cmd.loan_id, amount=amount, currency=cmd.currency, from_date=cmd.from_date,
                                  through_date=cmd.through_date, receivable_after=receivable + amount)]


def _write_off_loan(state: AccountState | None, cmd: c.WriteOffLoan, now: datetime) -> list[e.Event]:
    """The principal still outstanding and the interest accrued unpaid, off the books into `loan-losses`."""
    acct = _require_account(state, cmd)
    principal = _require_outstanding(acct, cmd)
    return [e.LoanWrittenOff(**_base(state, cmd, now, e.LoanWrittenOff, acct.sequence + 1), loan_id=cmd.loan_id,
                             principal=principal, interest=_receivable(acct, cmd.loan_id), currency=acct.currency,
                             reason=cmd.reason, submitted_by=cmd.submitted_by)]


def _credit_interest(state: AccountState | None, cmd: c.CreditInterest, now: datetime) -> list[e.Event]:
    """Interest the bank owes: credited to a frozen account too (like a reversal); a closed one refuses it."""
    acct = _require_account(state, cmd)
    if cmd.currency != acct.currency:
        raise Rejection("currency_mismatch", f"account {cmd.account_id} holds {acct.currency}, not {cmd.currency}")
    _require_in_range(acct, acct.balance + cmd.amount)
    return [e.InterestCredited(**_base(state, cmd, now, e.InterestCredited, acct.sequence + 1), amount=cmd.amount,
                               currency=cmd.currency, balance_after=acct.balance + cmd.amount, period=cmd.period)]


def _credit(state: AccountState | None, cmd: c.CreditTransfer, now: datetime) -> list[e.Event]:
    # An exchanged transfer credits the quote's buy side; its amount/currency stay the sell side (for a reversal).
    amount, currency = (cmd.exchange["buy_amount"], cmd.exchange["buy_currency"]) if cmd.exchange else \
        (cmd.amount, cmd.currency)
    try:
        acct = _require_movable(state, cmd, currency)
        _require_receivable(acct, amount)
        _require_in_range(acct, acct.balance + amount)
    except Rejection as r:
        # The source was already debited: record the refusal so the saga compensates it.
        return [e.TransferCreditFailed(**_base(state, cmd, now, e.TransferCreditFailed,
                                               state.sequence if state else 0),
                                       transfer_id=cmd.transfer_id, from_account_id=cmd.from_account_id,
                                       amount=cmd.amount, currency=cmd.currency, reason=r.reason)]
    return [e.TransferCredited(**_base(state, cmd, now, e.TransferCredited, acct.sequence + 1),
                               transfer_id=cmd.transfer_id, from_account_id=cmd.from_account_id,
                               amount=amount, currency=currency, balance_after=acct.balance + amount,
                               reference=cmd.reference, exchange=cmd.exchange)]


def _reverse(state: AccountState | None, cmd: c.ReverseTransfer, now: datetime) -> list[e.Event]:
    # A compensation always applies: the source cannot close while a transfer is in flight,
    # and a freeze must not trap money that is coming back. Nor does the balance limit: the money was the
    # account's a moment ago, so the balance passes the limit by at most its transfers in flight.
    if state is None:
        raise Rejection("unknown_account", f"account {cmd.account_id} does not exist")
    return [e.TransferReversed(**_base(state, cmd, now, e.TransferReversed, state.sequence + 1),
                               transfer_id=cmd.transfer_id, to_account_id=cmd.to_account_id, amount=cmd.amount,
                               currency=cmd.currency, balance_after=state.balance + cmd.amount, reason=cmd.reason)]


def _complete(state: AccountState | None, cmd: c.CompleteTransfer, now: datetime) -> list[e.Event]:
    if state is None:
        raise Rejection("unknown_account", f"account {cmd.account_id} does not exist")
    return [e.TransferCompleted(**_base(state, cmd, now, e.TransferCompleted, state.sequence + 1),
                                transfer_id=cmd.transfer_id, to_account_id=cmd.to_account_id)]


def _freeze(state: AccountState | None, cmd: c.FreezeAccount, now: datetime) -> list[e.Event]:
    acct = _require_account(state, cmd)
    if acct.status == "frozen":
        raise Rejection("account_frozen", f"account {cmd.account_id} is already frozen")
    return [e.AccountFrozen(**_base(state, cmd, now, e.AccountFrozen, acct.sequence + 1), reason=cmd.reason)]


def _unfreeze(state: AccountState | None, cmd: c.UnfreezeAccount, now: datetime) -> list[e.Event]:
    acct = _require_account(state, cmd)
    if acct.status != "frozen":
        raise Rejection("account_not_frozen", f"account {cmd.account_id} is not frozen")
    return [e.AccountUnfrozen(**_base(state, cmd, now, e.AccountUnfrozen, acct.sequence + 1), reason=cmd.reason)]


def _close(state: AccountState | None, cmd: c.CloseAccount, now: datetime) -> list[e.Event]:
    acct = _require_account(state, cmd)
    if acct.transfers_out_in_flight:
        raise Rejection("transfers_in_flight", f"{acct.transfers_out_in_flight} transfer(s) still in flight")
    if acct.payments_in_flight:
        raise Rejection("payments_in_flight", f"{len(acct.payments_in_flight)} payment(s) still in flight")
    if any(acct.loans.values()):
        raise Rejection("loan_outstanding", f"{len(acct.loans)} loan(s) are repaid from this account; they must be "
                                            "repaid first")
    if acct.holds:
        raise Rejection("holds_pending", f"{len(acct.holds)} movement(s) held for review; decide them first")
    if acct.balance != 0:
        raise Rejection("balance_not_zero", f"an account closes only at zero balance; it holds "
                        f"{format_amount(acct.balance, acct.currency)} {acct.currency}")
    return [e.AccountClosed(**_base(state, cmd, now, e.AccountClosed, acct.sequence + 1), reason=cmd.reason)]


def _set_overdraft(state: AccountState | None, cmd: c.SetOverdraftLimit, now: datetime) -> list[e.Event]:
    acct = _require_account(state, cmd)
    if cmd.currency != acct.currency:
        raise Rejection("currency_mismatch", f"account {cmd.account_id} holds {acct.currency}, not {cmd.currency}")
    if acct.balance - acct.held_debits < -cmd.overdraft_limit:
        # Lowering the limit below what the account already uses would put it past its overdraft at once.
        used = format_amount(acct.held_debits - acct.balance, acct.currency)
        raise Rejection("overdraft_in_use", f"the account uses {used} {acct.currency} of overdraft (held debits "
                        f"included): more than {format_amount(cmd.overdraft_limit, acct.currency)}")
    return [e.OverdraftLimitSet(**_base(state, cmd, now, e.OverdraftLimitSet, acct.sequence + 1),
                                overdraft_limit=cmd.overdraft_limit, previous_limit=acct.overdraft_limit,
                                currency=cmd.currency, reason=cmd.reason)]


def _set_receive_limit(state: AccountState | None, cmd: c.SetReceiveLimit, now: datetime) -> list[e.Event]:
    acct = _require_account(state, cmd)
    if cmd.currency != acct.currency:
        raise Rejection("currency_mismatch", f"account {cmd.account_id} holds {acct.currency}, not {cmd.currency}")
    return [e.ReceiveLimitSet(**_base(state, cmd, now, e.ReceiveLimitSet, acct.sequence + 1),
                              receive_limit=cmd.receive_limit, currency=cmd.currency, reason=cmd.reason)]


def _review(state: AccountState | None, cmd: c.ReviewCase, now: datetime) -> list[e.Event]:
    """Record the decision; for a hold, post the movement (approve) or close it as rejected (reject).

    An approved movement is decided again against the account as it is now, without the risk engine: it
    posts if the ledger's own checks still pass (the account may have been frozen meanwhile), otherwise it
    is rejected for that reason. Its events carry the held command's ids, so its caller sees the outcome.
    """
    if state is None:
        raise Rejection("unknown_account", f"account {cmd.account_id} does not exist")
    hold = state.holds.get(cmd.case_id)
    if hold is not None and hold.get("submitted_by") == cmd.reviewer:
        # Maker-checker, also here in case a decision reaches the ledger without the API's check.
        raise Rejection("own_movement", f"{cmd.reviewer} submitted this movement and may not decide its case")
    reviewed = e.CaseReviewed(**_base(state, cmd, now, e.CaseReviewed, state.sequence + 1), case_id=cmd.case_id,
                              decision=cmd.decision, reviewer=cmd.reviewer, comment=cmd.comment,
                              held=hold is not None)
    if hold is None:
        return [reviewed]
    after = apply(state, reviewed)
    held = held_command(cmd.account_id, cmd.case_id, hold)
    if cmd.decision == "approve":
        return [reviewed, *decide(after, held, now)]
    return [reviewed, _rejected(after, held, now, Rejection(
        "rejected_by_review", f"rejected by {cmd.reviewer}: {cmd.comment}"))]


def held_command(account_id: str, case_id: str, hold: dict[str, Any]) -> c.Command:
    """The command a hold keeps, as it was issued."""
    common: dict[str, Any] = dict(
        command_id=case_id, account_id=account_id, correlation_id=hold["correlation_id"],
        issued_at=datetime.fromisoformat(hold["issued_at"]), amount=hold["amount"], currency=hold["currency"],
        reference=hold["reference"], counterparty_name=hold["counterparty_name"],
        counterparty_country=hold["counterparty_country"], submitted_by=hold.get("submitted_by"),
    )
    if hold["command_type"] == "Transfer":
        return c.Transfer(**common, to_account_id=hold["to_account_id"], exchange=hold.get("exchange"))
    if hold["command_type"] == "Payment":
        # The hold keeps the creditor's IBAN as its destination and the remittance as its reference (the BIC,
        # optional, is not kept: the rail routes by IBAN).
        del common["reference"], common["counterparty_name"]
        return c.Payment(**common, creditor_iban=hold["to_account_id"], creditor_name=hold["counterparty_name"],
                         remittance_information=hold["reference"])
    kind = c.Deposit if hold["command_type"] == "Deposit" else c.Withdraw
    return kind(**common, channel=hold["channel"])


def _hold_of(event: e.FundsHeld) -> dict[str, Any]:
    return {"command_type": event.command_type, "correlation_id": event.correlation_id,
            "issued_at": event.issued_at.isoformat(), "amount": event.amount, "currency": event.currency,
            "channel": event.channel, "to_account_id": event.to_account_id, "reference": event.reference,
            "counterparty_name": event.counterparty_name, "counterparty_country": event.counterparty_country,
            "submitted_by": event.submitted_by, "exchange": event.exchange}


# Each decider takes its own command type, hence Any: decide() looks it up by that very type.
_DECIDERS: dict[type[c.Command], Callable[[AccountState | None, Any, datetime], list[e.Event]]] = {
    c.OpenAccount: _open, c.Deposit: _deposit, c.Withdraw: _withdraw, c.Transfer: _transfer,
    c.CreditTransfer: _credit, c.ReverseTransfer: _reverse, c.CompleteTransfer: _complete, c.FreezeAccount: _freeze,
    c.UnfreezeAccount: _unfreeze, c.CloseAccount: _close, c.ReviewCase: _review, c.SetOverdraftLimit: _set_overdraft,
    c.Payment: _payment, c.RecordPaymentOutcome: _payment_outcome, c.ReceivePayment: _receive,
    c.DisburseLoan: _disburse_loan, c.RepayLoan: _repay_loan, c.CreditInterest: _credit_interest,
    c.AccrueLoanInterest: _accrue_loan_interest, c.WriteOffLoan: _write_off_loan,
    c.SetReceiveLimit: _set_receive_limit,
}

# ---------------------------------------------------------------- apply

# What counts against a KYC receive limit: money from outside the account, not its own coming back.
_RECEIVED = (e.FundsDeposited, e.TransferCredited, e.PaymentReceived)


def apply(state: AccountState | None, event: e.Event) -> AccountState | None:
    """Fold one event into the account. Idempotent: an event at or below the account's version is a no-op."""
    if isinstance(event, e.AccountOpened):
        if state is not None:
            return state
        return AccountState(account_id=event.account_id, customer_id=event.customer_id, currency=event.currency,
                            overdraft_limit=event.overdraft_limit, sequence=event.sequence,
                            receive_limit=event.receive_limit)
    if state is None or event.sequence <= state.sequence or isinstance(event, e.NON_STATE_EVENTS):
        return state
    if event.sequence != state.sequence + 1:
        raise ValueError(f"event {event.event_id} has sequence {event.sequence}; account is at {state.sequence}")
    changes: dict[str, Any] = {"sequence": event.sequence}
    if type(event) in e.POSTING_SIGN:
        changes["balance"] = event.balance_after  # type: ignore[attr-defined]
    if isinstance(event, _RECEIVED):
        changes["received"] = state.received + event.amount
    if isinstance(event, e.TransferDebited):
        changes["transfers_out_in_flight"] = state.transfers_out_in_flight + 1
    elif isinstance(event, (e.TransferReversed, e.TransferCompleted)):
        changes["transfers_out_in_flight"] = max(0, state.transfers_out_in_flight - 1)
    elif isinstance(event, e.AccountFrozen):
        changes["status"] = "frozen"
    elif isinstance(event, e.AccountUnfrozen):
        changes["status"] = "open"
    elif isinstance(event, e.AccountClosed):
        changes["status"] = "closed"
    elif isinstance(event, e.OverdraftLimitSet):
        changes["overdraft_limit"] = event.overdraft_limit
    elif isinstance(event, e.ReceiveLimitSet):
        changes["receive_limit"] = event.receive_limit
    elif isinstance(event, e.PaymentDebited):
        changes["payments_in_flight"] = {**state.payments_in_flight, event.payment_id: event.amount}
    elif isinstance(event, (e.PaymentSettled, e.PaymentReturned)):
        changes["payments_in_flight"] = {k: v for k, v in state.payments_in_flight.items() if k != event.payment_id}
    elif isinstance(event, e.LoanDisbursed):
        changes["loans"] = {**state.loans, event.loan_id: event.principal}
    elif isinstance(event, e.LoanRepaid):
        changes["loans"] = {k: v for k, v in state.loans.items() if k != event.loan_id}
        accruals = {k: v for k, v in state.loan_accruals.items() if k != event.loan_id}
        if event.outstanding_principal:
            changes["loans"][event.loan_id] = event.outstanding_principal
            if (accrual := state.loan_accruals.get(event.loan_id)) is not None:
                accruals[event.loan_id] = accrual | {"receivable": accrual["receivable"] - event.interest_accrued}
        changes["loan_accruals"] = accruals
    elif isinstance(event, e.LoanInterestAccrued) and event.loan_id in state.loans:
        changes["loan_accruals"] = {**state.loan_accruals, event.loan_id: {
            "through": event.through_date, "receivable": event.receivable_after}}
    elif isinstance(event, e.LoanWrittenOff):
        changes["loans"] = {k: v for k, v in state.loans.items() if k != event.loan_id}
        changes["loan_accruals"] = {k: v for k, v in state.loan_accruals.items() if k != event.loan_id}
    elif isinstance(event, e.FundsHeld):
        changes["holds"] = {**state.holds, event.command_id: _hold_of(event)}
    elif isinstance(event, e.CaseReviewed) and event.case_id in state.holds:
        changes["holds"] = {k: v for k, v in state.holds.items() if k != event.case_id}
    return replace(state, **changes)


# ---------------------------------------------------------------- command outcomes

# held: waiting for a risk reviewer; it ends accepted (approved and posted) or rejected.
CommandStatus = Literal["pending", "held", "accepted", "rejected"]


@dataclass(slots=True)
class CommandOutcome:
    """What a customer command came to, folded from the events that carry its correlation id."""

    command_id: str
    status: CommandStatus = "pending"
    reason: str | None = None
    detail: str | None = None
    in_flight: bool = False
    events: list[e.Event] | None = None

    def add(self, event: e.Event) -> None:
        if self.events is None:
            self.events = []
        if any(known.event_id == event.event_id for known in self.events):
            return
        self.events.append(event)
        # In the order they happened: a transfer's events come from two partitions, read in either order.
        self.events.sort(key=lambda known: known.occurred_at)
        if isinstance(event, e.CommandRejected):
            self.status, self.reason, self.detail = "rejected", event.reason, event.detail
        elif isinstance(event, e.FundsHeld):
            self.status = "held"
        elif isinstance(event, e.RiskFlagged):
            pass  # a record about the command, not its outcome: the posting or rejection follows
        elif isinstance(event, e.TransferDebited):
            self.in_flight = True
            if self.status == "held":
                self.status = "pending"  # approved: now the saga's
        elif isinstance(event, e.TransferCreditFailed):
            self.reason = event.reason
        elif isinstance(event, e.TransferReversed):
            self.status, self.reason, self.in_flight = "rejected", event.reason, False
            self.detail = f"the credit failed ({event.reason}); the debit was reversed"
        elif isinstance(event, e.TransferCredited):
            self.status, self.in_flight = "accepted", False
        elif not isinstance(event, e.TransferCompleted):
            self.status = "accepted"
