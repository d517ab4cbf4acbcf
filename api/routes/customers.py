"""Staff-assisted onboarding and erasure of customers (issue 18 points 4 and 2).

`POST /v1/admin/customers`: a teller or admin creates a customer with their profile (the person is at the counter):
a customer id, a user with a temporary password to hand over (changed at first login), the profile, and a KYC
case whose sanctions screening of the legal name is done there and then. Accounts are then opened for them with
`POST /v1/accounts` naming the customer id, which now refuses a customer id nobody has (422 `unknown_customer`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, StrictStr

from api.access_models import TemporaryPassword, _Body
from api.customers import CustomerStore, NewCustomer, sanctions_list, screen
from api.deps import PlatformDep, ViewDep
from api.identity import EmailTaken, new_customer_id
from api.problems import PROBLEM_JSON, Problem
from api.routes.auth import caller, user_view
from api.routes.profile import PRINTABLE, ContactEmail, Line, _invalid
from api.security import hash_password, temporary_password
from core.profile import InvalidContact, check_country, check_date_of_birth, normalise_phone

router = APIRouter(prefix="/v1/admin/customers", tags=["admin: customers"])
_PROBLEMS = {"content": {PROBLEM_JSON: {}}}


class OnboardRequest(_Body):
    email: ContactEmail
    legal_name: Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=PRINTABLE)]
    date_of_birth: date
    address_lines: Annotated[list[Line], Field(max_length=4)] = []
    postcode: Annotated[StrictStr, Field(min_length=1, max_length=20, pattern=PRINTABLE)] | None = None
    city: Line | None = None
    country: Annotated[StrictStr, Field(description="ISO 3166-1 alpha-2", examples=["DE"])] | None = None
    phone: Annotated[StrictStr, Field(max_length=40, description="international or national in the bank's "
                                      "default region; staff saw the customer, so no code is sent")] | None = None


class Screening(BaseModel):
    flagged: bool = Field(description="the legal name matched the sanctions list: the KYC queue shows the case")
    hits: list[dict[str, Any]]


class OnboardedCustomer(TemporaryPassword):
    customer_id: str
    kyc_status: str
    screening: Screening


def unknown_customer(customer_id: str) -> Problem:
    return Problem(422, "Unknown customer", f"customer_id: no customer {customer_id}; onboard them first "
                   "(POST /v1/admin/customers)", "unknown_customer",
                   errors=[{"loc": ["body", "customer_id"], "type": "unknown_customer", "msg": "no such customer"}])


def _new_customer(body: OnboardRequest, region: str, password_hash: str) -> NewCustomer:
    legal_name = body.legal_name.strip()
    if not legal_name:
        raise Problem(422, "Invalid request", "legal_name: must not be blank", "blank")
    try:
        born = check_date_of_birth(body.date_of_birth, datetime.now(UTC).date())
        country = check_country(body.country) if body.country is not None else None
        phone = normalise_phone(body.phone, region) if body.phone is not None else None
    except InvalidContact as error:
        raise _invalid(error) from None
    return NewCustomer(email=body.email.strip(), name=legal_name, password_hash=password_hash, legal_name=legal_name,
                       date_of_birth=born, address_lines=list(body.address_lines), postcode=body.postcode,
                       city=body.city, country=country, phone=phone)


@router.post("", status_code=201, response_model=OnboardedCustomer, name="create_customer",
             summary="Onboard a customer at the counter: profile, temporary password, sanctions screening",
             description="The customer's accounts are then opened with POST /v1/accounts naming `customer_id`. "
                         "A legal name on the sanctions list is flagged (`screening.flagged`) and the case is put "
                         "in the KYC queue; the customer is created all the same (the list matches names, not "
                         "people: compliance decides).",
             responses={409: _PROBLEMS, 422: _PROBLEMS})
async def create_customer(body: OnboardRequest, platform: PlatformDep) -> OnboardedCustomer:
    access, store = platform.access, CustomerStore(platform.pg)
    email, legal_name = body.email.strip(), body.legal_name.strip()
    password = temporary_password(email, legal_name)
    customer = _new_customer(body, platform.settings.phone_default_region, await hash_password(password))
    hits = screen(sanctions_list(platform.settings.sanctions_file), customer.legal_name)
    customer_id = new_customer_id()
    try:
        user = await store.onboard(customer, customer_id, hits)
    except EmailTaken:
        raise Problem(409, "Email already registered", "an account with this email exists", "email_taken") from None
    await access.audit.record("customer_onboarded", subject_user_id=user.user_id,
                              details={"customer_id": customer_id, "screening_hits": str(len(hits))})
    if hits:
        await access.audit.record("sanctions_screening_hit", subject_user_id=user.user_id,
                                  details={"customer_id": customer_id, "during": "onboarding",
                                           "entries": ",".join(h["uid"] for h in hits)})
    return OnboardedCustomer(user=user_view(user), temporary_password=password, customer_id=customer_id,
                             kyc_status="not_started", screening=Screening(flagged=bool(hits), hits=hits))


# ---------------------------------------------------------------- erasure


class Erased(BaseModel):
    customer_id: str
    erased_at: datetime
    accounts_kept: list[str] = Field(description="closed accounts whose postings the ledger and the books keep "
                                                 "(by id: they name the customer only by customer id)")
    audit_records_tombstoned: int
    sessions_ended: int


def _unknown(customer_id: str) -> Problem:
    return Problem(404, "Unknown customer", f"no customer {customer_id}", "unknown_customer")


@router.post("/{customer_id}/erase", response_model=Erased, name="erase_customer",
             summary="Erase a customer's personal data (every account closed, the retention period passed)",
             description="Removes or tombstones the person everywhere it was copied: PostgreSQL (user anonymised, "
                         "profile, pending contact changes, outbox messages, reset tokens, KYC documents and "
                         "screening, payees), Redis (sessions, lock-out counters) and the MongoDB audit trail "
                         "(IP, user agent and details of their records). The ledger keeps every posting under "
                         "the customer id, so the books still balance. 409 `accounts_open`, `retention_period` "
                         "(BANK_ERASURE_RETENTION since the last account closed), `already_erased`.",
             responses={404: _PROBLEMS, 409: _PROBLEMS})
async def erase_customer(customer_id: Annotated[str, Path(max_length=100)], platform: PlatformDep,
                         view: ViewDep) -> Erased:
    access, store = platform.access, CustomerStore(platform.pg)
    user_id = await store.user_of(customer_id)
    if user_id is None:
        raise _unknown(customer_id)
    if await store.erased(customer_id):
        raise Problem(409, "Already erased", f"customer {customer_id} was erased already", "already_erased")
    accounts = sorted(a.account_id for a in view.accounts.values() if a.customer_id == customer_id)
    still_open = [a for a in accounts if view.accounts[a].status != "closed"]
    if still_open:
        raise Problem(409, "Accounts open", f"close every account first: {', '.join(still_open)}", "accounts_open",
                      accounts=still_open)
    now = datetime.now(UTC)
    last_closed = max((view.closed_at[a] for a in accounts if a in view.closed_at), default=None)
    if last_closed is not None and now - last_closed < platform.settings.erasure_retention:
        until = last_closed + platform.settings.erasure_retention
        raise Problem(409, "Retention period", f"the bank must keep this customer's records until "
                      f"{until.isoformat()} (BANK_ERASURE_RETENTION after the last account closed)",
                      "retention_period", erasable_from=until.isoformat())
    user = await access.users.by_id(user_id)
    sessions = await access.store.revoke_all(user_id)
    if user is not None:
        await access.store.unlock(user.email)
    await store.erase(customer_id, user_id, caller().user_id, f"erased-{user_id}@erased.invalid")
    tombstoned = await access.trail.erase(user_id)
    await access.audit.record("customer_erased", subject_user_id=user_id, details={
        "customer_id": customer_id, "accounts_kept": str(len(accounts))})
    return Erased(customer_id=customer_id, erased_at=now, accounts_kept=accounts,
                  audit_records_tombstoned=tombstoned, sessions_ended=len(sessions))
