"""Request and response bodies of the payee routes (api/routes/payees.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from core.payees import Confirmation

PayeeName = Annotated[StrictStr, Field(min_length=1, max_length=140, examples=["Jane Doe"])]
Nickname = Annotated[StrictStr, Field(min_length=1, max_length=60, examples=["landlord"])]


class NewPayee(BaseModel):
    """An account of this bank or of another, by IBAN, with the holder's name as the customer knows it."""

    model_config = ConfigDict(extra="forbid")
    iban: Annotated[StrictStr, Field(min_length=5, max_length=50, examples=["DE89 3704 0044 0532 0130 00"])]
    name: PayeeName
    nickname: Nickname | None = None


class PayeeChange(BaseModel):
    """A new name or nickname; the IBAN stays (another IBAN is another payee, with a cooling-off of its own)."""

    model_config = ConfigDict(extra="forbid")
    name: PayeeName
    nickname: Nickname | None = None


class PayeeView(BaseModel):
    payee_id: str
    customer_id: str
    iban: str
    iban_formatted: str
    name: str
    nickname: str | None
    internal: bool = Field(description="an account of this bank")
    confirmation: Confirmation = Field(description="confirmation of payee when added or renamed: match, "
                                                   "close_match, no_match, or not_applicable (another bank)")
    name_on_file: str | None = Field(None, description="the account holder's name, on a close match only")
    added_at: datetime = Field(description="business time; payments soon after are held (cooling-off)")
    updated_at: datetime


class PayeeList(BaseModel):
    customer_id: str
    payees: list[PayeeView]
