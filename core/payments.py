"""External payments (issue 14 points 6 and 7), pure: the instruction handed to the payment rail, ISO 20022 reason
codes, and a payment's status as folded from the ledger's events.

The lifecycle of an outbound payment (every arrow an event on bank.ledger.events, decided by the ledger):

    Payment ──▶ PaymentDebited (customer → clearing) ──▶ PaymentInstruction on bank.payments.outbound
                     status: pending                        │  (the transfer saga writes it)
                                                            ▼
                                          gateway connector ──▶ rail adapter ──▶ the rail
                                                            │
                     PaymentSent  ◀── RecordPaymentOutcome(sent)
                     status: sent                           │  (the rail's notification, later)
                                                            ▼
          PaymentSettled (clearing → settlement)  or  PaymentReturned (clearing → customer, reason code)
                     status: settled                          status: returned

An inbound credit: the rail calls the bank; ReceivePayment ──▶ PaymentReceived (settlement → customer), or a
rejection, which the bank answers to the rail as a return with the reason code of `inbound_return_code`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core import events as e

# ISO 20022 (ExternalReturnReason1Code) codes the bank and its simulator use.
REASON_CODES: dict[str, str] = {
    "AC01": "incorrect account number",
    "AC04": "closed account number",
    "AC06": "blocked account",
    "AG01": "transaction forbidden",
    "AM03": "currency not allowed",
    "AM04": "insufficient funds",
    "AM05": "duplication",
    "MS02": "not specified reason, customer generated",
    "MS03": "not specified reason, agent generated",
    "RR04": "regulatory reason",
}

# Why the ledger refused an inbound credit -> the return reason the rail is told.
_INBOUND_RETURN_CODES = {
    "unknown_account": "AC01",
    "account_closed": "AC04",
    "account_frozen": "AC06",
    "currency_mismatch": "AM03",
    "blocked_by_risk": "RR04",
}


def inbound_return_code(rejection_reason: str | None) -> str:
    """The ISO 20022 reason code an inbound credit refused for `rejection_reason` is returned with."""
    return _INBOUND_RETURN_CODES.get(rejection_reason or "", "MS03")


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentInstruction:
    """What the bank asks the payment rail to do: pay `amount` from the debtor account to the creditor. Keyed by
    the instruction id, which is the payment id: the connector and the rail deduplicate by it."""

    instruction_id: str
    account_id: str              # the debtor account (ours)
    amount: int
    currency: str
    creditor_iban: str
    creditor_name: str
    creditor_bic: str | None
    remittance_information: str | None
    created_at: datetime


PAYMENT_TYPES: dict[str, type] = {"PaymentInstruction": PaymentInstruction}


def instruction_of(event: e.Event) -> PaymentInstruction | None:
    """The instruction a PaymentDebited asks for; None for any other event (a pure policy, run by the saga)."""
    if not isinstance(event, e.PaymentDebited):
        return None
    return PaymentInstruction(instruction_id=event.payment_id, account_id=event.account_id, amount=event.amount,
                              currency=event.currency, creditor_iban=event.creditor_iban,
                              creditor_name=event.creditor_name, creditor_bic=event.creditor_bic,
                              remittance_information=event.remittance_information, created_at=event.occurred_at)


# ---------------------------------------------------------------- a payment's status

PaymentStatus = Literal["pending", "sent", "settled", "returned"]
_RANK: dict[PaymentStatus, int] = {"pending": 0, "sent": 1, "settled": 2, "returned": 2}
PAYMENT_EVENTS = (e.PaymentDebited, e.PaymentSent, e.PaymentSettled, e.PaymentReturned)


@dataclass(slots=True)
class PaymentRecord:
    """An outbound payment as its events tell it. Statuses only move forward: the rail's settlement may reach the
    log before the gateway's `sent` report (two writers), which then changes nothing."""

    payment_id: str
    account_id: str
    amount: int
    currency: str
    creditor_iban: str
    creditor_name: str
    creditor_bic: str | None
    remittance_information: str | None
    created_at: datetime
    status: PaymentStatus = "pending"
    reason_code: str | None = None
    rail_reference: str | None = None
    updated_at: datetime | None = None

    def advance(self, event: e.Event) -> None:
        status: PaymentStatus | None = None
        if isinstance(event, e.PaymentSent):
            status = "sent"
        elif isinstance(event, e.PaymentSettled):
            status = "settled"
        elif isinstance(event, e.PaymentReturned):
            status, self.reason_code = "returned", event.reason_code
        if status is None or _RANK[status] < _RANK[self.status] or self.status in ("settled", "returned"):
            return
        self.status, self.updated_at = status, event.occurred_at
        self.rail_reference = getattr(event, "rail_reference", None) or self.rail_reference


def fold_payment(payments: dict[str, PaymentRecord], event: e.Event) -> None:
    """Fold one ledger event into the payments by id (idempotent: a redelivered event changes nothing)."""
    if isinstance(event, e.PaymentDebited):
        payments.setdefault(event.payment_id, PaymentRecord(
            payment_id=event.payment_id, account_id=event.account_id, amount=event.amount, currency=event.currency,
            creditor_iban=event.creditor_iban, creditor_name=event.creditor_name, creditor_bic=event.creditor_bic,
            remittance_information=event.remittance_information, created_at=event.occurred_at,
            updated_at=event.occurred_at))
    elif isinstance(event, PAYMENT_EVENTS):
        found = payments.get(event.payment_id)
        if found is not None:
            found.advance(event)
