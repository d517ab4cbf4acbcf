"""Savings interest and the close-of-business job's decisions. Pure: records, balances and business dates in;
accruals and capitalisations out.

Records on bank.interest (products keyed by product id, the rest by account id):

- `SavingsProductSet`: a savings product's whole definition as of one change (name, currency, the rate with its
  history: rates change only forward, as for loans; the day count); the highest version wins.
- `SavingsEnrolled`: an account earns a product's interest from a business date on (one product per account).
- `InterestAccrued`: the close-of-business job's accrual of one account for one business date: the balance it
  accrued on, the rate in force that day, the whole minor units accrued and the exact remainder carried to the
  next day (core.loans.daily_accrual: rounded down, the remainder carried, so over any run of days not a minor
  unit is lost or invented). Its id derives from the account and the date: a date accrued twice is one record.

Capitalisation: after the last day of a month is accrued, that month's accruals are credited to the account by a
ledger command `CreditInterest` (its id derived from the account and the month: once), posted as
`InterestCredited` (the books: `interest-expense` debited, the customer credited). From the next day on, the
balance the job accrues on includes the interest credited, whether or not the ledger has posted it yet: interest
compounds monthly, exactly.

Which balance a date accrues on: the account's balance when the job closes the date, i.e. when business time has
passed the date's end (every BANK_SCHEDULER_INTERVAL in the scheduler's process). When business time jumps several
days at once (a demo, a test), nothing was posted in between, so every skipped date closes on the same balance. A
job that was down closes its missed dates in order on the balance it finds when it comes back (documented: a
posting during the outage counts from the first missed date).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from core.commands import derive_id
from core.loans import LoanError, RateChange, RateSchedule, daily_accrual

# At most this many account-dates a tick: a job that was down for a long time catches up over several ticks,
# its progress visible (bank cob status) and each tick's writes small.
DATES_PER_TICK = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class SavingsProductSet:
    event_id: str
    product_id: str
    version: int
    change: str                          # created | rate_changed | retired
    status: str                          # active | retired
    name: str
    currency: str
    rates: list[dict[str, str]]          # [{"effective_on": ISO date, "annual_rate_percent": "2.5"}], ascending
    day_count: str
    set_by: str
    set_at: datetime
    schema_version: int = 1

    @property
    def rate_schedule(self) -> RateSchedule:
        return RateSchedule(tuple(RateChange(date.fromisoformat(rate["effective_on"]),
                                             Decimal(rate["annual_rate_percent"])) for rate in self.rates))


@dataclass(frozen=True, slots=True, kw_only=True)
class SavingsEnrolled:
    event_id: str                        # derived from the account: one product per account
    account_id: str
    customer_id: str
    product_id: str
    enrolled_on: str                     # ISO business date: the first date that accrues
    enrolled_by: str
    enrolled_at: datetime
    schema_version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class InterestAccrued:
    event_id: str                        # derived from the account and the date
    account_id: str
    product_id: str
    accrual_date: str                    # ISO business date
    balance: int                         # minor units the day accrued on
    annual_rate_percent: str
    accrued: int                         # whole minor units
    carried: str                         # the exact sub-minor remainder after this day, "numerator/denominator"
    recorded_at: datetime
    schema_version: int = 1


INTEREST_TYPES: dict[str, type] = {kind.__name__: kind for kind in (
    SavingsProductSet, SavingsEnrolled, InterestAccrued)}
Record = SavingsProductSet | SavingsEnrolled | InterestAccrued


def savings_product_event_id(product_id: str, version: int) -> str:
    return derive_id("savings-product", product_id, str(version))


def enrolment_event_id(account_id: str) -> str:
    return derive_id("savings-enrolled", account_id)


def accrual_event_id(account_id: str, day: date) -> str:
    return derive_id("interest-accrued", account_id, day.isoformat())


def capitalisation_command_id(account_id: str, month: str) -> str:
    """One credit of a month's interest per account: a restarted or second job proposes the same command."""
    return derive_id("interest-credit", account_id, month)


def check_savings_product(record: SavingsProductSet) -> None:
    """Raise LoanError unless the definition is a valid product."""
    if not record.rate_schedule.changes:   # building the schedule checks every rate
        raise LoanError("invalid_rate", "a product needs a rate")
    if record.day_count not in ("ACT/365F", "ACT/360", "30/360"):
        raise LoanError("invalid_day_count", f"day count {record.day_count!r} is not ACT/365F, ACT/360 or 30/360")
    if not record.name.strip():
        raise LoanError("invalid_name", "a product needs a name")


# ---------------------------------------------------------------- the fold


@dataclass(slots=True)
class SavingsAccount:
    enrolment: SavingsEnrolled
    accruals: dict[str, InterestAccrued] = field(default_factory=dict)   # ISO date -> the day's accrual
    last: InterestAccrued | None = None                                  # the latest date accrued

    @property
    def next_date(self) -> date:
        return date.fromisoformat(self.last.accrual_date) + timedelta(days=1) if self.last else \
            date.fromisoformat(self.enrolment.enrolled_on)

    @property
    def carried(self) -> Fraction:
        return Fraction(self.last.carried) if self.last else Fraction(0)

    def accrued_in(self, month: str) -> int:
        return sum(record.accrued for day, record in self.accruals.items() if day.startswith(month))


@dataclass(slots=True)
class SavingsBook:
    """Savings products, enrolled accounts and their accruals, folded from bank.interest. Idempotent by event id;
    accruals are taken in date order (a date after a gap is not taken: the job closes dates in order)."""

    products: dict[str, list[SavingsProductSet]] = field(default_factory=dict)
    accounts: dict[str, SavingsAccount] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def apply(self, record: object) -> None:
        event_id = getattr(record, "event_id", None)
        if event_id is None or event_id in self._seen:
            return
        if isinstance(record, SavingsProductSet):
            versions = self.products.setdefault(record.product_id, [])
            if not versions or record.version > versions[-1].version:
                versions.append(record)
        elif isinstance(record, SavingsEnrolled):
            self.accounts.setdefault(record.account_id, SavingsAccount(record))
        elif isinstance(record, InterestAccrued):
            account = self.accounts.get(record.account_id)
            if account is None or date.fromisoformat(record.accrual_date) != account.next_date:
                return   # not the next date: a record out of order is not taken (nor marked seen)
            account.accruals[record.accrual_date] = record
            account.last = record
        self._seen.add(event_id)

    def product(self, product_id: str) -> SavingsProductSet | None:
        versions = self.products.get(product_id) or []
        return versions[-1] if versions else None


# ---------------------------------------------------------------- the close of business


@dataclass(frozen=True, slots=True)
class Capitalisation:
    account_id: str
    month: str                           # YYYY-MM
    amount: int
    currency: str
    command_id: str


@dataclass(frozen=True, slots=True)
class Close:
    """What closing one account's dates decides: the accruals to record, the months to credit."""

    accruals: tuple[InterestAccrued, ...]
    capitalisations: tuple[Capitalisation, ...]


def close_dates(book: SavingsBook, account_id: str, balance: int, through: date, recorded_at: datetime,
                limit: int = DATES_PER_TICK) -> Close:
    """Accrue `account_id` for every date from its next one to `through` (inclusive), at most `limit` dates, on
    `balance` (minor units: the ledger's balance plus interest credited and not yet posted); credit each month
    whose last day is among them. The balance grows by each month's credit for the dates after it."""
    account = book.accounts[account_id]
    product = book.product(account.enrolment.product_id)
    if product is None:
        return Close((), ())
    day, carried = account.next_date, account.carried
    month_so_far = account.accrued_in(day.strftime("%Y-%m"))
    accruals: list[InterestAccrued] = []
    credits: list[Capitalisation] = []
    while day <= through and len(accruals) < limit:
        rate = product.rate_schedule.rate_on(day) if day >= product.rate_schedule.changes[0].effective_on \
            else Decimal(0)
        accrual = daily_accrual(balance, rate, product.day_count, day, carried)  # type: ignore[arg-type]
        carried = accrual.carried
        accruals.append(InterestAccrued(
            event_id=accrual_event_id(account_id, day), account_id=account_id, product_id=product.product_id,
            accrual_date=day.isoformat(), balance=balance, annual_rate_percent=str(rate),
            accrued=accrual.posted_minor, carried=f"{carried.numerator}/{carried.denominator}",
            recorded_at=recorded_at))
        month_so_far += accrual.posted_minor
        tomorrow = day + timedelta(days=1)
        if tomorrow.month != day.month:
            month = day.strftime("%Y-%m")
            if month_so_far:
                credits.append(Capitalisation(account_id, month, month_so_far, product.currency,
                                              capitalisation_command_id(account_id, month)))
                balance += month_so_far
            month_so_far = 0
        day = tomorrow
    return Close(tuple(accruals), tuple(credits))


def due_capitalisations(book: SavingsBook, account_id: str, currency: str) -> list[Capitalisation]:
    """Every month fully accrued for the account, with its total (the job sends each once; the ledger takes a
    command id once, so sending one again after a restart changes nothing)."""
    account = book.accounts[account_id]
    months: dict[str, int] = {}
    for day, record in account.accruals.items():
        months[day[:7]] = months.get(day[:7], 0) + record.accrued
    done = account.last
    result = []
    for month, amount in sorted(months.items()):
        last_day = _last_day(month)
        if done is not None and date.fromisoformat(done.accrual_date) >= last_day and amount:
            result.append(Capitalisation(account_id, month, amount, currency,
                                         capitalisation_command_id(account_id, month)))
    return result


def _last_day(month: str) -> date:
    year, number = (int(part) for part in month.split("-"))
    first_of_next = date(year + number // 12, number % 12 + 1, 1)
    return first_of_next - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the close of business is on business day `today`: every date up to yesterday can be closed."""

    today: date
    closing_through: date
    accounts: int
    accounts_behind: int
    oldest_open_date: date | None
    accruals: int


def progress(book: SavingsBook, today: date) -> Progress:
    through = today - timedelta(days=1)
    behind = [account.next_date for account in book.accounts.values() if account.next_date <= through]
    return Progress(today, through, len(book.accounts), len(behind), min(behind) if behind else None,
                    sum(len(account.accruals) for account in book.accounts.values()))
