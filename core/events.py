"""Events: immutable facts on the ledger topic, the system of record. Keyed by account id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.commands import derive_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    event_id: str
    command_id: str          # the command that caused this event (a saga step has its own)
    correlation_id: str      # the customer command it belongs to (a transfer's saga shares one)
    account_id: str
    occurred_at: datetime
    # The account's version after this event; rejections carry the version they were judged at.
    sequence: int
    schema_version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountOpened(Event):
    customer_id: str
    currency: str
    overdraft_limit: int
    # As the OpenAccount command carried it; None for accounts opened before numbering existed (they are shown
    # with core.account_numbers.AccountNumbering.legacy_number).
    account_number: str | None = None
    receive_limit: int | None = None     # KYC: the most it may be credited in all; None: no limit


@dataclass(frozen=True, slots=True, kw_only=True)
class FundsDeposited(Event):
    amount: int
    currency: str
    balance_after: int
    reference: str | None = None
    channel: str = "transfer"


@dataclass(frozen=True, slots=True, kw_only=True)
class FundsWithdrawn(Event):
    amount: int
    currency: str
    balance_after: int
    reference: str | None = None
    channel: str = "transfer"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferDebited(Event):
    """Money left the source; until TransferCredited or TransferReversed it is in flight."""

    transfer_id: str
    to_account_id: str
    amount: int
    currency: str
    balance_after: int
    reference: str | None = None
    exchange: dict[str, Any] | None = None   # between two currencies: the quote executed (core.fx.exchange_of)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferCredited(Event):
    """The destination credited: `amount` in its own `currency` (an exchanged transfer's buy side)."""

    transfer_id: str
    from_account_id: str
    amount: int
    currency: str
    balance_after: int
    reference: str | None = None
    exchange: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferCreditFailed(Event):
    """The destination refused the credit; the saga answers with a reversal on the source."""

    transfer_id: str
    from_account_id: str
    amount: int
    currency: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferReversed(Event):
    transfer_id: str
    to_account_id: str
    amount: int
    currency: str
    balance_after: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferCompleted(Event):
    """The source's record that its transfer was credited: the saga is over, nothing is in flight."""

    transfer_id: str
    to_account_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountFrozen(Event):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountUnfrozen(Event):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountClosed(Event):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRejected(Event):
    command_type: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskCase(Event):
    """A money movement the risk engine flagged, with its assessment: the case a reviewer works on.

    The case id is the flagged command's id (`command_id`). The movement's fields are all here, so a held
    movement can be posted on approval exactly as it was asked for.
    """

    customer_id: str
    command_type: str                 # Deposit | Withdraw | Transfer
    amount: int
    currency: str
    channel: str
    to_account_id: str | None
    reference: str | None
    counterparty_name: str | None
    counterparty_country: str | None
    issued_at: datetime
    action: str                       # alert | hold | block
    score: int
    rule_set_version: str
    hits: list[dict[str, Any]]        # {rule_id, kind, action, severity, score, reason}, in rule-set order
    submitted_by: str | None = None   # who submitted the movement: they may not decide its case


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskFlagged(RiskCase):
    """Alert or block: recorded on the account without changing it (a blocked command is then rejected)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FundsHeld(RiskCase):
    """Hold: the movement waits for a reviewer. A held debit reserves its amount (available balance drops,
    the balance does not); a held deposit credits nothing until approved."""

    exchange: dict[str, Any] | None = None   # a held transfer between two currencies: its quote (core.fx)


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseReviewed(Event):
    """A reviewer's decision on a case. For a hold it releases the reservation; on approval the movement's
    posting follows, on rejection a CommandRejected (rejected_by_review) closes the held command."""

    case_id: str
    decision: str                     # approve | reject
    reviewer: str
    comment: str
    held: bool                        # whether the case was a hold on this account


@dataclass(frozen=True, slots=True, kw_only=True)
class OverdraftLimitSet(Event):
    """Staff changed the account's overdraft limit (minor units of its currency)."""

    overdraft_limit: int
    previous_limit: int
    currency: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentDebited(Event):
    """An outbound payment left the customer's account for `clearing`; the instruction goes to the rail."""

    payment_id: str
    amount: int
    currency: str
    balance_after: int
    creditor_iban: str
    creditor_name: str
    creditor_bic: str | None = None
    remittance_information: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentSent(Event):
    """The rail accepted the instruction (a record: the account does not change)."""

    payment_id: str
    rail_reference: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentSettled(Event):
    """The rail settled the payment: the money leaves `clearing` for the bank's settlement account."""

    payment_id: str
    amount: int
    currency: str
    rail_reference: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentReturned(Event):
    """The rail returned the payment with an ISO 20022 reason code: the money goes back to the customer."""

    payment_id: str
    amount: int
    currency: str
    balance_after: int
    reason_code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentReceived(Event):
    """An inbound credit transfer from the rail credited the account."""

    payment_id: str
    amount: int
    currency: str
    balance_after: int
    debtor_iban: str | None = None
    remittance_information: str | None = None
# A teller's cash drawer (issue 14 point 4; core/drawers.py decides, core/books.py posts): keyed by
# `drawer:<staff id>`, which is no bank account, so these record a decision without changing any account.


@dataclass(frozen=True, slots=True, kw_only=True)
class DrawerOpened(Event):
    """A teller's drawer opened for the day with a float taken from the vault (cash:vault -> cash:<staff id>)."""

    staff_id: str
    currency: str
    float_amount: int                 # minor units moved from the vault into the drawer (0: an empty drawer)
    opened_by: str                    # user id (the teller, or a supervisor for them)


@dataclass(frozen=True, slots=True, kw_only=True)
class DrawerCounted(Event):
    """The cash in an open drawer counted against its book balance (a record: nothing is posted)."""

    staff_id: str
    currency: str
    counted: int
    book_balance: int                 # the drawer's balance in the books when counted
    difference: int                   # counted minus book_balance: positive over, negative short
    counted_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DrawerClosed(Event):
    """The drawer closed: the over/short (counted minus book balance) posted against suspense, then the counted cash
    returned to the vault, which leaves the drawer at zero."""

    staff_id: str
    currency: str
    counted: int
    book_balance: int
    difference: int
    closed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiveLimitSet(Event):
    """An account's KYC receive limit changed (None: no limit, its customer is verified)."""

    receive_limit: int | None
    currency: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanDisbursed(Event):
    """A loan paid out: the account credited with `amount` (= principal - fee); the books take the principal into
    `loans` and the fee into `fee-income`."""

    loan_id: str
    principal: int
    fee: int
    amount: int
    currency: str
    balance_after: int
    disbursed_on: str                        # ISO business date


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanRepaid(Event):
    """A loan repayment taken from the account: `principal` to `loans`, `fees` to `fee-income`; of `interest`,
    `interest_accrued` settles interest already accrued (`interest-receivable`) and the rest is income at once
    (`interest-income`: all of it on a repayment decided before accruals existed)."""

    loan_id: str
    amount: int
    currency: str
    principal: int
    interest: int
    fees: int
    kind: str                                # manual | scheduled | payoff
    paid_on: str                             # ISO business date
    balance_after: int
    outstanding_principal: int               # of the loan, after this repayment
    interest_accrued: int = 0                # of `interest`, what was accrued (receivable) before it


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanInterestAccrued(Event):
    """Interest a loan earned over business dates `from_date`..`through_date`: `interest-receivable` debited and
    `interest-income` credited with `amount` (negative: the other way round). Also written by the ledger itself,
    with a repayment that pays a loan's principal off, to true the loan's accrued interest up to what was paid
    (`from_date` = `through_date` = the payment's date). The account's balance does not change."""

    loan_id: str
    amount: int
    currency: str
    from_date: str
    through_date: str
    receivable_after: int                    # the loan's interest accrued and not yet paid, after this event


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanWrittenOff(Event):
    """A loan written off: `loan-losses` debited with `principal` + `interest`, `loans` credited with the principal
    still outstanding and `interest-receivable` with the interest accrued unpaid. The account's balance does not
    change; the loan collects nothing more."""

    loan_id: str
    principal: int
    interest: int
    currency: str
    reason: str
    submitted_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InterestCredited(Event):
    """A month's savings interest credited to the account: the books debit `interest-expense`."""

    amount: int
    currency: str
    balance_after: int
    period: str                              # YYYY-MM


EVENT_TYPES: dict[str, type[Event]] = {
    e.__name__: e
    for e in (
        AccountOpened, FundsDeposited, FundsWithdrawn, TransferDebited, TransferCredited,
        TransferCreditFailed, TransferReversed, TransferCompleted, AccountFrozen, AccountUnfrozen, AccountClosed,
        CommandRejected, RiskFlagged, FundsHeld, CaseReviewed, OverdraftLimitSet,
        PaymentDebited, PaymentSent, PaymentSettled, PaymentReturned, PaymentReceived,
        DrawerOpened, DrawerCounted, DrawerClosed, LoanDisbursed, LoanRepaid,
        InterestCredited, ReceiveLimitSet, LoanInterestAccrued, LoanWrittenOff,
    )
}

# Events that record a decision without changing the account they are keyed by: they carry the account's
# current sequence instead of the next one.
NON_STATE_EVENTS: tuple[type[Event], ...] = (CommandRejected, TransferCreditFailed, RiskFlagged, PaymentSent,
                                             DrawerOpened, DrawerCounted, DrawerClosed)
DRAWER_EVENTS: tuple[type[Event], ...] = (DrawerOpened, DrawerCounted, DrawerClosed)

# Events that move money, with the sign they apply to their account's balance.
POSTING_SIGN: dict[type[Event], int] = {
    FundsDeposited: +1, FundsWithdrawn: -1, TransferDebited: -1, TransferCredited: +1, TransferReversed: +1,
    PaymentDebited: -1, PaymentReturned: +1, PaymentReceived: +1, LoanDisbursed: +1, LoanRepaid: -1,
    InterestCredited: +1,
}


def event_id_for(command_id: str, event_type: type[Event]) -> str:
    """Deterministic: replaying a command yields the same event ids, so readers can deduplicate."""
    return derive_id(command_id, event_type.__name__)
