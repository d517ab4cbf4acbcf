"""The API's read models of loans (bank.loans) and savings interest (bank.interest), folded in memory by every
instance (api/record_desk.py). The money side (disbursements, repayments, interest credited) is the ledger view's."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from api.record_desk import RecordDesk
from core.lending import LoanBook, LoanProductSet
from core.savings import SavingsBook, SavingsProductSet
from core.topics import INTEREST, LOANS

LoanDesk = RecordDesk[LoanBook]
SavingsDesk = RecordDesk[SavingsBook]


def _loan_key(record: Any) -> str:
    return str(record.product_id if isinstance(record, LoanProductSet) else record.loan_id)


def _interest_key(record: Any) -> str:
    return str(record.product_id if isinstance(record, SavingsProductSet) else record.account_id)


def loan_desk(bootstrap: str, producer: AIOKafkaProducer) -> LoanDesk:
    return RecordDesk(bootstrap, producer, LOANS, LoanBook(), _loan_key)


def savings_desk(bootstrap: str, producer: AIOKafkaProducer) -> SavingsDesk:
    return RecordDesk(bootstrap, producer, INTEREST, SavingsBook(), _interest_key)
