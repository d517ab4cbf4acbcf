"""A customer's payment history, pure: every outbound payment to another bank and every standing-order payment, as
one list, newest first, with filters, cursor pages and a confirmation number a person can quote on the phone.

Entries come from two folds the API keeps (core.payments.PaymentRecord, core.standing_orders.OrderState); nothing
here reads the log. A standing-order payment is dated by its due moment (local midnight of its due date in the
order's time zone), an external payment by the moment the ledger took it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.payments import REASON_CODES, PaymentRecord
from core.schedules import due_at
from core.standing_orders import OrderState

PaymentType = Literal["external", "standing_order"]
PAYMENT_TYPES: tuple[PaymentType, ...] = ("external", "standing_order")


class CursorError(ValueError):
    """A cursor this module did not write."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    payment_id: str                 # the payment's id, or the standing-order occurrence's
    type: PaymentType
    account_id: str
    amount: int
    currency: str
    status: str
    created_at: datetime
    to_account_id: str | None = None
    creditor_iban: str | None = None
    creditor_name: str | None = None
    reference: str | None = None
    reason: str | None = None
    standing_order_id: str | None = None

    @property
    def confirmation(self) -> str:
        return confirmation_number(self.payment_id)

    @property
    def sort_key(self) -> tuple[datetime, str]:
        return self.created_at, self.payment_id


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    status: str | None = None
    type: PaymentType | None = None
    account_ids: frozenset[str] | None = None       # None: any
    to_account_id: str | None = None                # a payee of ours
    creditor_iban: str | None = None                # a payee at another bank
    since: datetime | None = None                   # inclusive
    until: datetime | None = None                   # exclusive

    def admits(self, entry: HistoryEntry) -> bool:
        return ((self.status is None or entry.status == self.status)
                and (self.type is None or entry.type == self.type)
                and (self.account_ids is None or entry.account_id in self.account_ids)
                and (self.to_account_id is None or entry.to_account_id == self.to_account_id)
                and (self.creditor_iban is None or entry.creditor_iban == self.creditor_iban)
                and (self.since is None or entry.created_at >= self.since)
                and (self.until is None or entry.created_at < self.until))


def confirmation_number(payment_id: str) -> str:
    """Ten characters from the payment's id, in two groups (`PX7K2-M9QRT`): the same payment always has the same one.
    Crockford's base32 alphabet: no I, L, O or U to misread."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    number = int.from_bytes(hashlib.sha256(payment_id.encode()).digest()[:8], "big")
    characters = "".join(alphabet[(number >> (5 * i)) & 31] for i in range(10))
    return f"{characters[:5]}-{characters[5:]}"


def external_entry(record: PaymentRecord) -> HistoryEntry:
    return HistoryEntry(payment_id=record.payment_id, type="external", account_id=record.account_id,
                        amount=record.amount, currency=record.currency, status=record.status,
                        created_at=record.created_at, creditor_iban=record.creditor_iban,
                        creditor_name=record.creditor_name, reference=record.remittance_information,
                        reason=REASON_CODES.get(record.reason_code or ""))


def standing_order_entries(order: OrderState) -> list[HistoryEntry]:
    definition = order.definition
    return [HistoryEntry(payment_id=occurrence.occurrence_id, type="standing_order",
                         account_id=definition.from_account_id, amount=occurrence.amount,
                         currency=definition.currency, status=occurrence.status,
                         created_at=due_at(occurrence.due_date, definition.time_zone),
                         to_account_id=definition.to_account_id, reference=definition.reference,
                         reason=occurrence.reason, standing_order_id=definition.order_id)
            for occurrence in order.occurrences.values()]


def encode_cursor(entry: HistoryEntry) -> str:
    text = f"{entry.created_at.isoformat()}|{entry.payment_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, payment_id = text.split("|", 1)
        return datetime.fromisoformat(moment), payment_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise CursorError("cursor: not one this API gave") from error


def page(entries: Iterable[HistoryEntry], where: HistoryFilter, limit: int,
         cursor: str | None = None) -> tuple[list[HistoryEntry], str | None]:
    """Newest first: the entries after `cursor` that `where` admits, at most `limit`, and the next page's cursor."""
    after = decode_cursor(cursor) if cursor else None
    admitted = sorted((entry for entry in entries if where.admits(entry)), key=lambda entry: entry.sort_key,
                      reverse=True)
    if after is not None:
        admitted = [entry for entry in admitted if entry.sort_key < after]
    shown = admitted[:limit]
    more = len(admitted) > limit
    return shown, encode_cursor(shown[-1]) if more and shown else None
