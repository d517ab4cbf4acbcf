"""The loan servicer: assesses applications, pays approved loans out, and collects instalments on their due dates.
It runs in the scheduler's process (`python -m streams.scheduler`): both are jobs of business time.

It folds bank.loans from the beginning (core.lending.LoanBook), and takes the ledger's events from the
scheduler's follower (loans disbursed and repaid, commands refused, and every customer's history for the credit
score, core/credit.py). Every BANK_SCHEDULER_INTERVAL (`tick`):

- an application not yet assessed: the customer's facts from the log and the credit bureau's report
  (infra/credit_bureau.py; the bureau down: tried again on the next tick) make a `LoanAssessed`;
- an approved loan not yet paid out: `DisburseLoan`, its command id derived from the loan id;
- an active loan with an instalment overdue (its due date passed unpaid) and no late fee yet: its late fee
  (`LoanLateFeeCharged`, once per instalment, its id derived from the loan and the instalment);
- an active loan whose interest is not accrued through the last closed business date (yesterday):
  `AccrueLoanInterest` for the dates since its last accrual (core.lending.accrual_due: what the loan earned by
  then less what is recognised), its command id derived from the loan and that date; one at a time per loan, the
  next once the ledger has decided the last, so each is computed on what the books hold. It goes before the day's
  collection, on the same partition, so a due instalment's interest is accrued when the repayment settles it;
- an active loan with an instalment due or overdue on the business date: `RepayLoan` (scheduled) for everything
  owed so far, its command id derived from the loan, the latest such instalment and the business date. Refused
  for insufficient funds, the loan is in arrears and the collection is tried again the next business day.

Exactly once, like the standing orders: ids are derived and the ledger takes a command id once, so a restart, a
second servicer or a replay sends the same commands; assessments are keyed by the loan (the fold keeps the first).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer, ConsumerRecord
from prometheus_client import Counter, Gauge

from core.commands import AccrueLoanInterest, Command, DisburseLoan, RepayLoan
from core.credit import CreditHistory, assess
from core.events import CommandRejected, Event, LoanInterestAccrued
from core.lending import (Loan, LoanAssessed, LoanBook, LoanLateFeeCharged, LoanPostings, LoanState, accrual_due,
                          collections_due, disbursement_command_id, late_fees_due, loan_event_id, loan_of,
                          repayment_parts, scheduled_repayment_command_id)
from core.loans import LoanError, schedule
from core.schedules import local_date
from core.settings import Settings
from core.topics import LEDGER_COMMANDS, LOANS
from infra.credit_bureau import BureauUnavailable, CreditBureau, UnknownSubject, credit_bureau_from
from infra.kafka import TopicFollower
from infra.topics import record_types
from schemas.codec import get_codec

log = logging.getLogger(__name__)

_DECLINED = ("rejected", "withdrawn", "offer_declined")
LOAN_COMMANDS_SENT = Counter("bank_loan_commands_total", "Loan commands the servicer sent to the ledger", ["type"])
ASSESSMENTS = Counter("bank_loan_assessments_total", "Loan applications assessed", ["recommendation"])
ACCRUALS_BEHIND = Gauge("bank_loans_accrual_behind",
                        "Active loans with interest earned by the last closed business date not yet on the books")


class LoanServicer:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.codec = get_codec()
        self.producer = producer
        self.book = LoanBook()
        self.postings = LoanPostings()
        self.history = CreditHistory()
        self.refused: dict[str, str] = {}          # loan command id -> the ledger's reason
        self.bureau: CreditBureau = credit_bureau_from(settings)
        self._types = record_types(LOANS)
        self._follower = TopicFollower(settings.kafka, LOANS, self._take_records)
        self._sent: set[str] = set()                # command ids sent since start (the ledger dedupes the rest)
        self._done: set[str] = set()                # loans closed or never to be paid out
        self._accruing: dict[str, str] = {}         # loan id -> its accrual command sent and not decided yet
        self._decided: set[str] = set()             # accrual command ids the ledger decided

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()
        await self.bureau.close()

    @property
    def caught_up(self) -> bool:
        return self._follower.caught_up.is_set()

    def _take_records(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            try:
                self.book.apply(self.codec.decode(record.value, record.headers, self._types))
            except ValueError as error:
                log.error("%s/%s/%s: skipped: %s", LOANS, record.partition, record.offset, error)

    def take_event(self, event: Event) -> None:
        """One ledger event, from the scheduler's follower."""
        self.postings.apply(event)
        self.history.apply(event)
        if isinstance(event, CommandRejected) and event.command_type in ("DisburseLoan", "RepayLoan",
                                                                         "AccrueLoanInterest"):
            self.refused.setdefault(event.command_id, event.reason)
        if isinstance(event, LoanInterestAccrued) or (isinstance(event, CommandRejected)
                                                      and event.command_type == "AccrueLoanInterest"):
            self._decided.add(event.command_id)

    # ------------------------------------------------------------ deciding

    async def tick(self, now: datetime) -> None:
        today = local_date(now, self.settings.customer_time_zone)
        behind = 0
        for state in list(self.book.loans.values()):
            if state.loan_id in self._done or state.decision_status in _DECLINED:
                continue   # nothing more to do for it, ever: not worth a fold each second
            try:
                behind += await self._serve(state, now, today)
            except LoanError as error:   # a loan whose product or terms no longer compute: staff must look
                log.error("loan %s cannot be served: %s", state.loan_id, error.detail)
        ACCRUALS_BEHIND.set(behind)

    async def _serve(self, state: LoanState, now: datetime, today: date) -> bool:
        """One loan's work for the tick; whether its interest accrual is behind."""
        disbursement = disbursement_command_id(state.loan_id)
        loan = loan_of(state, self.book, self.postings, today, disbursement in self.refused)
        if loan.status in ("closed", "disbursement_failed", "written_off"):
            self._done.add(state.loan_id)
        if loan.status == "assessing":
            await self._assess(state, now)
        elif loan.status == "approved":
            await self._disburse(state, now, today)
        elif loan.status == "active":
            behind = await self._accrue(loan, today, now)   # first: a due instalment's interest is then accrued
            await self._collect(loan, now, today)
            return behind
        return False

    async def _collect(self, loan: Loan, now: datetime, today: date) -> None:
        """Late fees for instalments newly overdue, then what is due or overdue today."""
        state = loan.state
        if charges := late_fees_due(loan, self.book, now):
            for charge in charges:
                await self._record(charge)
            loan = loan_of(state, self.book, self.postings, today)
        for instalment, owed in collections_due(loan):
            command_id = scheduled_repayment_command_id(state.loan_id, instalment.number, today)
            parts = repayment_parts(loan, owed)
            await self._send(RepayLoan(
                command_id=command_id, account_id=state.application.account_id, issued_at=now,
                correlation_id=command_id, loan_id=state.loan_id, amount=owed,
                currency=state.application.currency, principal=parts.principal, interest=parts.interest,
                fees=parts.fees, kind="scheduled", paid_on=today.isoformat()))

    async def _accrue(self, loan: Loan, today: date, now: datetime) -> bool:
        """Send the loan's accrual through yesterday, if any is due; whether one was due."""
        loan_id = loan.state.loan_id
        if (pending := self._accruing.get(loan_id)) is not None and pending not in self._decided:
            return True   # the last accrual is not on the books yet: the next one is computed from them
        accrual = accrual_due(loan, today - timedelta(days=1))
        if accrual is None:
            return False
        application = loan.state.application
        await self._send(AccrueLoanInterest(
            command_id=accrual.command_id, account_id=application.account_id, issued_at=now,
            correlation_id=accrual.command_id, loan_id=loan_id, amount=accrual.amount, currency=application.currency,
            from_date=accrual.from_date.isoformat(), through_date=accrual.through_date.isoformat()))
        self._accruing[loan_id] = accrual.command_id
        return True

    async def _assess(self, state: LoanState, now: datetime) -> None:
        application = state.application
        try:
            report = await self.bureau.report(application.customer_id)
            bureau_score, defaults, report_id = report.score, report.defaults, report.report_id
        except UnknownSubject:
            bureau_score, defaults, report_id = None, 0, None
        except BureauUnavailable as error:
            log.warning("credit bureau unavailable for loan %s: %s; trying again", state.loan_id, error)
            return
        today = local_date(now, self.settings.customer_time_zone)
        arrears = sum(1 for other in self.book.loans.values()
                      if other.application.customer_id == application.customer_id and other is not state
                      and loan_of(other, self.book, self.postings, today).days_past_due > 0)
        score = assess(self.history.facts(application.customer_id), _instalment_of(state, self.book, today),
                       bureau_score, defaults, arrears)
        record = LoanAssessed(event_id=loan_event_id(state.loan_id, "assessed"), loan_id=state.loan_id,
                              score=score.score, recommendation=score.recommendation, reasons=score.reasons,
                              inputs=score.inputs, bureau_score=bureau_score, bureau_report_id=report_id,
                              assessed_at=now)
        await self._record(record)
        ASSESSMENTS.labels(score.recommendation).inc()
        log.info("loan %s assessed: %s (%s)", state.loan_id, score.score, score.recommendation,
                 extra={"loan_id": state.loan_id})

    async def _record(self, record: LoanAssessed | LoanLateFeeCharged) -> None:
        value, headers = self.codec.encode(record)
        await self.producer.send_and_wait(LOANS, value, key=record.loan_id.encode(), headers=headers)
        self.book.apply(record)   # read our own write: the next tick must not write it again

    async def _disburse(self, state: LoanState, now: datetime, today: date) -> None:
        terms = state.terms
        product = self.book.product(state.application.product_id, state.application.product_version)
        if terms is None or product is None:
            return
        calculation = product.product(Decimal(terms.annual_rate_percent))
        fee = calculation.origination_fee.amount(terms.amount) if product.origination_fee_on == "disbursement" else 0
        command_id = disbursement_command_id(state.loan_id)
        await self._send(DisburseLoan(command_id=command_id, account_id=state.application.account_id,
                                      issued_at=now,
                                      correlation_id=command_id, loan_id=state.loan_id, principal=terms.amount,
                                      fee=fee, currency=state.application.currency, disbursed_on=today.isoformat()))

    async def _send(self, command: Command) -> None:
        if command.command_id in self._sent or command.command_id in self.refused:
            return
        value, headers = self.codec.encode(command)
        await self.producer.send_and_wait(LEDGER_COMMANDS, value, key=command.account_id.encode(), headers=headers)
        self._sent.add(command.command_id)
        LOAN_COMMANDS_SENT.labels(type(command).__name__).inc()
        log.info("loan %s: %s sent", getattr(command, "loan_id", "?"), type(command).__name__,
                 extra={"command_id": command.command_id})


def _instalment_of(state: LoanState, book: LoanBook, today: date) -> int:
    """The regular instalment the application would pay (its product at the rate in force today)."""
    product = book.product(state.application.product_id, state.application.product_version)
    if product is None:
        return 0
    rate = product.rate_schedule.rate_on(today)
    plan = schedule(product.product(rate), state.application.amount, state.application.term, today,
                    annual_rate_percent=rate)
    return plan.instalments[0].total_minor
