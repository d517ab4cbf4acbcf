"""Request and response bodies. Amounts are decimal strings in the currency's minor-unit precision."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from core.money import CURRENCY_DIGITS, MoneyError, currency_digits, parse_amount
from core.readmodel import CaseStatus
from core.risk.rules import Severity

# The documented enum and pattern tell clients (and the API fuzzer) what the validators below accept; the
# validators keep their own messages and reasons (unknown_currency, invalid_amount, too_many_decimals, ...).
SUPPORTED_CURRENCIES = {"enum": sorted(CURRENCY_DIGITS)}
AMOUNT_PATTERN = {"pattern": r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"}
Currency = Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO-4217 code",
                                      json_schema_extra=SUPPORTED_CURRENCIES)]
DecimalString = Annotated[StrictStr, Field(examples=["12.50"], description="a positive decimal string",
                                           json_schema_extra=AMOUNT_PATTERN)]
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
    customer_id: Identifier | None = Field(None, description="required for staff; a customer opens for themselves")
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
    """Cash paid in or out at the counter by staff. There is no `channel` field: the server records "cash" (it
    feeds the structuring and CTR rules), and a body naming one is refused (422) like any unknown field."""

    amount: DecimalString
    currency: Currency
    reference: Reference | None = None
    counterparty_name: CounterpartyName | None = Field(None, description="payer or payee, screened for sanctions")
    counterparty_country: Country | None = None

    @model_validator(mode="after")
    def _check(self) -> MovementRequest:
        _minor(self.amount, self.currency, "amount")
        return self

    @property
    def minor(self) -> int:
        return parse_amount(self.amount, self.currency)


class OverdraftLimitRequest(_Body):
    """The account's new overdraft limit, in its currency (0 removes the overdraft)."""

    overdraft_limit: DecimalString = Field(examples=["500.00"])
    reason: Reference | None = None


IbanText = Annotated[StrictStr, Field(min_length=5, max_length=50, examples=["DE40 1009 0099 6230 7181 70"],
                                      description="an IBAN, with or without spaces")]


class TransferRequest(_Body):
    """To one of the bank's accounts, named by its id (`to_account_id`), its IBAN (`to_iban`) or one of the
    customer's payees (`payee_id`, GET /v1/payees): exactly one. An IBAN of another bank (a payee's included) is
    refused (422 external_iban): payments out of the bank are a route of their own."""

    amount: DecimalString
    currency: Currency
    reference: Reference | None = None
    from_account_id: Identifier
    to_account_id: Identifier | None = None
    to_iban: IbanText | None = None
    payee_id: Identifier | None = Field(None, description="a payee of the source account's customer")
    counterparty_name: CounterpartyName | None = Field(None, description="the beneficiary's name, screened")
    counterparty_country: Country | None = None
    quote_id: Identifier | None = Field(None, description="between accounts of two currencies: an FX quote of yours "
                                        "(POST /v1/fx/quotes), unexpired; amount and currency are its sell side. "
                                        "A quote is executed once.")

    @model_validator(mode="after")
    def _check(self) -> TransferRequest:
        _minor(self.amount, self.currency, "amount")
        if [self.to_account_id, self.to_iban, self.payee_id].count(None) != 2:
            raise PydanticCustomError("one_destination", "name the destination with exactly one of to_account_id, "
                                                         "to_iban and payee_id")
        return self

    @property
    def minor(self) -> int:
        return parse_amount(self.amount, self.currency)


Bic = Annotated[StrictStr, Field(pattern=r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$", examples=["COBADEFFXXX"],
                                 description="the creditor bank's BIC (ISO 9362), 8 or 11 characters")]


class PaymentRequest(_Body):
    """An outbound credit transfer from one of the caller's accounts to another bank's account (an IBAN that is not
    this bank's: those are transfers, 422 internal_iban)."""

    from_account_id: Identifier
    amount: DecimalString
    currency: Currency
    creditor_iban: IbanText
    creditor_name: CounterpartyName
    creditor_bic: Bic | None = None
    remittance_information: Reference | None = Field(None, description="for the creditor (ISO 20022 Ustrd)")

    @model_validator(mode="after")
    def _check(self) -> PaymentRequest:
        _minor(self.amount, self.currency, "amount")
        return self

    @property
    def minor(self) -> int:
        return parse_amount(self.amount, self.currency)


PaymentState = Literal["pending", "sent", "settled", "returned"]


class PaymentView(BaseModel):
    payment_id: str
    confirmation: str = Field(description="the confirmation number to quote (the payment history's)")
    from_account_id: str
    amount: str
    currency: str
    creditor_iban: str
    creditor_name: str
    creditor_bic: str | None
    remittance_information: str | None
    status: PaymentState
    reason_code: str | None = Field(None, description="ISO 20022 return reason of a returned payment")
    reason: str | None = Field(None, description="the reason code in words")
    created_at: datetime
    updated_at: datetime | None


class RailNotification(_Body):
    """The rail's report on an instruction the bank sent it."""

    instruction_id: Identifier
    status: Literal["settled", "returned"]
    reason_code: Annotated[StrictStr, Field(pattern=r"^[A-Z0-9]{4}$")] | None = None
    rail_reference: Identifier | None = None


class RailInbound(_Body):
    """An inbound credit transfer the rail delivers to the bank."""

    instruction_id: Identifier
    creditor_iban: IbanText
    amount: DecimalString
    currency: Currency
    debtor_iban: IbanText | None = None
    debtor_name: CounterpartyName | None = None
    remittance_information: Reference | None = None

    @model_validator(mode="after")
    def _check(self) -> RailInbound:
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


class CommandOutcome(CommandStatus):
    """A command's outcome as a `?wait=true` command answers it (200, 201 for a new account, 202 if held)."""

    account_id: str
    position: str = Field(description="where its events are in the log: pass as ?min_position= to read them")


class AccountView(BaseModel):
    account_id: str
    customer_id: str
    account_number: str | None = Field(None, description="the national account number, with its check digit")
    iban: str | None = Field(None, description="machine form, e.g. DE40100900996230718170")
    iban_formatted: str | None = Field(None, description="in blocks of four, as printed")
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
    type: Literal["deposit", "withdrawal", "transfer_out", "transfer_in", "transfer_reversal", "payment_out",
                  "payment_return", "payment_in", "loan_disbursement", "loan_repayment", "interest"]
    amount: str = Field(description="signed: negative when money left the account")
    currency: str
    balance_after: str
    counterparty_account_id: str | None
    reference: str | None
    transfer_id: str | None
    command_id: str
    occurred_at: datetime
    channel: Literal["cash", "transfer", "card"] = Field("transfer", description="how the money came or went")


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


# ---------------------------------------------------------------- admin: risk cases and reports


class CaseHit(BaseModel):
    """One rule of the rule set that matched the movement."""

    rule_id: str
    kind: str
    action: str
    severity: Severity
    score: int
    reason: str


class CaseView(BaseModel):
    """A money movement the risk engine flagged; its id is the flagged command's id."""

    case_id: str
    account_id: str
    customer_id: str
    command_type: Literal["Deposit", "Withdraw", "Transfer", "Payment"]
    amount: str = Field(description="the movement's amount, a decimal string in its currency")
    currency: str
    channel: str
    to_account_id: str | None
    counterparty_name: str | None
    counterparty_country: str | None
    reference: str | None
    action: Literal["alert", "hold", "block"]
    score: int
    severity: Severity | None = Field(description="the most severe of the hits")
    rule_ids: list[str]
    kinds: list[str]
    hits: list[CaseHit]
    rule_set_version: str
    status: CaseStatus = Field(description="open (alert), held (hold), blocked (block), approved, rejected")
    created_at: datetime
    issued_at: datetime
    decided_at: datetime | None
    reviewer: str | None
    comment: str | None
    decision_event_id: str | None


class CasePage(BaseModel):
    items: list[CaseView]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page; null at the end")


ReviewComment = Annotated[StrictStr, Field(min_length=1, max_length=2000, examples=["customer confirmed by phone"])]


class ReviewRequest(_Body):
    """A reviewer's decision: why. Who decided is the authenticated caller, recorded with the decision."""

    comment: ReviewComment

    @model_validator(mode="after")
    def _check(self) -> ReviewRequest:
        if not self.comment.strip():
            raise PydanticCustomError("blank", "comment must not be blank")
        return self


class CaseDecision(CommandStatus):
    """The ReviewCase command's outcome; for a hold, also what became of the held movement."""

    account_id: str
    position: str = Field(description="covers the decision and the movement's events: pass as ?min_position=")
    case_id: str
    decision: Literal["approve", "reject"]
    movement: CommandStatus | None = Field(None, description="the held movement's outcome (holds only)")


class CtrEntry(BaseModel):
    """A customer's cash in (or out) in one currency on the report's day, at or above the threshold."""

    customer_id: str
    currency: str
    direction: Literal["in", "out"]
    total: str
    count: int
    account_ids: list[str]


class CtrReport(BaseModel):
    date: date
    currency: str | None
    threshold: str = Field(description="in major units of each currency, e.g. \"10000\"")
    items: list[CtrEntry]


class SarCandidate(BaseModel):
    """A case with at least one anti-money-laundering hit: material for a suspicious activity report."""

    case_id: str
    account_id: str
    customer_id: str
    created_at: datetime
    command_type: str
    amount: str
    currency: str
    channel: str
    counterparty_name: str | None
    counterparty_country: str | None
    action: str
    score: int
    severity: Severity | None
    status: CaseStatus
    rule_ids: list[str]
    aml_kinds: list[str]


class SarCandidates(BaseModel):
    period_start: datetime
    period_end: datetime
    items: list[SarCandidate]


class Check(BaseModel):
    ok: bool
    detail: str | None = None
    error: str | None = None


class Readiness(BaseModel):
    """GET /readyz: each dependency's check; `ready` only when every one passes (else 503, same body)."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, Check]
