"""The close-of-business job: savings interest accrued per account per business date, credited monthly. It runs
in the scheduler's process (`python -m streams.scheduler`), on its ticks and its ledger follower.

It folds bank.interest from the beginning (core.savings.SavingsBook: products, enrolled accounts, where each
account's accrual stands) and keeps each account's balance from the ledger's events. Every tick, once business time
has passed a date's end, it closes the date for every enrolled account (`core.savings.close_dates`): an
`InterestAccrued` per account-date, in date order, at most DATES_PER_TICK a tick; then each month fully accrued is
credited by a `CreditInterest` ledger command.

Exactly once, by construction: an accrual's id derives from the account and the date and the fold takes a date
only after the one before it, so a job killed mid-run and restarted (or a second one) writes records readers
already have and accrues nothing twice; a month's credit's command id derives from the account and the month,
and the ledger takes a command id once. The balance a date accrues on includes interest credited but not yet
posted by the ledger, so compounding does not depend on how fast the ledger answers.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from aiokafka import AIOKafkaProducer, ConsumerRecord
from prometheus_client import Counter, Gauge

from core.commands import CreditInterest
from core.events import CommandRejected, Event, InterestCredited
from core.savings import Capitalisation, InterestAccrued, SavingsBook, close_dates, due_capitalisations
from core.schedules import local_date
from core.settings import Settings
from core.topics import INTEREST, LEDGER_COMMANDS
from infra.kafka import TopicFollower
from infra.topics import record_types
from schemas.codec import get_codec

log = logging.getLogger(__name__)

ACCRUALS = Counter("bank_cob_accruals_total", "Account-dates the close-of-business job accrued")
CREDITS = Counter("bank_cob_interest_credits_total", "Monthly interest credits the job sent to the ledger")
BEHIND = Gauge("bank_cob_accounts_behind", "Enrolled accounts whose accrual is behind the last closed business date")


class CloseOfBusiness:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.codec = get_codec()
        self.producer = producer
        self.book = SavingsBook()
        self.balances: dict[str, int] = {}          # account id -> balance, from the ledger's events
        self.currencies: dict[str, str] = {}
        self.posted: set[str] = set()               # CreditInterest command ids the ledger decided (posted or not)
        self._sent: set[str] = set()
        self._types = record_types(INTEREST)
        self._follower = TopicFollower(settings.kafka, INTEREST, self._take_records)

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

    @property
    def caught_up(self) -> bool:
        return self._follower.caught_up.is_set()

    def _take_records(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            try:
                self.book.apply(self.codec.decode(record.value, record.headers, self._types))
            except ValueError as error:
                log.error("%s/%s/%s: skipped: %s", INTEREST, record.partition, record.offset, error)

    def take_event(self, event: Event) -> None:
        """One ledger event, from the scheduler's follower."""
        balance = getattr(event, "balance_after", None)
        if balance is not None:
            self.balances[event.account_id] = balance
        currency = getattr(event, "currency", None)
        if currency is not None:
            self.currencies.setdefault(event.account_id, currency)
        if isinstance(event, InterestCredited) or (isinstance(event, CommandRejected)
                                                   and event.command_type == "CreditInterest"):
            self.posted.add(event.command_id)

    # ------------------------------------------------------------ deciding

    async def tick(self, now: datetime) -> None:
        through = local_date(now, self.settings.customer_time_zone) - timedelta(days=1)
        behind = 0
        for account_id, account in list(self.book.accounts.items()):
            if account.next_date <= through:
                await self._close(account_id, through, now)
                behind += self.book.accounts[account_id].next_date <= through
            currency = self.currencies.get(account_id)
            if currency is not None:
                for credit in due_capitalisations(self.book, account_id, currency):
                    await self._credit(credit, now)
        BEHIND.set(behind)

    def _unposted(self, account_id: str) -> int:
        currency = self.currencies.get(account_id, "")
        return sum(credit.amount for credit in due_capitalisations(self.book, account_id, currency)
                   if credit.command_id not in self.posted)

    async def _close(self, account_id: str, through: date, now: datetime) -> None:
        balance = self.balances.get(account_id, 0) + self._unposted(account_id)
        close = close_dates(self.book, account_id, balance, through, now)
        sends = []
        for accrual in close.accruals:
            value, headers = self.codec.encode(accrual)
            sends.append(await self.producer.send(INTEREST, value, key=account_id.encode(), headers=headers))
        for sent in sends:
            await sent
        for accrual in close.accruals:
            self.book.apply(accrual)   # read our own writes: the next tick goes on from here
        ACCRUALS.inc(len(close.accruals))
        if close.accruals:
            last: InterestAccrued = close.accruals[-1]
            log.info("close of business: %s accrued %s date(s) through %s", account_id, len(close.accruals),
                     last.accrual_date, extra={"account_id": account_id})

    async def _credit(self, credit: Capitalisation, now: datetime) -> None:
        if credit.command_id in self.posted or credit.command_id in self._sent:
            return
        command = CreditInterest(command_id=credit.command_id, account_id=credit.account_id, issued_at=now,
                                 correlation_id=credit.command_id, amount=credit.amount, currency=credit.currency,
                                 period=credit.month)
        value, headers = self.codec.encode(command)
        await self.producer.send_and_wait(LEDGER_COMMANDS, value, key=credit.account_id.encode(), headers=headers)
        self._sent.add(credit.command_id)
        CREDITS.inc()
        log.info("interest for %s credited to %s: %s", credit.month, credit.account_id, credit.amount,
                 extra={"account_id": credit.account_id, "command_id": credit.command_id})
