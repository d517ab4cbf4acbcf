"""The API's view of the ledger: it follows the event log and folds it with core.ledger.apply.

It answers "does this account exist", "what did this command come to" and "where in the log are its
events" (the position a client passes as `?min_position=` to read its own write from a read model), and
wakes requests waiting for a command's outcome (`?wait=true`). It also knows the head of the log, against
which query responses report their read model's lag. Queries themselves are served by the read models.

A record it cannot take (unreadable, of a type the log does not carry, an event that does not fold) is logged
and skipped: one bad record must not stop the view, and with it every `?wait=true`. Should the follower die all
the same, `failure` says why and /readyz reports the API not ready.

It also folds every outbound payment's status (core.payments.PaymentRecord): GET /v1/payments/{id} reads it
here, eventually consistent like every read model, and the rail's notifications find the debtor account here.

It also indexes every account by its national account number (core/account_numbers.py): the API shows an
account's number and IBAN from here, and resolves an IBAN to an account here, the same view that answers
"does this account exist" for commands and ownership checks. The read models do not store numbers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime

from aiokafka import ConsumerRecord

from core import ledger
from core.drawers import Drawers
from core.account_numbers import AccountNumbering, Iban
from core.events import AccountClosed, AccountOpened, Event, FundsDeposited, TransferCredited
from core.lending import LoanPostings
from core.payments import PaymentRecord, fold_payment
from core.readmodel import Positions, format_positions
from core.topics import LEDGER_EVENTS
from infra.kafka import TopicFollower
from infra.topics import record_types
from schemas.codec import DecodeError, get_codec

log = logging.getLogger(__name__)
# BANK_FAILPOINT for the tests of /readyz: the follower raises on the first records it reads after catching up
# (never set in production).
FOLLOWER_FAILPOINT = "ledger_view_follow"


class LedgerView:
    def __init__(self, bootstrap: str, numbering: AccountNumbering, failpoint: str | None = None) -> None:
        # Committed data only (the follower's default): after exactly_once traffic the log also holds aborted records.
        self._follower = TopicFollower(bootstrap, LEDGER_EVENTS, self._handle, on_caught_up=self._log_caught_up)
        self._codec = get_codec()
        self._event_types = record_types(LEDGER_EVENTS)
        self._failpoint = failpoint == FOLLOWER_FAILPOINT
        self.accounts: dict[str, ledger.AccountState] = {}
        self.outcomes: dict[str, ledger.CommandOutcome] = {}
        self.outcome_positions: dict[str, Positions] = {}  # command id -> where its events are in the log
        self.positions: Positions = self._follower.positions  # partition -> next offset: the head of the log here
        self.caught_up = self._follower.caught_up   # set once the log as it was at start-up is folded
        self._waiters: dict[str, list[asyncio.Event]] = defaultdict(list)
        self.numbering = numbering
        self.account_numbers: dict[str, str] = {}      # account id -> its national account number
        self._by_number: dict[str, str | None] = {}    # number -> account id; None: shared (see account_for_iban)
        # Outbound payments by id, folded from their events (core/payments.py): GET /v1/payments/{id}, and the
        # debtor account a rail notification is keyed by.
        self.payments: dict[str, PaymentRecord] = {}
        self.drawers = Drawers()                        # tellers' cash drawers (core/drawers.py)
        self.loan_postings = LoanPostings()             # loans disbursed and repaid, by loan id (core/lending.py)
        self.received: dict[str, int] = {}             # account id -> money credited to it (deposits, transfers in)
        self.closed_at: dict[str, datetime] = {}       # account id -> when it was closed (erasure's retention)

    async def start(self) -> None:
        await self._follower.start()

    async def end_offsets(self) -> Positions:
        """The log's end per partition, from the broker (committed data: the last stable offsets)."""
        return await self._follower.end_offsets()

    @property
    def failure(self) -> str | None:
        """Why the follower stopped, if it has: the view no longer moves, so the API is not ready."""
        return self._follower.failure

    async def stop(self) -> None:
        await self._follower.stop()

    def _log_caught_up(self) -> None:
        """Operators (and `bank chaos`) see what a (re)started API knew when it began to answer."""
        log.info("ledger view caught up: %s accounts, %s commands; log ends %s, read up to %s",
                 len(self.accounts), len(self.outcomes), format_positions(self._follower.start_ends),
                 format_positions(self.positions))

    def _handle(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        if self._failpoint and self.caught_up.is_set():
            raise RuntimeError(f"failpoint {FOLLOWER_FAILPOINT} reached")
        for record in records:
            self._take(record)

    def _take(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            event = self._codec.decode(record.value, record.headers, self._event_types)
            self.apply(event)
        except DecodeError as error:  # unreadable, or not a ledger event: skip, loudly
            log.error("cannot read event %s/%s/%s: %s", record.topic, record.partition, record.offset, error)
            return
        except Exception:  # noqa: BLE001 - an event that does not fold must not stop the view
            log.exception("cannot apply event %s/%s/%s", record.topic, record.partition, record.offset)
            return
        positions = self.outcome_positions.setdefault(event.correlation_id, {})
        positions[record.partition] = max(positions.get(record.partition, 0), record.offset + 1)

    def apply(self, event: Event) -> None:
        if isinstance(event, AccountOpened) and event.account_id not in self.account_numbers:
            self._number(event)
        self.drawers.apply(event)
        old_state = self.accounts.get(event.account_id)
        new_state = ledger.apply(old_state, event)
        if (isinstance(event, FundsDeposited | TransferCredited) and new_state is not None
                and new_state.sequence > (old_state.sequence if old_state else 0)):   # not a redelivery
            self.received[event.account_id] = self.received.get(event.account_id, 0) + event.amount
        if isinstance(event, AccountClosed):
            self.closed_at.setdefault(event.account_id, event.occurred_at)
        if new_state is not None:
            self.accounts[event.account_id] = new_state
        fold_payment(self.payments, event)
        self.loan_postings.apply(event)
        outcome = self.outcomes.get(event.correlation_id)
        if outcome is None:
            outcome = self.outcomes[event.correlation_id] = ledger.CommandOutcome(event.correlation_id)
        outcome.add(event)
        if outcome.status != "pending":
            for waiter in self._waiters.pop(event.correlation_id, []):
                waiter.set()

    def _number(self, event: AccountOpened) -> None:
        number = event.account_number or self.numbering.legacy_number(event.account_id)
        self.account_numbers[event.account_id] = number
        if number in self._by_number:
            # Allocation never repeats a number; a derived one (an opening without a number) may. Resolving it
            # would send money to one of two accounts: refuse it instead (account_for_iban answers None).
            log.error("account number %s is shared by accounts %s and %s: it resolves to neither",
                      number, self._by_number[number], event.account_id)
            self._by_number[number] = None
        else:
            self._by_number[number] = event.account_id

    def number_taken(self, number: str) -> bool:
        return number in self._by_number

    def iban_of(self, account_id: str) -> Iban | None:
        """The account's IBAN, once this view has read its opening."""
        number = self.account_numbers.get(account_id)
        return self.numbering.iban(number) if number is not None else None

    def account_for_iban(self, iban: Iban) -> ledger.AccountState | None:
        """The account of one of our IBANs (None for another bank's, an unknown number or a shared one)."""
        if not self.numbering.is_ours(iban):
            return None
        account_id = self._by_number.get(iban.account_number)
        return self.accounts.get(account_id) if account_id is not None else None

    async def reach(self, positions: Positions, timeout_s: float) -> bool:
        """Whether this view has read the log up to `positions` (waiting up to the timeout): then it knows every
        account a read model at those positions shows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not all(self.positions.get(p, 0) >= o for p, o in positions.items()):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def wait_for_outcome(self, command_id: str, timeout_s: float) -> ledger.CommandOutcome | None:
        """The command's outcome once it is final, or None if it is still pending after the timeout."""
        outcome = self.outcomes.get(command_id)
        if outcome is not None and outcome.status != "pending":
            return outcome
        waiter = asyncio.Event()
        self._waiters[command_id].append(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), timeout_s)
        except TimeoutError:
            return None
        finally:
            if waiter in self._waiters.get(command_id, []):
                self._waiters[command_id].remove(waiter)
        return self.outcomes.get(command_id)
