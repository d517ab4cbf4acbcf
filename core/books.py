"""The bank's double-entry books, derived from the ledger's events. Pure: events in, legs and balances out.

Every money-moving event on bank.ledger.events is read as balanced legs (debit and credit, a ledger account, an
amount in minor units, a currency): per currency, debits equal credits in every event, so the books balance at
every offset of the log, a transfer in flight sitting in `transit` meanwhile. The legs are *derived* from the
events (`legs_of`); the events and their Avro schemas are unchanged. This is the step before events carry their
legs themselves (issue 14): the derivation is then what the ledger writes.

The chart of accounts, per currency (an account id names no currency: `transit` in EUR and in USD are two
ledger accounts, and every balance is kept per (id, currency)):

| id                    | type      | normal | constraint                                                    |
|-----------------------|-----------|--------|---------------------------------------------------------------|
| `cash:vault`          | asset     | debit  | the bank's cash (vault and drawers together) never below zero |
| `cash:<staff id>`     | asset     | debit  | (the same: counted with the vault)                            |
| `clearing`            | asset     | debit  | none: settlement with the payment rail and card schemes       |
| `settlement`          | asset     | debit  | none: the bank's settlement account at the payment rail       |
| `transit`             | liability | credit | never negative: transfers debited, not yet credited/reversed  |
| `suspense`            | asset     | debit  | none: entries whose other side is not known, to be cleared    |
| `loans`               | asset     | debit  | never negative                                                |
| `interest-receivable` | asset     | debit  | never negative: loans' interest accrued, not yet paid         |
| `interest-income`     | income    | credit | never negative                                                |
| `interest-expense`    | expense   | debit  | never negative                                                |
| `loan-losses`         | expense   | debit  | never negative: loans written off                             |
| `fee-income`          | income    | credit | never negative                                                |
| `fx-position`         | asset     | debit  | none: long or short per currency                              |
| `capital`             | equity    | credit | never negative                                                |
| `customer:<account>`  | liability | credit | not below minus the account's overdraft limit                 |

The legs:

| event                          | debit                  | credit                 |
|--------------------------------|------------------------|------------------------|
| FundsDeposited, channel cash   | cash drawer (or vault) | customer               |
| FundsWithdrawn, channel cash   | customer               | cash drawer (or vault) |
| FundsDeposited, channel card   | clearing               | customer               |
| FundsWithdrawn, channel card   | customer               | clearing               |
| FundsDeposited, other channel  | suspense               | customer               |
| FundsWithdrawn, other channel  | customer               | suspense               |
| TransferDebited                | customer (from)        | transit                |
| TransferCredited               | transit                | customer (to)          |
| TransferCredited, exchanged    | transit (sell), fx-position (buy) | fx-position (sell), customer (buy), fee-income (rounding) |
| TransferReversed               | transit                | customer (from)        |
| PaymentDebited                 | customer               | clearing               |
| PaymentSettled                 | clearing               | settlement             |
| PaymentReturned                | clearing               | customer               |
| PaymentReceived                | settlement             | customer               |
| DrawerOpened                   | cash:<staff id>        | cash:vault (the float) |
| DrawerClosed, short            | suspense               | cash:<staff id>        |
| DrawerClosed, over             | cash:<staff id>        | suspense               |
| DrawerClosed, counted cash     | cash:vault             | cash:<staff id>        |
| LoanDisbursed                  | loans (principal)      | customer (principal - fee), fee-income (fee) |
| LoanRepaid                     | customer               | loans (principal), interest-receivable (interest accrued), interest-income (the rest of the interest), fee-income (fees) |
| LoanInterestAccrued            | interest-receivable    | interest-income (a negative amount: the other way round) |
| LoanWrittenOff                 | loan-losses            | loans (principal), interest-receivable (interest) |
| InterestCredited               | interest-expense       | customer               |

Decisions, and why:
- **Payments.** An outbound payment in flight sits in `clearing` (a credit balance: what the bank owes the rail
  for it) from its debit until the rail settles it (`clearing` -> `settlement`, the bank's account at the rail,
  which the money leaves) or returns it (`clearing` -> the customer). So `clearing`'s payment share is exactly
  the payments in flight, and the books balance at every offset whatever the rail does. An inbound credit arrives
  settled (the rail calls the bank once the money is in the bank's settlement account): `settlement` ->
  customer; one the ledger refuses posts nothing and the rail returns it to the sender.
- **Which drawer.** A posting event's fields do not say who handled the cash. The staff member who took or
  paid it is, in order: the maker of a movement held for a second pair of eyes or flagged by the risk engine (its
  FundsHeld / RiskFlagged, on the same account before the posting and with the same command id, carries
  `submitted_by`; the posting itself is then the approver's); else the actor of the posting's record (the
  `bank.actor` Kafka header the API's caller puts on the command and the ledger copies onto its events, which
  readers of the log pass in as `LoggedEvent.actor_id`); else nobody known, and the cash is the vault's
  (`cash:vault`: a producer other than the API, or a reader that does not pass the header, like the invariant
  audit). Drawers are opened from the vault, counted and closed (core/drawers.py), but a drawer may still pay out
  more than it took in during the day (its over/short is settled at close), so the "never below zero" constraint
  is checked on the bank's cash as a whole, per currency (vault and drawers summed), not drawer by drawer.
- **Non-cash channels.** The API records every deposit and withdrawal as `cash` (only staff at the counter move
  money in or out). The channel `card` is the card schemes': its other side is `clearing`, the settlement
  account. `transfer` is what a movement written before channels existed reads as, and what a producer other than
  the API (`bank bench`) writes: money whose source the books cannot know, so it goes to `suspense`, where an
  accountant parks such entries until they are explained. Any other channel goes there too.
- **Constraints are checked on balances at a point** (the end of a fold), never along the way: a fold reads the
  log partition by partition, so a transfer's credit (on the destination's partition) may be read before its
  debit, and `transit` only has a meaningful sign once both sides of the cut are in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from core import events as e
from core.pointintime import Cutoff, LoggedEvent, events_as_of, whole_log_cutoff

Side = Literal["debit", "credit"]
AccountType = Literal["asset", "liability", "equity", "income", "expense"]
# never_negative: the balance never lies on the side opposite to the account's normal side.
# overdraft: a customer's deposit account may go that far past zero, its overdraft limit.
# none: either sign is normal (positions, settlement and suspense accounts).
Constraint = Literal["never_negative", "overdraft", "none"]

CASH, VAULT, CUSTOMER = "cash", "cash:vault", "customer"
CLEARING, TRANSIT, SUSPENSE, SETTLEMENT = "clearing", "transit", "suspense", "settlement"
LOANS, INTEREST_INCOME, FEE_INCOME, INTEREST_EXPENSE = "loans", "interest-income", "fee-income", "interest-expense"
INTEREST_RECEIVABLE, LOAN_LOSSES = "interest-receivable", "loan-losses"
FX_POSITION = "fx-position"


@dataclass(frozen=True, slots=True)
class AccountKind:
    """A line of the chart of accounts."""

    kind: str
    name: str
    type: AccountType
    normal_side: Side
    constraint: Constraint
    rule: str            # the constraint as people read it


CHART: dict[str, AccountKind] = {kind.kind: kind for kind in (
    AccountKind(CASH, "cash: the vault and each teller's drawer", "asset", "debit", "never_negative",
                "the bank's cash (vault and drawers together) never below zero"),
    AccountKind(CLEARING, "settlement with the payment rail and card schemes", "asset", "debit", "none",
                "none: either sign while a settlement cycle is open"),
    AccountKind(SETTLEMENT, "the bank's settlement account at the payment rail", "asset", "debit", "none",
                "none: reconciled with the rail's statements"),
    AccountKind(TRANSIT, "transfers in flight", "liability", "credit", "never_negative", "never negative"),
    AccountKind(SUSPENSE, "entries whose other side is not known yet", "asset", "debit", "none",
                "none: to be cleared to zero"),
    AccountKind(LOANS, "loans to customers", "asset", "debit", "never_negative", "never negative"),
    AccountKind(INTEREST_RECEIVABLE, "loans' interest accrued, not yet paid", "asset", "debit", "never_negative",
                "never negative"),
    AccountKind(INTEREST_INCOME, "interest earned", "income", "credit", "never_negative", "never negative"),
    AccountKind(INTEREST_EXPENSE, "interest paid", "expense", "debit", "never_negative", "never negative"),
    AccountKind(FEE_INCOME, "fees earned", "income", "credit", "never_negative", "never negative"),
    AccountKind(LOAN_LOSSES, "loans written off", "expense", "debit", "never_negative", "never negative"),
    AccountKind(FX_POSITION, "currency-exchange position", "asset", "debit", "none",
                "none: long or short per currency"),
    AccountKind("capital", "the owners' capital", "equity", "credit", "never_negative", "never negative"),
    AccountKind(CUSTOMER, "customers' deposits", "liability", "credit", "overdraft",
                "not below minus the account's overdraft limit"),
)}

# The bank's own accounts every currency's trial balance lists, touched or not (drawers appear once used).
BANK_ACCOUNTS: tuple[str, ...] = (VAULT, *(kind for kind in CHART if kind not in (CASH, CUSTOMER)))


class UnknownLedgerAccount(ValueError):
    pass


def kind_of(ledger_account_id: str) -> AccountKind:
    """The chart line of a ledger account id: `transit`, `cash:<staff id>`, `customer:<account id>`, ..."""
    kind, _, rest = ledger_account_id.partition(":")
    found = CHART.get(kind)
    if found is None or (kind in (CASH, CUSTOMER)) != bool(rest):
        raise UnknownLedgerAccount(f"{ledger_account_id!r} is not a ledger account: one of "
                                   f"{', '.join(BANK_ACCOUNTS)}, cash:<staff id> or customer:<account id>")
    return found


def customer_account(account_id: str) -> str:
    return f"{CUSTOMER}:{account_id}"


def drawer(staff_id: str | None) -> str:
    return f"{CASH}:{staff_id}" if staff_id else VAULT


# ---------------------------------------------------------------- legs


@dataclass(frozen=True, slots=True)
class Leg:
    side: Side
    ledger_account_id: str
    amount: int          # minor units, positive
    currency: str

    @property
    def signed(self) -> int:
        """Debits positive, credits negative: a balanced set of legs sums to zero."""
        return self.amount if self.side == "debit" else -self.amount


def _pair(debit: str, credit: str, amount: int, currency: str) -> tuple[Leg, ...]:
    return Leg("debit", debit, amount, currency), Leg("credit", credit, amount, currency)


def counter_account(channel: str, teller: str | None) -> str:
    """Where money paid in or out through a channel comes from or goes to (see the module's docstring)."""
    if channel == "cash":
        return drawer(teller)
    return CLEARING if channel == "card" else SUSPENSE


def legs_of(event: e.Event, teller: str | None = None) -> tuple[Leg, ...]:
    """The balanced legs of an event; () for an event that moves no money. `teller`: who handled a cash movement,
    when known (the Books fold finds it on the movement's hold or flag)."""
    customer = customer_account(event.account_id)
    if isinstance(event, e.FundsDeposited):
        return _pair(counter_account(event.channel, teller), customer, event.amount, event.currency)
    if isinstance(event, e.FundsWithdrawn):
        return _pair(customer, counter_account(event.channel, teller), event.amount, event.currency)
    if isinstance(event, e.TransferDebited):
        return _pair(customer, TRANSIT, event.amount, event.currency)
    if isinstance(event, e.TransferCredited) and event.exchange:
        return _exchange_legs(event.exchange, customer)
    if isinstance(event, (e.TransferCredited, e.TransferReversed)):
        return _pair(TRANSIT, customer, event.amount, event.currency)
    if isinstance(event, e.PaymentDebited):
        return _pair(customer, CLEARING, event.amount, event.currency)
    if isinstance(event, e.PaymentSettled):
        return _pair(CLEARING, SETTLEMENT, event.amount, event.currency)
    if isinstance(event, e.PaymentReturned):
        return _pair(CLEARING, customer, event.amount, event.currency)
    if isinstance(event, e.PaymentReceived):
        return _pair(SETTLEMENT, customer, event.amount, event.currency)
    if isinstance(event, (e.DrawerOpened, e.DrawerClosed)):
        return _drawer_legs(event)
    if isinstance(event, (e.LoanDisbursed, e.LoanRepaid)):
        return _loan_legs(event, customer)
    if isinstance(event, e.LoanInterestAccrued) and event.amount:
        if event.amount > 0:
            return _pair(INTEREST_RECEIVABLE, INTEREST_INCOME, event.amount, event.currency)
        return _pair(INTEREST_INCOME, INTEREST_RECEIVABLE, -event.amount, event.currency)   # an adjustment
    if isinstance(event, e.LoanWrittenOff):
        return _written_off_legs(event)
    if isinstance(event, e.InterestCredited):
        return _pair(INTEREST_EXPENSE, customer, event.amount, event.currency)
    return ()


def _exchange_legs(exchange: Mapping[str, Any], customer: str) -> tuple[Leg, ...]:
    """An exchanged transfer's credit: the sell side leaves `transit` for `fx-position`, the buy side leaves
    `fx-position` for the customer; the customer-side rounding (0 or 1 minor unit) goes to `fee-income` in its
    currency (core/fx.py's rule), so each currency balances to the minor unit."""
    sell, buy, rounded = exchange["sell_currency"], exchange["buy_currency"], exchange["rounded_currency"]
    rounding = exchange["rounding_amount"]
    sell_to_position = exchange["sell_amount"] - (rounding if rounded == sell else 0)
    position_to_buy = exchange["buy_amount"] + (rounding if rounded == buy else 0)
    legs = (Leg("debit", TRANSIT, exchange["sell_amount"], sell), Leg("credit", FX_POSITION, sell_to_position, sell),
            Leg("debit", FX_POSITION, position_to_buy, buy), Leg("credit", customer, exchange["buy_amount"], buy),
            Leg("credit", FEE_INCOME, rounding, rounded))
    return tuple(leg for leg in legs if leg.amount)


def _loan_legs(event: e.LoanDisbursed | e.LoanRepaid, customer: str) -> tuple[Leg, ...]:
    """A loan's principal in `loans` (what customers owe the bank); interest and fees the bank's income."""
    currency = event.currency
    if isinstance(event, e.LoanDisbursed):
        legs = (Leg("debit", LOANS, event.principal, currency), Leg("credit", customer, event.amount, currency))
        return legs + ((Leg("credit", FEE_INCOME, event.fee, currency),) if event.fee else ())
    parts = ((LOANS, event.principal), (INTEREST_RECEIVABLE, event.interest_accrued),
             (INTEREST_INCOME, event.interest - event.interest_accrued), (FEE_INCOME, event.fees))
    return (Leg("debit", customer, event.amount, currency),
            *(Leg("credit", account, amount, currency) for account, amount in parts if amount))


def _written_off_legs(event: e.LoanWrittenOff) -> tuple[Leg, ...]:
    """What the customer owed the bank and will not pay: an expense, out of `loans` and `interest-receivable`."""
    legs = (Leg("debit", LOAN_LOSSES, event.principal + event.interest, event.currency),
            Leg("credit", LOANS, event.principal, event.currency),
            Leg("credit", INTEREST_RECEIVABLE, event.interest, event.currency))
    return tuple(leg for leg in legs if leg.amount)


def _drawer_legs(event: e.DrawerOpened | e.DrawerClosed) -> tuple[Leg, ...]:
    """A drawer's float from the vault; at close its over/short against suspense, then its cash to the vault."""
    till = drawer(event.staff_id)
    if isinstance(event, e.DrawerOpened):
        return _pair(till, VAULT, event.float_amount, event.currency) if event.float_amount else ()
    legs: tuple[Leg, ...] = ()
    if event.difference < 0:     # short: the missing cash is parked in suspense until explained
        legs += _pair(SUSPENSE, till, -event.difference, event.currency)
    elif event.difference > 0:   # over: the extra cash is the drawer's, its source unknown
        legs += _pair(till, SUSPENSE, event.difference, event.currency)
    if event.counted:
        legs += _pair(VAULT, till, event.counted, event.currency)
    return legs


def unbalanced(legs: Iterable[Leg]) -> dict[str, int]:
    """Per currency, debits minus credits where they differ (empty: balanced)."""
    sums: dict[str, int] = {}
    for leg in legs:
        sums[leg.currency] = sums.get(leg.currency, 0) + leg.signed
    return {currency: total for currency, total in sums.items() if total}


# ---------------------------------------------------------------- the books


@dataclass(slots=True)
class Balance:
    debits: int = 0
    credits: int = 0

    @property
    def signed(self) -> int:
        """Debits minus credits: positive on the debit side."""
        return self.debits - self.credits

    def add(self, leg: Leg) -> None:
        if leg.side == "debit":
            self.debits += leg.amount
        else:
            self.credits += leg.amount


def normal_balance(kind: AccountKind, signed: int) -> int:
    """A balance as its account reads it: positive on its normal side."""
    return signed if kind.normal_side == "debit" else -signed


@dataclass(frozen=True, slots=True)
class Row:
    """One ledger account's line of a trial balance."""

    ledger_account_id: str
    kind: AccountKind
    debits: int
    credits: int

    @property
    def balance(self) -> int:
        return self.debits - self.credits


@dataclass(frozen=True, slots=True)
class Violation:
    ledger_account_id: str      # `cash` for the bank's cash as a whole
    currency: str
    rule: str
    balance: int                # on the account's normal side

    def describe(self) -> str:
        return f"{self.ledger_account_id} in {self.currency} is at {self.balance} (minor units): {self.rule}"


@dataclass(frozen=True, slots=True)
class TrialBalance:
    currency: str
    rows: tuple[Row, ...]
    violations: tuple[Violation, ...]

    @property
    def debits(self) -> int:
        return sum(row.debits for row in self.rows)

    @property
    def credits(self) -> int:
        return sum(row.credits for row in self.rows)

    @property
    def total(self) -> int:
        """Debits minus credits over every account: zero when the books balance."""
        return self.debits - self.credits


@dataclass
class Books:
    """The bank's books folded event by event: balances per (ledger account, currency)."""

    balances: dict[tuple[str, str], Balance] = field(default_factory=dict)
    overdraft_limits: dict[str, int] = field(default_factory=dict)    # customer ledger account -> limit
    tellers: dict[str, str] = field(default_factory=dict)             # command id -> who submitted the movement
    seen: set[str] = field(default_factory=set)
    events: int = 0

    def apply(self, event: e.Event, actor: str | None = None) -> tuple[Leg, ...]:
        """Fold one event; its legs. A duplicate (an event id seen before) posts nothing. `actor`: the user id
        of the record's actor header, when the reader has it."""
        if event.event_id in self.seen:
            return ()
        self.seen.add(event.event_id)
        self.events += 1
        self._remember(event)
        legs = legs_of(event, self.tellers.get(event.command_id) or actor)
        for leg in legs:
            self.balances.setdefault((leg.ledger_account_id, leg.currency), Balance()).add(leg)
        return legs

    def _remember(self, event: e.Event) -> None:
        if isinstance(event, e.AccountOpened):
            self.overdraft_limits[customer_account(event.account_id)] = event.overdraft_limit
        elif isinstance(event, e.OverdraftLimitSet):
            self.overdraft_limits[customer_account(event.account_id)] = event.overdraft_limit
        elif isinstance(event, e.RiskCase) and event.submitted_by and event.channel == "cash":
            self.tellers[event.command_id] = event.submitted_by

    @property
    def currencies(self) -> list[str]:
        return sorted({currency for _, currency in self.balances})

    def balance(self, ledger_account_id: str, currency: str) -> int:
        """Debits minus credits."""
        found = self.balances.get((ledger_account_id, currency))
        return found.signed if found is not None else 0

    def trial_balance(self, currency: str) -> TrialBalance:
        """Every ledger account of the currency: the bank's own (touched or not) and each one with entries."""
        touched = {account: found for (account, of), found in self.balances.items() if of == currency}
        untouched = Balance()
        rows = tuple(Row(account, kind_of(account), touched.get(account, untouched).debits,
                         touched.get(account, untouched).credits)
                     for account in sorted(set(BANK_ACCOUNTS) | set(touched), key=_chart_order))
        return TrialBalance(currency, rows, tuple(self._violations(currency, rows)))

    def _violations(self, currency: str, rows: tuple[Row, ...]) -> list[Violation]:
        found = []
        cash = sum(row.balance for row in rows if row.kind.kind == CASH)
        if cash < 0:
            found.append(Violation(CASH, currency, CHART[CASH].rule, cash))
        for row in rows:
            kind, balance = row.kind, normal_balance(row.kind, row.balance)
            floor = -self.overdraft_limits.get(row.ledger_account_id, 0) if kind.constraint == "overdraft" else 0
            if kind.kind != CASH and kind.constraint != "none" and balance < floor:
                found.append(Violation(row.ledger_account_id, currency, kind.rule, balance))
        return found

    def violations(self) -> list[Violation]:
        return [found for currency in self.currencies for found in self.trial_balance(currency).violations]


def _chart_order(ledger_account_id: str) -> tuple[int, str]:
    return list(CHART).index(kind_of(ledger_account_id).kind), ledger_account_id


def books_as_of(log: Sequence[LoggedEvent], cutoff: Cutoff) -> Books:
    """The books as they were at the cutoff, folded from the same events `ledger_as_of` folds (a position naming
    only some partitions is completed by time: `whole_log_cutoff`)."""
    books = Books()
    for logged in events_as_of(log, whole_log_cutoff(log, cutoff)):
        books.apply(logged.event, logged.actor_id)
    return books


# ---------------------------------------------------------------- one account's entries


@dataclass(frozen=True, slots=True)
class Entry:
    """A leg on one ledger account, where its event is in the log, and the account's balance after it."""

    partition: int
    offset: int
    leg_index: int
    event_id: str
    event_type: str
    account_id: str            # the bank account the event is keyed by
    command_id: str
    occurred_at: datetime
    leg: Leg
    balance_after: int         # debits minus credits on this ledger account in this currency, in entry order

    @property
    def key(self) -> tuple[datetime, int, int, int]:
        return self.occurred_at, self.partition, self.offset, self.leg_index


def entries_of(log: Sequence[LoggedEvent], cutoff: Cutoff, ledger_account_id: str,
               currency: str | None = None) -> list[Entry]:
    """Every leg on the ledger account (of one currency, or all), in time order (ties: partition, offset)."""
    books, found = Books(), []
    for logged in events_as_of(log, whole_log_cutoff(log, cutoff)):
        for index, leg in enumerate(books.apply(logged.event, logged.actor_id)):
            if leg.ledger_account_id == ledger_account_id and currency in (None, leg.currency):
                found.append((logged, index, leg))
    found.sort(key=lambda item: (item[0].event.occurred_at, item[0].partition, item[0].offset, item[1]))
    running: dict[str, int] = {}
    entries = []
    for logged, index, leg in found:
        running[leg.currency] = running.get(leg.currency, 0) + leg.signed
        event = logged.event
        entries.append(Entry(logged.partition, logged.offset, index, event.event_id, type(event).__name__,
                             event.account_id, event.command_id, event.occurred_at, leg, running[leg.currency]))
    return entries


def customer_balances(books: Books) -> Mapping[str, int]:
    """Each customer account's balance as the books hold it (credits minus debits), by bank account id."""
    prefix = f"{CUSTOMER}:"
    return {account[len(prefix):]: -found.signed for (account, _), found in books.balances.items()
            if account.startswith(prefix)}
