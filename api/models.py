"""Request and response bodies. Amounts are decimal strings in the currency's minor-unit precision."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from core.money import MoneyError, currency_digits, parse_amount

Currency = Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO-4217 code")]
DecimalString = Annotated[StrictStr, Field(examples=["12.50"], description="a positive decimal string")]
Reference = Annotated[StrictStr, Field(max_length=140)]
Identifier = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _minor(amount: str, currency: str, field: str, allow_zero: bool = False) -> int:
    try:
        return parse_amount(amount, currency, allow_zero=allow_zero)
    except MoneyError as error:
        raise PydanticCustomError(error.reason, f"{field}: {error.detail}") from None


class OpenAccountRequest(_Body):
    customer_id: Identifier
    currency: Currency
    overdraft_limit: DecimalString | None = Field(None, examples=["100.00"])

    @model_validator(mode="after")
    def _check(self) -> OpenAccountRequest:
        try:
            currency_digits(self.currency)
        except MoneyError as error:
            raise PydanticCustomError(error.reason, error.detail) from None
        if self.overdraft_limit is not None:
            _minor(self.overdraft_limit, self.currency, "overdraft_limit", allow_zero=True)
        return self

    @property
    def overdraft_minor(self) -> int:
        return parse_amount(self.overdraft_limit or "0", self.currency, allow_zero=True)


Country = Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$", examples=["DE"], description="ISO 3166-1 alpha-2")]
CounterpartyName = Annotated[StrictStr, Field(min_length=1, max_length=140, examples=["ACME Trading Ltd"])]


class MovementRequest(_Body):
    amount: DecimalString
    currency: Currency
    reference: Reference | None = None
    channel: Literal["cash", "transfer", "card"] = Field(
        "transfer", description="how the money comes in or goes out; cash feeds the structuring and CTR rules")
    counterparty_name: CounterpartyName | None = Field(None, description="payer or payee, screened for sanctions")
    counterparty_country: Country | None = None

    @model_validator(mode="after")
    def _check(self) -> MovementRequest:
        _minor(self.amount, self.currency, "amount")
        return self

    @property
    def minor(self) -> int:
        return parse_amount(self.amount, self.currency)


class TransferRequest(_Body):
    amount: DecimalString
    currency: Currency
    reference: Reference | None = None
    from_account_id: Identifier
    to_account_id: Identifier
    counterparty_name: CounterpartyName | None = Field(None, description="the beneficiary's name, screened")
    counterparty_country: Country | None = None

    @model_validator(mode="after")
    def _check(self) -> TransferRequest:
        _minor(self.amount, self.currency, "amount")
        return self

    @property
    def minor(self) -> int:
        return parse_amount(self.amount, self.currency)


class StatusChangeRequest(_Body):
    reason: Reference | None = None


# held: the risk engine held a money movement for a reviewer (GET /v1/admin/cases); it ends accepted or rejected.
CommandState = Literal["pending", "held", "accepted", "rejected"]


class CommandAccepted(BaseModel):
    command_id: str
    account_id: str
    status: CommandState
    status_url: str


class EventView(BaseModel):
    event_id: str
    type: str
    account_id: str
    sequence: int
    occurred_at: datetime
    data: dict[str, Any]


class CommandStatus(BaseModel):
    command_id: str
    status: CommandState
    in_flight: bool = False
    reason: str | None = None
    detail: str | None = None
    events: list[EventView] = []


class AccountView(BaseModel):
    account_id: str
    customer_id: str
    currency: str
    balance: str
    available_balance: str
    overdraft_limit: str
    status: Literal["open", "frozen", "closed"]
    version: int


class CustomerAccounts(BaseModel):
    customer_id: str
    accounts: list[AccountView]


class TransactionView(BaseModel):
    """One posting on an account; its id is the id of the event that made it."""

    transaction_id: str
    account_id: str
    sequence: int = Field(description="the account's version after this posting: orders its history")
    type: Literal["deposit", "withdrawal", "transfer_out", "transfer_in", "transfer_reversal"]
    amount: str = Field(description="signed: negative when money left the account")
    currency: str
    balance_after: str
    counterparty_account_id: str | None
    reference: str | None
    transfer_id: str | None
    command_id: str
    occurred_at: datetime


class TransactionPage(BaseModel):
    account_id: str
    items: list[TransactionView]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page; null at the end")


class Statement(BaseModel):
    account_id: str
    currency: str
    month: str
    period_start: datetime
    period_end: datetime
    opening_balance: str
    total_credits: str
    total_debits: str
    closing_balance: str
    postings: list[TransactionView]


class AuditEntry(BaseModel):
    event_id: str
    type: str
    account_id: str
    customer_id: str | None
    command_id: str
    correlation_id: str
    occurred_at: datetime
    sequence: int
    data: dict[str, Any]
    topic: str
    partition: int
    offset: int
    schema_name: str | None
    schema_fingerprint: str | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


class ActivityEntry(BaseModel):
    """One line of a customer's activity feed."""

    event_id: str
    account_id: str
    occurred_at: datetime
    type: str
    summary: str
    amount: str | None = Field(description="signed decimal string for movements of money, else null")
    currency: str | None


class ActivityPage(BaseModel):
    customer_id: str
    items: list[ActivityEntry]
    next_cursor: str | None
