"""Commands: requests to change an account, keyed by the account they act on (per-account order)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

# How money reached or left the bank: "cash" feeds the structuring and CTR rules. A command written before
# channels existed reads as "transfer". The API sets it from who acts (staff at the counter: "cash"); no client
# chooses it.
Channel = Literal["cash", "transfer", "card"]
CHANNELS: tuple[Channel, ...] = ("cash", "transfer", "card")

# Namespace of every deterministic id bankstream derives (command ids from idempotency keys,
# saga step ids, event ids), so a retry or a replay always yields the same id.
BANK_NAMESPACE = uuid.UUID("6f1c1a8e-5b7d-4c1e-9a3f-2d0b8e4f7a10")
_NAMESPACE_BYTES = BANK_NAMESPACE.bytes


def derive_id(*parts: str) -> str:
    """`str(uuid.uuid5(BANK_NAMESPACE, "/".join(parts)))`, built from the SHA-1 digest directly: a worker derives
    a few ids per command, and uuid.UUID's constructor and formatting were 3 % of it."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "/".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50   # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80   # the RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    command_id: str
    account_id: str
    issued_at: datetime
    # The id of the customer command this one belongs to: itself, or the transfer a saga step serves.
    correlation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAccount(Command):
    customer_id: str
    currency: str
    overdraft_limit: int = 0
    # The national account number the API allocated (core/account_numbers.py); None on commands written before
    # numbering existed, or by a producer other than the API.
    account_number: str | None = None
    # KYC tiers (core/kyc.py): the most an unverified customer's account may be credited in all, set by the API
    # from the customer's status; None: no limit. The ledger refuses credits past it.
    receive_limit: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Deposit(Command):
    amount: int
    currency: str
    reference: str | None = None
    channel: str = "transfer"
    counterparty_name: str | None = None      # who paid in / is paid out, screened against sanctions
    counterparty_country: str | None = None   # ISO 3166-1 alpha-2
    submitted_by: str | None = None           # the user id of who submitted it (maker-checker)
    # Set by the API for a staff member's cash movement above BANK_CASH_DUAL_CONTROL_THRESHOLD: the ledger holds
    # it until another staff member approves it (a second pair of eyes).
    second_approval: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdraw(Command):
    amount: int
    currency: str
    reference: str | None = None
    channel: str = "transfer"
    counterparty_name: str | None = None      # who paid in / is paid out, screened against sanctions
    counterparty_country: str | None = None   # ISO 3166-1 alpha-2
    submitted_by: str | None = None           # the user id of who submitted it (maker-checker)
    # Set by the API for a staff member's cash movement above BANK_CASH_DUAL_CONTROL_THRESHOLD: the ledger holds
    # it until another staff member approves it (a second pair of eyes).
    second_approval: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer(Command):
    """Keyed by the source account; the credit runs as a saga step on the destination's partition."""

    to_account_id: str
    amount: int
    currency: str
    reference: str | None = None
    counterparty_name: str | None = None      # the beneficiary's name as the customer gave it
    counterparty_country: str | None = None
    submitted_by: str | None = None           # the user id of who submitted it (maker-checker)
    # When the destination became the customer's payee (a transfer by payee_id): the cooling-off rule reads it.
    payee_added_at: datetime | None = None
    # Between two currencies at an FX quote's price (core.fx.exchange_of): amount/currency are the sell side, what
    # leaves the source; the saga credits the buy side. None within one currency.
    exchange: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FreezeAccount(Command):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnfreezeAccount(Command):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseAccount(Command):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditTransfer(Command):
    """Saga step: credit the destination (account_id) of transfer `transfer_id`."""

    transfer_id: str
    from_account_id: str
    amount: int
    currency: str
    reference: str | None = None
    # An exchanged transfer's quote (amount/currency stay the sell side, so a refusal reverses them as they left
    # the source); the destination is credited the buy side.
    exchange: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReverseTransfer(Command):
    """Saga compensation: give the source (account_id) back the debit of a transfer whose credit failed."""

    transfer_id: str
    to_account_id: str
    amount: int
    currency: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteTransfer(Command):
    """Saga step: tell the source (account_id) its transfer reached the destination."""

    transfer_id: str
    to_account_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewCase(Command):
    """A reviewer's decision on a risk case (case id = the flagged command's id) of account_id.

    Approving a hold posts the held movement; rejecting it releases the reservation. Decisions on alerts and
    blocks are recorded and move no money. One decision per case: the command id derives from the case id.
    """

    case_id: str
    decision: str            # "approve" | "reject"
    reviewer: str
    comment: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SetOverdraftLimit(Command):
    """Staff grant (or lower, or remove with 0) an account's overdraft, in minor units of its currency."""

    overdraft_limit: int
    currency: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetReceiveLimit(Command):
    """The API sets an account's KYC receive limit when its customer's verification changes (None: verified, no
    limit). It travels the customers' path (the risk agent, keyed by customer), so it keeps its place among the
    customer's commands."""

    receive_limit: int | None
    currency: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Payment(Command):
    """An outbound credit transfer to another bank's account (issue 14 point 6), keyed by the debtor account.

    The ledger debits the customer to `clearing`; the payment gateway hands the instruction to the payment rail;
    the rail's outcome comes back as RecordPaymentOutcome. The payment id is the command's correlation id (its own
    id), and the rail's instruction id."""

    amount: int
    currency: str
    creditor_iban: str
    creditor_name: str                       # screened against sanctions like a transfer's counterparty
    creditor_bic: str | None = None
    remittance_information: str | None = None
    counterparty_country: str | None = None  # the creditor IBAN's country, set by the server
    submitted_by: str | None = None

    @property
    def counterparty_name(self) -> str:
        """For the risk engine, which screens every movement's counterparty."""
        return self.creditor_name

    @property
    def reference(self) -> str | None:
        return self.remittance_information


PAYMENT_OUTCOMES = ("sent", "settled", "returned")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPaymentOutcome(Command):
    """The payment gateway's report on an outbound payment (account_id: the debtor account): the rail took it
    (`sent`), settled it, or returned it with an ISO 20022 reason code. The ledger decides: settled and returned
    end the payment, once."""

    payment_id: str
    outcome: str                           # sent | settled | returned
    reason_code: str | None = None         # ISO 20022 return reason (AC01, AC04, AM04, MS03, ...)
    rail_reference: str | None = None      # the rail's own reference, for reconciliation


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivePayment(Command):
    """An inbound credit transfer from the payment rail to one of our accounts (account_id, resolved from the
    creditor IBAN by the API's rail endpoint). `payment_id` is the rail's instruction id: one credit per id."""

    payment_id: str
    amount: int
    currency: str
    debtor_iban: str | None = None
    remittance_information: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DisburseLoan(Command):
    """Pay an approved loan out into its account (account_id), sent by the loan servicer (streams/loan_servicing.py).

    The ledger credits the account with `principal - fee` and takes the loan's principal into the account's loans
    (the books: `loans` debited with the principal, `fee-income` credited with the origination fee). One per loan:
    the command id derives from the loan id (core.lending.disbursement_command_id)."""

    loan_id: str
    principal: int
    fee: int                                 # the origination fee taken from the amount paid out
    currency: str
    disbursed_on: str                        # ISO business date: the schedule counts from it


@dataclass(frozen=True, slots=True, kw_only=True)
class RepayLoan(Command):
    """Repay a loan from its account (account_id): by the customer (manual, payoff) or the servicer on a due date
    (scheduled). `amount` = principal + interest + fees, split by the loan's allocation (core/lending.py)."""

    loan_id: str
    amount: int
    currency: str
    principal: int
    interest: int
    fees: int
    kind: str                                # manual | scheduled | payoff
    paid_on: str                             # ISO business date
    submitted_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccrueLoanInterest(Command):
    """Interest a loan earned over closed business dates, sent by the loan servicer (streams/loan_servicing.py) for
    the loan's account (account_id): the books debit `interest-receivable` and credit `interest-income` (a negative
    amount, an adjustment after a prepayment lowered the period's interest, the other way round). The dates run
    from the day after the loan's last accrual (or its disbursement date) through `through_date`, usually one
    date; the ledger takes them only in that order, so each date is accrued once. The command id derives from the
    loan and `through_date` (core.lending.accrual_command_id)."""

    loan_id: str
    amount: int                              # signed, minor units: what the dates earned
    currency: str
    from_date: str                           # ISO business date: the first date accrued
    through_date: str                        # ISO business date: the last date accrued


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteOffLoan(Command):
    """Write a loan off (staff, `POST /v1/admin/loans/{id}/write-off`): the ledger takes the principal still
    outstanding and the interest accrued unpaid off the books into `loan-losses`; the loan collects nothing more."""

    loan_id: str
    currency: str
    reason: str
    submitted_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditInterest(Command):
    """A month's savings interest credited to the account (account_id), sent by the close-of-business job
    (streams/close_of_business.py) once the month's last day is accrued. One per account and month: the command id
    derives from them (core.savings.capitalisation_command_id)."""

    amount: int
    currency: str
    period: str                              # YYYY-MM: the month whose accruals it credits


CUSTOMER_COMMANDS: tuple[type[Command], ...] = (
    OpenAccount, Deposit, Withdraw, Transfer, FreezeAccount, UnfreezeAccount, CloseAccount, Payment,
)
SAGA_COMMANDS: tuple[type[Command], ...] = (CreditTransfer, ReverseTransfer, CompleteTransfer)
STAFF_COMMANDS: tuple[type[Command], ...] = (ReviewCase, SetOverdraftLimit, SetReceiveLimit)
# Written by the payment gateway and the API's rail endpoints, straight onto the ledger's command topic.
RAIL_COMMANDS: tuple[type[Command], ...] = (RecordPaymentOutcome, ReceivePayment)
# Written by the loan servicer and the API's loan routes, straight onto the ledger's command topic.
LOAN_COMMANDS: tuple[type[Command], ...] = (DisburseLoan, RepayLoan, AccrueLoanInterest, WriteOffLoan)
# Written by the close-of-business job, straight onto the ledger's command topic.
INTEREST_COMMANDS: tuple[type[Command], ...] = (CreditInterest,)
# The commands that move money, which the risk engine scores before the ledger sees them.
MONEY_MOVEMENTS: tuple[type[Deposit], type[Withdraw], type[Transfer], type[Payment]] = (
    Deposit, Withdraw, Transfer, Payment)
REVIEW_DECISIONS = ("approve", "reject")
COMMAND_TYPES: dict[str, type[Command]] = {
    c.__name__: c for c in CUSTOMER_COMMANDS + SAGA_COMMANDS + STAFF_COMMANDS + RAIL_COMMANDS + LOAN_COMMANDS
    + INTEREST_COMMANDS
}


def credit_step_id(transfer_id: str) -> str:
    return derive_id(transfer_id, "credit")


def reverse_step_id(transfer_id: str) -> str:
    return derive_id(transfer_id, "reverse")


def complete_step_id(transfer_id: str) -> str:
    return derive_id(transfer_id, "complete")


def review_command_id(case_id: str) -> str:
    """One decision per case: a second approve or reject of the same case is a duplicate."""
    return derive_id(case_id, "review")


def payment_outcome_id(payment_id: str, outcome: str) -> str:
    """One report per payment and outcome: the gateway's or the rail's retries are duplicates."""
    return derive_id(payment_id, "payment", outcome)


def inbound_payment_id(instruction_id: str) -> str:
    """The command id of an inbound credit: the rail's instruction id names it, so a redelivery credits once."""
    return derive_id("inbound-payment", instruction_id)
