"""The ledger's invariants, checked on the event log itself. Pure: events in, verdicts out.

The invariant tests (tests/) and `bank chaos` (cli/chaos/) both read the whole log and fold it here, with the
ledger's own `apply`, so there is one definition of "the books balance". Reading the log is the caller's job
(streams/ledger_log.py); so is dumping the read models (streams/projections/dumps.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core import events as e
from core.books import Books, customer_balances
from core.ledger import AccountState, CommandOutcome, apply

# The invariants by name, as `bank chaos` prints them.
MONEY = "the books balance"
SETTLED = "every debit has its credit or reversal"
UNIQUE = "no event id or posting twice"
OVERDRAFT = "no balance past its overdraft"
GAPLESS = "every account's history is gapless"
ANSWERED = "every answered command has its events"
AGREED = "answers agree with the log"
REBUILT = "read model equals a fresh rebuild"

MAX_PROBLEMS = 20   # problems listed per check; the count is always complete


@dataclass
class Check:
    """One invariant's verdict: what was counted, and every way it was broken."""

    name: str
    figures: str
    problems: list[str] = field(default_factory=list)
    broken: int = 0            # how many problems in all (problems keeps the first MAX_PROBLEMS)
    counts: dict[str, int] = field(default_factory=dict)   # the figures, for machines

    @property
    def held(self) -> bool:
        return self.broken == 0

    def fail(self, problem: str) -> None:
        self.broken += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "held": self.held, "figures": self.figures, "broken": self.broken,
                "problems": self.problems, "counts": self.counts}


@dataclass
class LedgerAudit:
    """What the log says, folded with the ledger's own `apply`.

    `violations` are broken invariants whatever the moment; `in_flight` are transfers debited but not yet
    credited or reversed, which is normal while the saga runs and a violation only once everything settled.
    `awaiting_completion` are transfers credited whose sender has not yet had its TransferCompleted: the money
    has arrived, but the sender's account still counts the transfer as outgoing. The log is `quiet` once both
    are empty: only then do read models built from it stop changing."""

    events: list[e.Event]
    accounts: dict[str, AccountState] = field(default_factory=dict)
    deposited: int = 0
    withdrawn: int = 0
    debited: dict[str, int] = field(default_factory=dict)          # transfer id -> amount
    settled: dict[str, list[str]] = field(default_factory=dict)    # transfer id -> its credit/reversal events
    in_flight: set[str] = field(default_factory=set)
    # Outbound payments: debited (payment id -> amount), their ends (settled or returned), those not ended yet
    # (in clearing: normal while the rail works, so never a violation by itself; `quiet` waits for them).
    payments: dict[str, int] = field(default_factory=dict)
    payment_ends: dict[str, list[str]] = field(default_factory=dict)
    payments_in_flight: set[str] = field(default_factory=set)
    awaiting_completion: set[str] = field(default_factory=set)
    checks: dict[str, Check] = field(default_factory=dict)
    books: Books = field(default_factory=Books)    # the bank's double-entry books, folded from the same events
    # True only where the embedded broker was restarted under load (bank chaos): its defect 7 may append a
    # producer's retried batch a second time (streams/broker_workarounds.py). Byte-for-byte identical copies of a
    # record are then counted, not failed; a second record under the same id that differs in anything (a
    # re-decision carries a new occurred_at) and a posting twice under two ids stay violations.
    identical_copies_allowed: bool = False

    def __post_init__(self) -> None:
        self.checks = {name: Check(name, "") for name in (UNIQUE, GAPLESS, OVERDRAFT, SETTLED, MONEY)}
        self._check_unique()
        self._fold()
        self._check_settled()
        self._check_money()

    @property
    def violations(self) -> list[str]:
        return [p for check in self.checks.values() for p in check.problems]

    @property
    def quiet(self) -> bool:
        """No saga step left to run: every debited transfer credited or reversed, every credited one completed, every
        payment settled or returned."""
        return not self.in_flight and not self.awaiting_completion and not self.payments_in_flight

    def outcome_command_ids(self) -> set[str]:
        return {ev.correlation_id for ev in self.events}

    def _check_unique(self) -> None:
        check = self.checks[UNIQUE]
        copies: defaultdict[str, list[e.Event]] = defaultdict(list)
        for ev in self.events:
            copies[ev.event_id].append(ev)
        identical = 0
        kept: list[e.Event] = []    # every record but the allowed identical copies
        for event_id, found in copies.items():
            if len(found) > 1 and self.identical_copies_allowed and all(other == found[0] for other in found[1:]):
                identical += len(found) - 1
                found = found[:1]
            elif len(found) > 1:
                check.fail(f"event id {event_id} appears {len(found)} times")
            kept += found
        # A posting twice under two ids would be a double posting that the id check cannot see.
        postings = Counter((ev.command_id, type(ev).__name__) for ev in kept if type(ev) in e.POSTING_SIGN)
        for (command_id, kind), n in postings.items():
            if n > 1:
                check.fail(f"command {command_id} posted {kind} {n} times")
        check.counts = {"events": len(self.events), "distinct_ids": len(copies), "postings": sum(postings.values()),
                        "identical_copies": identical}
        check.figures = (f"{len(self.events):,} events, {len(copies):,} distinct ids, {sum(postings.values()):,} "
                         f"postings" + (f", {identical:,} identical copies (broker defect 7)" if identical else ""))

    def _fold(self) -> None:
        settled: defaultdict[str, list[str]] = defaultdict(list)
        payment_ends: defaultdict[str, list[str]] = defaultdict(list)
        seen: set[str] = set()
        completed: set[str] = set()
        for ev in self.events:
            if ev.event_id in seen:
                continue   # a duplicate is UNIQUE's finding; readers dedupe by id, and so do the sums
            seen.add(ev.event_id)
            state = self._apply(ev)
            self.books.apply(ev)
            if state is not None:
                self.accounts[ev.account_id] = state
                if state.balance < -state.overdraft_limit:
                    self.checks[OVERDRAFT].fail(f"{ev.account_id} went to {state.balance} past its overdraft")
            if isinstance(ev, e.FundsDeposited):
                self.deposited += ev.amount
            elif isinstance(ev, e.FundsWithdrawn):
                self.withdrawn += ev.amount
            elif isinstance(ev, e.TransferDebited):
                self.debited[ev.transfer_id] = ev.amount
            elif isinstance(ev, (e.TransferCredited, e.TransferReversed)):
                settled[ev.transfer_id].append(type(ev).__name__)
            elif isinstance(ev, e.TransferCompleted):
                completed.add(ev.transfer_id)
            elif isinstance(ev, e.PaymentDebited):
                self.payments[ev.payment_id] = ev.amount
            elif isinstance(ev, (e.PaymentSettled, e.PaymentReturned)):
                payment_ends[ev.payment_id].append(type(ev).__name__)
        self.settled = dict(settled)
        self.payment_ends = dict(payment_ends)
        self.awaiting_completion = {transfer for transfer, ends in self.settled.items()
                                    if "TransferCredited" in ends and transfer not in completed}
        self.checks[OVERDRAFT].figures = f"{len(self.accounts):,} accounts"
        self.checks[GAPLESS].figures = (f"{len(self.accounts):,} accounts, last sequences add up to "
                                        f"{sum(a.sequence for a in self.accounts.values()):,}")

    def _apply(self, ev: e.Event) -> AccountState | None:
        """`apply`, except that a gap in an account's sequence (an event lost from the log) is a finding, not
        an error: it is recorded and the event folded anyway, so the money check shows what went missing."""
        state = self.accounts.get(ev.account_id)
        try:
            return apply(state, ev)
        except ValueError:
            assert state is not None  # apply raises only on a gap after the account's opening
            self.checks[GAPLESS].fail(f"{ev.account_id}: {type(ev).__name__} {ev.event_id} has sequence "
                                      f"{ev.sequence}, the account was at {state.sequence}")
            return apply(replace(state, sequence=ev.sequence - 1), ev)

    def _check_settled(self) -> None:
        check = self.checks[SETTLED]
        for transfer_id in self.debited:
            ends = self.settled.get(transfer_id, [])
            if not ends:
                self.in_flight.add(transfer_id)
            elif len(ends) > 1:
                check.fail(f"transfer {transfer_id} settled twice: {ends}")
        for transfer_id in sorted(set(self.settled) - set(self.debited)):
            check.fail(f"transfer {transfer_id} settled but never debited")
        endings = Counter(end for ends in self.settled.values() for end in ends)
        # A payment ends once, settled or returned: two ends would move its money twice.
        self.payments_in_flight = {p for p in self.payments if not self.payment_ends.get(p)}
        for payment_id, ends in sorted(self.payment_ends.items()):
            if payment_id not in self.payments:
                check.fail(f"payment {payment_id} ended ({ends}) but never debited")
            elif len(ends) > 1:
                check.fail(f"payment {payment_id} ended twice: {ends}")
        payment_endings = Counter(end for ends in self.payment_ends.values() for end in ends)
        check.counts = {"debited": len(self.debited), "credited": endings["TransferCredited"],
                        "reversed": endings["TransferReversed"], "in_flight": len(self.in_flight),
                        "payments": len(self.payments), "payments_settled": payment_endings["PaymentSettled"],
                        "payments_returned": payment_endings["PaymentReturned"],
                        "payments_in_flight": len(self.payments_in_flight)}
        check.figures = (f"{len(self.debited):,} transfers debited: {endings['TransferCredited']:,} credited, "
                         f"{endings['TransferReversed']:,} reversed, {len(self.in_flight):,} in flight; "
                         f"{len(self.payments):,} payments: {payment_endings['PaymentSettled']:,} settled, "
                         f"{payment_endings['PaymentReturned']:,} returned, {len(self.payments_in_flight):,} "
                         "in clearing")

    def _check_money(self) -> None:
        """The books balance: per currency the trial balance is zero, no ledger account breaks its constraint,
        and each customer account's balance in the books is the balance its events left it at (a lost or
        doubled posting shows here even though every event's legs balance)."""
        check = self.checks[MONEY]
        for currency in self.books.currencies:
            trial = self.books.trial_balance(currency)
            if trial.total:
                check.fail(f"the trial balance in {currency} is off by {trial.total} (debits {trial.debits} "
                           f"!= credits {trial.credits})")
            for violation in trial.violations:
                check.fail(f"constraint broken: {violation.describe()}")
        in_books = customer_balances(self.books)
        unreconciled = sorted(account for account, state in self.accounts.items()
                              if in_books.get(account, 0) != state.balance)
        for account in unreconciled:
            check.fail(f"{account}: the books hold {in_books.get(account, 0)}, its events left it at "
                       f"{self.accounts[account].balance}")
        self._money_figures(check, len(unreconciled))

    def _money_figures(self, check: Check, unreconciled: int) -> None:
        in_flight_money = sum(self.debited[t] for t in self.in_flight)
        total = sum(a.balance for a in self.accounts.values())
        currencies = self.books.currencies
        check.counts = {"balances": total, "in_flight": in_flight_money, "deposited": self.deposited,
                        "withdrawn": self.withdrawn, "currencies": len(currencies),
                        "ledger_accounts": len(self.books.balances),
                        "constraints_broken": len(self.books.violations()), "unreconciled": unreconciled}
        check.figures = (f"trial balance of {len(self.books.balances):,} ledger accounts in {len(currencies)} "
                         f"currencies; deposits {self.deposited:,} - withdrawals {self.withdrawn:,} = balances "
                         f"{total:,} + in flight {in_flight_money:,} (minor units)")

    def settled_checks(self) -> list[Check]:
        """The checks once nothing should be moving: a transfer still in flight is then a broken saga."""
        settled = replace(self.checks[SETTLED], problems=list(self.checks[SETTLED].problems))
        for transfer_id in sorted(self.in_flight):
            settled.fail(f"transfer {transfer_id} debited, never credited nor reversed")
        for payment_id in sorted(self.payments_in_flight):
            settled.fail(f"payment {payment_id} debited, never settled nor returned")
        return [settled if check.name == SETTLED else check for check in self.checks.values()]


# ---------------------------------------------------------------- what clients were told

# The command outcome an HTTP answer promises (`?wait=true`): 200/201 accepted, 422 rejected. A 202 is
# pending or held for review: any outcome may follow.
PROMISED = {200: "accepted", 201: "accepted", 422: "rejected"}


def outcomes(events: list[e.Event]) -> dict[str, CommandOutcome]:
    """Every customer command's outcome, folded like the API folds it (by correlation id)."""
    folded: dict[str, CommandOutcome] = {}
    for ev in events:
        folded.setdefault(ev.correlation_id, CommandOutcome(ev.correlation_id)).add(ev)
    return folded


def answered_checks(events: list[e.Event], answers: Mapping[str, int]) -> list[Check]:
    """`answers`: command id -> the HTTP status a client finally got for it (2xx, or a 4xx naming the command).

    Every such command must have events on the log, and what the client was told must be what the log says."""
    folded = outcomes(events)
    on_log = len(set(answers) & set(folded))
    has_events = Check(ANSWERED, f"{len(answers):,} commands answered, {on_log:,} on the log",
                       counts={"answered": len(answers), "on_log": on_log})
    agreed = Check(AGREED, "")
    compared = 0
    for command_id, code in sorted(answers.items()):
        outcome = folded.get(command_id)
        if outcome is None:
            has_events.fail(f"command {command_id} was answered {code} and has no event")
            continue
        promised = PROMISED.get(code)
        if promised is not None:
            compared += 1
            if outcome.status != promised:
                agreed.fail(f"command {command_id} was answered {code} ({promised}); the log says {outcome.status}")
    agreed.figures = f"{compared:,} final answers (200/201/422) compared with the log's outcome"
    agreed.counts = {"compared": compared}
    return [has_events, agreed]


# ---------------------------------------------------------------- read models

Dump = Mapping[str, Any]   # table / collection / key space name -> rows (a list) or entries (a dict)


def compare_models(name: str, live: Dump, rebuilt: Dump) -> Check:
    """A live read model against a fresh rebuild from offset 0: the same rows, table for table."""
    check = Check(f"{REBUILT}: {name}", ", ".join(f"{table} {len(rows):,}" for table, rows in live.items()),
                  counts={table: len(rows) for table, rows in live.items()})
    for table in sorted(set(live) | set(rebuilt)):
        for problem in _differences(f"{name}.{table}", live.get(table), rebuilt.get(table)):
            check.fail(problem)
    return check


def _differences(where: str, live: Any, rebuilt: Any) -> list[str]:
    if live == rebuilt:
        return []
    if isinstance(live, dict) and isinstance(rebuilt, dict):
        only_live, only_rebuilt = sorted(set(live) - set(rebuilt)), sorted(set(rebuilt) - set(live))
        changed = sorted(k for k in set(live) & set(rebuilt) if live[k] != rebuilt[k])
        return ([f"{where}: {k!r} only in the live model" for k in only_live]
                + [f"{where}: {k!r} only in the rebuild" for k in only_rebuilt]
                + [f"{where}: {k!r} is {_short(live[k])} live, {_short(rebuilt[k])} rebuilt" for k in changed])
    if isinstance(live, list) and isinstance(rebuilt, list):
        first = next((i for i, (a, b) in enumerate(zip(live, rebuilt, strict=False)) if a != b), None)
        at = (f"first difference at row {first}: {_short(live[first])} live, {_short(rebuilt[first])} rebuilt"
              if first is not None else "one is a prefix of the other")
        return [f"{where}: {len(live):,} rows live, {len(rebuilt):,} rebuilt; {at}"]
    return [f"{where}: {_short(live)} live, {_short(rebuilt)} rebuilt"]


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
