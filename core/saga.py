"""The transfer saga's rule, pure: which command follows which event of a transfer.

TransferDebited      (source)      -> CreditTransfer   to the destination
TransferCredited     (destination) -> CompleteTransfer to the source
TransferCreditFailed (destination) -> ReverseTransfer  to the source (compensation)

Steps have ids derived from the transfer id (core.commands.*_step_id), so an event redelivered after a crash
yields the same step, which the ledger then ignores as a duplicate. streams/saga.py drives it on the event log;
when both accounts of a transfer are on one partition, the ledger decides the steps itself, in the batch that
debits the source (`steps_here`), and the saga sends none it finds decided beside the event before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from core import commands as c
from core import events as e

# The event types that have a next step, and those that end a transfer.
STEP_EVENTS = frozenset({"TransferDebited", "TransferCredited", "TransferCreditFailed"})
TRANSFER_ENDS = frozenset({"TransferCompleted", "TransferReversed"})


def next_step(event: e.Event, now: datetime) -> c.Command | None:
    """The command that follows `event` in its transfer, issued at `now`; None when nothing follows."""
    if isinstance(event, e.TransferDebited):
        return c.CreditTransfer(command_id=c.credit_step_id(event.transfer_id), account_id=event.to_account_id,
                                issued_at=now, correlation_id=event.correlation_id, transfer_id=event.transfer_id,
                                from_account_id=event.account_id, amount=event.amount, currency=event.currency,
                                reference=event.reference, exchange=event.exchange)
    if isinstance(event, e.TransferCredited):
        return c.CompleteTransfer(command_id=c.complete_step_id(event.transfer_id), account_id=event.from_account_id,
                                  issued_at=now, correlation_id=event.correlation_id,
                                  transfer_id=event.transfer_id, to_account_id=event.account_id)
    if isinstance(event, e.TransferCreditFailed):
        return c.ReverseTransfer(command_id=c.reverse_step_id(event.transfer_id), account_id=event.from_account_id,
                                 issued_at=now, correlation_id=event.correlation_id,
                                 transfer_id=event.transfer_id, to_account_id=event.account_id,
                                 amount=event.amount, currency=event.currency, reason=event.reason)
    return None


def step_account(event: e.Event) -> str | None:
    """The account the next step of `event` goes to (None: nothing follows), without building the step."""
    if isinstance(event, e.TransferDebited):
        return event.to_account_id
    if isinstance(event, (e.TransferCredited, e.TransferCreditFailed)):
        return event.from_account_id
    return None


def steps_here(events: Iterable[e.Event], now: datetime, is_here: Callable[[str], bool]) -> list[c.Command]:
    """The next steps of `events` whose account `is_here` (on the partition that decided them): deciding them at
    once settles a transfer between two accounts of one partition in one step, without a trip through the log.
    Their ids are the steps' own, so a step the saga sends as well is a duplicate the ledger ignores."""
    return [step for event in events
            if (account := step_account(event)) is not None and is_here(account)
            and (step := next_step(event, now)) is not None]
