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


class MovementRequest(_Body):
    amount: DecimalString
    currency: Currency
    reference: Reference | None = None

    @model_validator(mode="after")
    def _check(self) -> MovementRequest:
        _minor(self.amount, self.currency, "amount")
        return self

    @property
    def minor(self) -> int:
        return parse_amount(self.amount, self.currency)


class TransferRequest(MovementRequest):
    from_account_id: Identifier
    to_account_id: Identifier


class StatusChangeRequest(_Body):
    reason: Reference | None = None


class CommandAccepted(BaseModel):
    command_id: str
    account_id: str
    status: Literal["pending", "accepted", "rejected"]
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
    status: Literal["pending", "accepted", "rejected"]
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
