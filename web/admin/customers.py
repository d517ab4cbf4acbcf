"""Customer 360 (staff): find a customer (by name or email: analysts and admins, who may search users; by
customer id: every staff member), then one page with their profile, accounts, recent activity, payees, risk cases
and the audit trail of their sign-ins. Each part is what the API lets this role read; the rest is left out.

Onboarding at the counter (tellers and admins, POST /v1/admin/customers): the profile form, the API's refusals next
to their fields, then the new customer's page with the temporary password to hand over (shown once) and the
sanctions screening's outcome. Erasure (admins, POST /v1/admin/customers/{id}/erase): confirmed by typing the
customer id; the API's refusal (accounts open, the retention period) is said in words on the customer's page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.admin.common import REVIEWERS, optional, page, role_of
from web.client import ApiError
from web.deps import StaffApi
from web.formatting import when
from web.forms import field_errors

router = APIRouter()

PROFILE_SCAN = 500
ONBOARDERS = frozenset({"teller", "admin"})       # the API's policy for create_customer
ONBOARD_FIELDS = ("email", "legal_name", "date_of_birth", "address_line_1", "address_line_2", "postcode", "city",
                  "country", "phone")
REQUIRED = {"email": "Enter the customer's email.", "legal_name": "Enter their legal name, as on their ID.",
            "date_of_birth": "Enter their date of birth."}
# The API's validation message where a person needs plainer words (its pattern, for an email).
PLAINER = {("email", "string_pattern_mismatch"): "email: enter an address like name@example.com"}
TOMBSTONE_DOMAIN = "@erased.invalid"   # an erased user's email (README, Erasure): the API has no flag for it


@router.get("/customers", response_class=HTMLResponse)
async def customers(request: Request, api: StaffApi, q: str = "", customer_id: str = "") -> Response:
    if customer_id.strip():
        return RedirectResponse(f"/admin/customers/{customer_id.strip()}", status_code=303)
    found = None
    if role_of(api) in REVIEWERS:
        found = (await api.get("/v1/admin/users", role="customer", q=q.strip(), limit=25))["items"]
    return page(request, api, "customers.html", customers=found, query={"q": q},
                may_onboard=role_of(api) in ONBOARDERS)


def _may_onboard(api: StaffApi) -> None:
    if role_of(api) not in ONBOARDERS:   # the API's 403, as a page, before a form it would refuse
        raise ApiError(403, {"title": "Forbidden", "detail": "Tellers and admins onboard customers."})


def _onboard_page(request: Request, api: StaffApi, status: int = 200, form: dict[str, str] | None = None,
                  errors: dict[str, list[str]] | None = None) -> Response:
    return page(request, api, "onboard.html", status, form=form or {}, errors=errors or {})


def _onboard_body(form: dict[str, str]) -> dict[str, Any]:
    """The API's body: the required fields, and each optional one only when given."""
    body: dict[str, Any] = {name: form[name].strip() for name in ("email", "legal_name", "date_of_birth")}
    lines = [form[name].strip() for name in ("address_line_1", "address_line_2") if form[name].strip()]
    if lines:
        body["address_lines"] = lines
    body |= {name: form[name].strip() for name in ("postcode", "city", "country", "phone") if form[name].strip()}
    return body


def _onboard_errors(error: ApiError) -> dict[str, list[str]]:
    errors = field_errors(error, (*ONBOARD_FIELDS, "address_lines"), default="email")
    if "address_lines" in errors:
        errors["address_line_1"] = errors.pop("address_lines")
    [(field, _)] = errors.items()
    if (field, error.reason) in PLAINER:
        errors[field] = [PLAINER[(field, error.reason)]]
    return errors


@router.get("/customers/new", response_class=HTMLResponse)
async def onboard_form(request: Request, api: StaffApi) -> Response:
    _may_onboard(api)
    return _onboard_page(request, api)


@router.post("/customers/new", response_class=HTMLResponse)
async def onboard(request: Request, api: StaffApi, email: Annotated[str, Form()] = "",
                  legal_name: Annotated[str, Form()] = "", date_of_birth: Annotated[str, Form()] = "",
                  address_line_1: Annotated[str, Form()] = "", address_line_2: Annotated[str, Form()] = "",
                  postcode: Annotated[str, Form()] = "", city: Annotated[str, Form()] = "",
                  country: Annotated[str, Form()] = "", phone: Annotated[str, Form()] = "") -> Response:
    _may_onboard(api)
    form = {"email": email, "legal_name": legal_name, "date_of_birth": date_of_birth,
            "address_line_1": address_line_1, "address_line_2": address_line_2, "postcode": postcode, "city": city,
            "country": country.strip().upper(), "phone": phone}
    errors = {name: [message] for name, message in REQUIRED.items() if not form[name].strip()}
    if errors:
        return _onboard_page(request, api, 422, form, errors)
    try:
        created = await api.post("/v1/admin/customers", _onboard_body(form))
    except ApiError as error:
        if error.status == 403 or error.status >= 500:
            raise
        return _onboard_page(request, api, 422, form, _onboard_errors(error))
    customer_id, user = created["customer_id"], created["user"]
    api.session.data["onboarded"] = {"customer_id": customer_id, "name": legal_name.strip(), "email": user["email"],
                                     "temporary_password": created["temporary_password"],
                                     "flagged": created["screening"]["flagged"]}
    api.session.flash(f"{legal_name.strip()} is onboarded: open their accounts next.", "success")
    return RedirectResponse(f"/admin/customers/{customer_id}?user_id={user['user_id']}", status_code=303)


async def profile_of(api: Any, customer_id: str, user_id: str) -> dict[str, Any] | None:
    """The customer's user record: by its id when the link gave it, else among the newest customers (the API's
    user search has no customer id filter)."""
    if user_id:
        user = await optional(api.get(f"/v1/admin/users/{user_id}"))
        if user is not None and user.get("customer_id") == customer_id:
            return dict(user)
    users = await api.get("/v1/admin/users", role="customer", limit=PROFILE_SCAN)
    return next((u for u in users["items"] if u.get("customer_id") == customer_id), None)


async def _customer_page(request: Request, api: StaffApi, customer_id: str, user_id: str, status: int = 200,
                         erase_errors: dict[str, list[str]] | None = None) -> Response:
    accounts = (await api.get(f"/v1/customers/{customer_id}/accounts"))["accounts"]
    activity = await optional(api.get(f"/v1/customers/{customer_id}/timeline", limit=25))
    payees = await optional(api.get("/v1/payees", customer_id=customer_id))
    cases = await optional(api.get("/v1/admin/cases", customer_id=customer_id, limit=25))
    profile = trail = None
    if role_of(api) in REVIEWERS:
        profile = await profile_of(api, customer_id, user_id)
        if profile is not None:
            trail = await optional(api.get("/v1/admin/audit", user_id=profile["user_id"], limit=25))
    onboarded = api.session.data.pop("onboarded", None)
    if onboarded is not None and onboarded["customer_id"] != customer_id:
        onboarded = None
    erased = profile is not None and str(profile["email"]).endswith(TOMBSTONE_DOMAIN)
    return page(request, api, "customer.html", status, customer_id=customer_id, accounts=accounts, profile=profile,
                activity=(activity or {}).get("items", []), payees=(payees or {}).get("payees", []),
                cases=(cases or {}).get("items") if cases is not None else None,
                trail=(trail or {}).get("items") if trail is not None else None,
                onboarded=onboarded, erased=erased, erase_errors=erase_errors or {})


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
async def customer(request: Request, api: StaffApi, customer_id: str, user_id: str = "") -> Response:
    return await _customer_page(request, api, customer_id, user_id)


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def refusal_in_words(error: ApiError, accounts: list[dict[str, Any]]) -> str:
    """Why the API will not erase the customer (yet), as a person says it."""
    if error.reason == "accounts_open":
        names = {a["account_id"]: a.get("iban_formatted") or a["account_id"] for a in accounts}
        still_open = [names.get(a, a) for a in error.problem.get("accounts") or []]
        return (f"Their personal data cannot be erased while they have an open account: close "
                f"{', '.join(still_open) or 'every account'} first.")
    if error.reason == "retention_period":
        until = when(error.problem.get("erasable_from"), with_time=False)
        return (f"The bank must keep this customer's records until {until}: the retention period after their last "
                "account closed has not passed.")
    if error.reason == "already_erased":
        return "This customer's personal data is erased already."
    return error.detail


@router.post("/customers/{customer_id}/erase", response_class=HTMLResponse)
async def erase(request: Request, api: StaffApi, customer_id: str, confirm: Annotated[str, Form()] = "",
                user_id: Annotated[str, Form()] = "") -> Response:
    if confirm.strip() != customer_id:
        errors = {"confirm": [f"Type the customer id {customer_id} exactly to confirm."]}
        return await _customer_page(request, api, customer_id, user_id, 422, errors)
    try:
        erased = await api.post(f"/v1/admin/customers/{customer_id}/erase")
    except ApiError as error:
        if error.status in (403, 404) or error.status >= 500:
            raise
        accounts = (await api.get(f"/v1/customers/{customer_id}/accounts"))["accounts"]
        return await _customer_page(request, api, customer_id, user_id, 409,
                                    {"erase": [refusal_in_words(error, accounts)]})
    api.session.flash(f"The customer's personal data is erased. The ledger keeps "
                      f"{_count(len(erased['accounts_kept']), 'closed account')} under the customer id; "
                      f"{_count(erased['sessions_ended'], 'session')} ended.", "success")
    return RedirectResponse(f"/admin/customers/{customer_id}?user_id={user_id}", status_code=303)
