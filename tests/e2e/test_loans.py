"""Loans over HTTP against the running stack (issue 17): products, application, assessment by the servicer with
the credit bureau simulator, decisions, disbursement and repayments on the books, with business time moved by an
admin (PUT /v1/admin/clock), never by sleeping: a year of instalments takes seconds.

Business time only runs forward and the whole session shares it: each test starts from wherever it stands.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy_financial as npf
import pytest

from cli.devstack import Stack, free_port
from core.events import LoanInterestAccrued
from tests.support import Bank, problem, read_log, with_customers

pytestmark = pytest.mark.usefixtures("stack")

WAIT_S = 60.0
ZONE_HOURS = 3   # a due date's collection: three hours into the (Europe/Berlin) business day, UTC


async def business_now(admin: Bank) -> datetime:
    response = await admin.http.get("/v1/admin/clock")
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["now"])


async def move_to_day(admin: Bank, day: date) -> None:
    """Business time to a few hours into `day` (the bank's zone is ahead of UTC), never backwards."""
    moment = datetime.combine(day, time(ZONE_HOURS), UTC)
    if moment > await business_now(admin):
        response = await admin.http.put("/v1/admin/clock", json={"at": moment.isoformat()})
        assert response.status_code == 200, response.text


async def create_product(admin: Bank, **changes: Any) -> dict[str, Any]:
    body = {"name": f"Personal loan {uuid.uuid4().hex[:6]}", "currency": "EUR", "principal_min": "500.00",
            "principal_max": "50000.00", "term_min": 3, "term_max": 36, "annual_rate_percent": "12",
            "origination_fee_percent": "1"} | changes
    response = await admin.http.post("/v1/admin/loan-products", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def loan_until(client: Bank, loan_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The loan once `done` holds (the servicer works in the background: poll, with a deadline)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        response = await client.http.get(f"/v1/loans/{loan_id}")
        assert response.status_code == 200, response.text
        loan = dict(response.json())
        if done(loan):
            return loan
        assert asyncio.get_running_loop().time() < deadline, f"the loan never got there: {loan}"
        await asyncio.sleep(0.1)


async def apply(customer: Bank, product: dict[str, Any], account: str, amount: str, term: int) -> dict[str, Any]:
    response = await customer.http.post("/v1/loans", json={"product_id": product["product_id"], "account_id": account,
                                                           "amount": amount, "term": term, "purpose": "a used car"})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def decide(reviewer: Bank, loan_id: str, decision: str, **body: Any) -> dict[str, Any]:
    response = await reviewer.http.post(f"/v1/admin/loans/{loan_id}/decision", json={"decision": decision} | body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def balance(client: Bank, account: str) -> Decimal:
    return Decimal((await client.account(account))["balance"])


async def balance_reaches(client: Bank, account: str, amount: Decimal) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while (current := await balance(client, account)) != amount:
        assert asyncio.get_running_loop().time() < deadline, f"{account} is at {current}, never reached {amount}"
        await asyncio.sleep(0.1)


async def ledger_credits(staff: Bank, ledger_account: str, account: str, side: str = "credit") -> Decimal:
    """What the books credited (or debited) to a ledger account (interest-income, fee-income, loans) from one bank
    account."""
    total, cursor = Decimal(0), None
    while True:
        response = await staff.http.get(f"/v1/admin/books/accounts/{ledger_account}/entries",
                                        params={"currency": "EUR", "limit": 500} | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        page = response.json()
        total += sum(Decimal(entry["amount"]) for entry in page["items"]
                     if entry["account_id"] == account and entry["side"] == side)
        cursor = page["next_cursor"]
        if cursor is None:
            return total


async def trial_balance_is_zero(staff: Bank) -> None:
    response = await staff.http.get("/v1/admin/books/trial-balance", params={"currency": "EUR"})
    assert response.status_code == 200, response.text
    books = response.json()["currencies"][0]
    assert books["balanced"] and Decimal(books["total"]) == 0, books
    assert not [c for c in books["constraints_broken"]
                if c["ledger_account_id"] in ("loans", "interest-income", "interest-receivable", "loan-losses")]


async def ledger_net(staff: Bank, ledger_account: str, account: str) -> Decimal:
    """A ledger account's movement from one bank account: credits less debits."""
    return await ledger_credits(staff, ledger_account, account) - \
        await ledger_credits(staff, ledger_account, account, "debit")


def run(api_url: str, scenario: Callable[..., Any]) -> Any:
    async def with_staff(teller: Bank, customer: Bank, other: Bank) -> Any:
        admin, analyst = Bank(api_url, role="admin"), Bank(api_url, role="analyst")
        try:
            return await scenario(teller, customer, other, admin, analyst)
        finally:
            await admin.close()
            await analyst.close()

    return with_customers(api_url, with_staff, "Lena Borrower", "Otto Other")


def test_a_twelve_month_loan_is_assessed_approved_paid_out_repaid_each_month_and_closed(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, other: Bank, admin: Bank, analyst: Bank) -> None:
        product = await create_product(admin)
        account = await customer.open()
        assert (await teller.fund(account, "300.00")).status_code == 200
        applied = await apply(customer, product, account, "1200.00", 12)
        assert applied["status"] in ("assessing", "in_review") and applied["assessment"] is None   # customers: none
        # another customer's loan is unknown to them
        problem(await other.http.get(f"/v1/loans/{applied['loan_id']}"), 404, "unknown_loan")

        # the servicer assesses it with the bureau's score and the customer's history, for the reviewer
        seen = await loan_until(analyst, applied["loan_id"], lambda loan: loan["status"] == "in_review")
        assessment = seen["assessment"]
        assert 300 <= assessment["bureau_score"] <= 850 and assessment["bureau_report_id"].startswith("CB-")
        assert 0 <= assessment["score"] <= 100 and assessment["recommendation"] in ("approve", "refer", "decline")
        # what the log told the scorer (the deposit may or may not have reached the servicer before the application)
        assert assessment["inputs"]["inflows"] in (0, 30000) and assessment["inputs"]["loans_outstanding"] == 0
        queue = (await analyst.http.get("/v1/loans", params={"status": "in_review"})).json()["loans"]
        assert applied["loan_id"] in [loan["loan_id"] for loan in queue]

        approved = await decide(analyst, applied["loan_id"], "approve")
        assert approved["terms"]["amount"] == "1200.00" and approved["terms"]["approvals_needed"] == 1
        loan = await loan_until(customer, applied["loan_id"], lambda loan: loan["status"] == "active")
        # paid out less the 1 % origination fee; the books: loans 1,200.00, fee income 12.00
        assert loan["disbursed_amount"] == "1188.00" and loan["origination_fee"] == "12.00"
        await balance_reaches(customer, account, Decimal("1488.00"))

        # the schedule: equal instalments at 1 % a month, as numpy-financial's pmt/ipmt compute it
        schedule = loan["schedule"]
        assert len(schedule) == 12 and loan["outstanding_principal"] == "1200.00"
        payment = Decimal(str(round(float(-npf.pmt(0.01, 12, 1200)), 2)))
        assert all(Decimal(item["total"]) == payment for item in schedule[:-1])
        assert Decimal(schedule[0]["interest"]) == Decimal("12.00")
        assert sum(Decimal(item["principal"]) for item in schedule) == Decimal("1200.00")
        total_due = sum(Decimal(item["total"]) for item in schedule)
        assert Decimal(loan["total_interest"]) == total_due - Decimal("1200.00")

        # each due date, the servicer collects the instalment from the account
        for number, item in enumerate(schedule, start=1):
            await move_to_day(admin, date.fromisoformat(item["due_on"]))
            loan = await loan_until(customer, applied["loan_id"],
                                    lambda loan, n=number: len(loan["repayments"]) >= n)
        loan = await loan_until(customer, applied["loan_id"], lambda loan: loan["status"] == "closed")
        assert all(item["status"] == "paid" for item in loan["schedule"])
        assert {r["kind"] for r in loan["repayments"]} == {"scheduled"} and len(loan["repayments"]) == 12
        assert loan["outstanding_principal"] == "0.00" and loan["days_past_due"] == 0
        await balance_reaches(customer, account, Decimal("1488.00") - total_due)

        # the books: interest accrued day by day into interest-receivable, each instalment's settled from there;
        # interest income from this account equals the interest the customer paid, and the books balance
        assert await ledger_credits(admin, "interest-receivable", account, "debit") > 0
        assert await ledger_net(admin, "interest-receivable", account) == 0 and loan["interest_accrued"] == "0.00"
        assert await ledger_net(admin, "interest-income", account) == Decimal(loan["interest_paid"]) \
            == Decimal(loan["total_interest"])
        assert await ledger_credits(admin, "fee-income", account) == Decimal("12.00")
        assert await ledger_credits(admin, "loans", account) == Decimal("1200.00")
        await trial_balance_is_zero(admin)
        # closed: the account may close once empty (the ledger refused it while the loan was outstanding)

    run(api_url, scenario)


def test_missed_instalments_put_a_loan_in_arrears_with_a_late_fee_each_until_the_money_is_there(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, other: Bank, admin: Bank, analyst: Bank) -> None:
        product = await create_product(admin, origination_fee_percent="0", late_fee="15.00")
        account = await customer.open()
        applied = await apply(customer, product, account, "600.00", 3)
        await loan_until(analyst, applied["loan_id"], lambda loan: loan["status"] == "in_review")
        await decide(admin, applied["loan_id"], "approve")
        loan = await loan_until(customer, applied["loan_id"], lambda loan: loan["status"] == "active")
        # the customer spends the money: nothing is left when the instalments fall due
        assert (await teller.withdraw(account, "600.00")).status_code == 200
        problem(await customer.post("/v1/accounts/" + account + "/close", {}), 422, "loan_outstanding")

        first, second = (date.fromisoformat(item["due_on"]) for item in loan["schedule"][:2])
        await move_to_day(admin, second + timedelta(days=3))
        # the servicer charges each missed instalment's late fee on its next tick
        loan = await loan_until(customer, applied["loan_id"], lambda loan: loan["schedule"][1]["fees"] != "0.00")
        assert loan["days_past_due"] == (second + timedelta(days=3) - first).days
        assert loan["delinquency_bucket"] == "31-60" and loan["repayments"] == []
        assert [item["status"] for item in loan["schedule"]] == ["overdue", "overdue", "upcoming"]
        # one late fee per missed instalment, however many days it stays missed
        assert [item["fees"] for item in loan["schedule"]] == ["15.00", "15.00", "0.00"]
        portfolio = (await analyst.http.get("/v1/admin/loans/portfolio")).json()
        assert applied["loan_id"] in [row["loan_id"] for row in portfolio["arrears"]]
        row = next(row for row in portfolio["products"] if row["product_id"] == product["product_id"])
        assert row["loans"] == 1 and row["par30"] == "100.00" and row["par90"] == "0.00"
        csv = await analyst.http.get("/v1/admin/loans/portfolio.csv")
        assert csv.status_code == 200 and applied["loan_id"] in csv.text

        # the money arrives; the next business day the servicer collects both overdue instalments at once
        owed = sum(Decimal(item["total"]) for item in loan["schedule"][:2])
        assert (await teller.fund(account, str(owed))).status_code == 200
        await move_to_day(admin, second + timedelta(days=4))
        loan = await loan_until(customer, applied["loan_id"], lambda loan: loan["days_past_due"] == 0)
        assert [item["status"] for item in loan["schedule"]][:2] == ["paid", "paid"]
        assert loan["delinquency_bucket"] is None and Decimal(loan["overdue"]) == 0
        assert loan["fees_paid"] == "30.00" and [item["fees"] for item in loan["schedule"]][:2] == ["15.00", "15.00"]
        await balance_reaches(customer, account, Decimal("0.00"))
        assert await ledger_credits(admin, "fee-income", account) == Decimal("30.00")

    run(api_url, scenario)


def test_interest_accrues_by_the_day_and_a_write_off_takes_the_loan_and_its_interest_to_losses(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, other: Bank, admin: Bank, analyst: Bank) -> None:
        product = await create_product(admin, origination_fee_percent="0")
        account = await customer.open()
        applied = await apply(customer, product, account, "900.00", 3)
        loan_id = applied["loan_id"]
        await loan_until(analyst, loan_id, lambda loan: loan["status"] == "in_review")
        await decide(analyst, loan_id, "approve")
        loan = await loan_until(customer, loan_id, lambda loan: loan["status"] == "active")
        disbursed = date.fromisoformat(loan["disbursed_on"])

        # ten business days on, the close of business has accrued the interest of the days closed since
        await move_to_day(admin, disbursed + timedelta(days=10))
        loan = await loan_until(customer, loan_id, lambda loan: loan["accrued_through"] is not None
                                and date.fromisoformat(loan["accrued_through"]) >= disbursed + timedelta(days=9))
        # the first instalment's interest spread evenly over its period's days, floored
        first = loan["schedule"][0]
        period = (date.fromisoformat(first["due_on"]) - disbursed).days
        elapsed = (date.fromisoformat(loan["accrued_through"]) - disbursed).days + 1
        earned = (Decimal(int(Decimal(first["interest"]) * 100) * elapsed // period) / 100).quantize(Decimal("0.01"))
        assert Decimal(loan["interest_accrued"]) == earned > 0
        assert await ledger_credits(admin, "interest-income", account) == earned
        assert await ledger_credits(admin, "interest-receivable", account, "debit") == earned
        rows = (await analyst.http.get("/v1/admin/loans/portfolio")).json()["products"]
        assert [row["interest_accrued"] for row in rows if row["product_id"] == product["product_id"]] == [str(earned)]

        # only admins write a loan off, with a reason
        problem(await analyst.http.post(f"/v1/admin/loans/{loan_id}/write-off", json={"reason": "gone"}), 403,
                "forbidden")
        problem(await admin.http.post(f"/v1/admin/loans/{loan_id}/write-off", json={"reason": ""}), 422,
                "string_too_short")
        written = await admin.http.post(f"/v1/admin/loans/{loan_id}/write-off", params={"wait": "true"},
                                        json={"reason": "the borrower cannot be found"})
        assert written.status_code == 200 and written.json()["status"] == "accepted", written.text
        loan = await loan_until(customer, loan_id, lambda loan: loan["status"] == "written_off")
        assert loan["written_off"]["principal"] == "900.00" and loan["written_off"]["interest"] == str(earned)
        assert loan["written_off"]["reason"] == "the borrower cannot be found"
        assert loan["outstanding_principal"] == "0.00" and loan["interest_accrued"] == "0.00"
        # the books: principal and interest receivable out to loan losses; nothing more collected or accrued
        assert await ledger_credits(admin, "loan-losses", account, "debit") == Decimal("900.00") + earned
        assert await ledger_net(admin, "loans", account) == 0
        assert await ledger_net(admin, "interest-receivable", account) == 0
        problem(await customer.post(f"/v1/loans/{loan_id}/repayments", {"amount": "5.00"}), 409, "loan_not_active")
        problem(await admin.http.post(f"/v1/admin/loans/{loan_id}/write-off", json={"reason": "again"}), 409,
                "loan_not_active")
        await trial_balance_is_zero(admin)
        # the customer's activity says the loan was written off; the daily accruals are the bank's books' only
        timeline = f"/v1/customers/{customer.identity.customer_id}/timeline"
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            summaries = [item["summary"] for item in (await customer.http.get(timeline)).json()["items"]]
            if any(summary.startswith("Loan written off") for summary in summaries):
                break
            assert asyncio.get_running_loop().time() < deadline, summaries
            await asyncio.sleep(0.1)
        assert not [summary for summary in summaries if "accru" in summary.lower()], summaries

    run(api_url, scenario)


def test_the_servicer_killed_mid_catch_up_and_a_second_one_accrue_each_date_once(
        api_url: str, stack: Stack, kafka_bootstrap: str) -> None:
    async def scenario(teller: Bank, customer: Bank, other: Bank, admin: Bank, analyst: Bank) -> None:
        product = await create_product(admin, origination_fee_percent="0")
        account = await customer.open()
        loan_id = (await apply(customer, product, account, "2400.00", 6))["loan_id"]
        await loan_until(analyst, loan_id, lambda loan: loan["status"] == "in_review")
        await decide(analyst, loan_id, "approve")
        disbursed = date.fromisoformat((await loan_until(customer, loan_id, lambda loan: loan["status"] == "active"
                                                         ))["disbursed_on"])
        port = free_port()
        second = dataclasses.replace(stack.scheduler_spec(), name="scheduler-2", port=port,
                                     env={"BANK_SCHEDULER_PORT": str(port)})
        await move_to_day(admin, disbursed + timedelta(days=12))
        stack.kill("scheduler", signal.SIGKILL)   # whether or not it got to send the accrual
        await asyncio.to_thread(stack.start_scheduler)
        await asyncio.to_thread(stack.start, second)   # and a second servicer besides
        try:
            for days in (13, 14, 20):   # more dates while both run
                await move_to_day(admin, disbursed + timedelta(days=days))
                loan = await loan_until(customer, loan_id, lambda loan, days=days: loan["accrued_through"] == (
                    disbursed + timedelta(days=days - 1)).isoformat())
        finally:
            stack.kill(second.name)
        accruals = sorted((event for event in await read_log(kafka_bootstrap)
                           if isinstance(event, LoanInterestAccrued) and event.loan_id == loan_id),
                          key=lambda event: event.through_date)
        # the dates from the disbursement on, each in exactly one accrual, in order
        assert accruals[0].from_date == disbursed.isoformat()
        for before, after in zip(accruals, accruals[1:], strict=False):
            assert date.fromisoformat(after.from_date) == date.fromisoformat(before.through_date) + timedelta(days=1)
        assert accruals[-1].through_date == (disbursed + timedelta(days=19)).isoformat()
        assert Decimal(sum(event.amount for event in accruals)) / 100 == Decimal(loan["interest_accrued"]) > 0

    run(api_url, scenario)


def test_decisions_second_approval_counter_offer_rejection_and_withdrawal(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, other: Bank, admin: Bank, analyst: Bank) -> None:
        product = await create_product(admin)
        account = await customer.open()
        problem(await customer.http.post("/v1/loans", json={
            "product_id": product["product_id"], "account_id": account, "amount": "100.00", "term": 12,
            "purpose": "too small"}), 422, "principal_out_of_range")
        others = await other.open()
        problem(await customer.http.post("/v1/loans", json={
            "product_id": product["product_id"], "account_id": others, "amount": "1000.00", "term": 12,
            "purpose": "not my account"}), 404, "unknown_account")

        # above the second-approval threshold (25,000.00): two staff members approve the same terms
        big = await apply(customer, product, account, "30000.00", 36)
        await loan_until(analyst, big["loan_id"], lambda loan: loan["status"] == "in_review")
        problem(await analyst.http.post(f"/v1/admin/loans/{big['loan_id']}/decision", json={"decision": "reject"}),
                422, "reason_required")
        first = await decide(analyst, big["loan_id"], "approve")
        assert first["status"] == "awaiting_second_approval" and first["terms"]["approvals_needed"] == 2
        problem(await analyst.http.post(f"/v1/admin/loans/{big['loan_id']}/decision", json={"decision": "approve"}),
                409, "same_reviewer")
        problem(await admin.http.post(f"/v1/admin/loans/{big['loan_id']}/decision",
                                      json={"decision": "approve", "term": 24}), 422, "terms_differ")
        second = await decide(admin, big["loan_id"], "approve")
        assert second["status"] in ("approved", "active") and second["terms"]["approvals"] == 2
        await loan_until(customer, big["loan_id"], lambda loan: loan["status"] == "active")

        # a counter-offer: the customer accepts a smaller loan, which is then paid out
        offered = await apply(customer, product, account, "5000.00", 24)
        await loan_until(analyst, offered["loan_id"], lambda loan: loan["status"] == "in_review")
        offer = await decide(analyst, offered["loan_id"], "counter_offer", amount="3000.00", term=12,
                             annual_rate_percent="13.5", reason="we can lend 3,000.00 over a year")
        assert offer["status"] == "offered"
        seen = (await customer.http.get(f"/v1/loans/{offered['loan_id']}")).json()
        assert seen["terms"]["amount"] == "3000.00" and seen["decision_reason"] == "we can lend 3,000.00 over a year"
        accepted = await customer.http.post(f"/v1/loans/{offered['loan_id']}/offer", json={"accept": True})
        assert accepted.status_code == 200, accepted.text
        loan = await loan_until(customer, offered["loan_id"], lambda loan: loan["status"] == "active")
        assert loan["disbursed_amount"] == "2970.00" and len(loan["schedule"]) == 12

        # rejected with a reason the customer reads; withdrawn before a decision
        rejected = await apply(customer, product, account, "2000.00", 12)
        await loan_until(analyst, rejected["loan_id"], lambda loan: loan["status"] == "in_review")
        done = await decide(admin, rejected["loan_id"], "reject", reason="income too irregular")
        assert done["status"] == "rejected"
        seen = (await customer.http.get(f"/v1/loans/{rejected['loan_id']}")).json()
        assert seen["decision_reason"] == "income too irregular" and seen["reviews"] == []
        withdrawn = await apply(customer, product, account, "1000.00", 6)
        answer = await customer.http.post(f"/v1/loans/{withdrawn['loan_id']}/withdraw")
        assert answer.status_code == 200 and answer.json()["status"] == "withdrawn"
        problem(await customer.http.post(f"/v1/loans/{withdrawn['loan_id']}/withdraw"), 409, "invalid_loan_status")
        problem(await admin.http.post(f"/v1/admin/loans/{withdrawn['loan_id']}/decision",
                                      json={"decision": "approve"}), 409, "not_reviewable")
        mine = (await customer.http.get("/v1/loans")).json()["loans"]
        assert {loan["loan_id"] for loan in mine} == {big["loan_id"], offered["loan_id"], rejected["loan_id"],
                                                      withdrawn["loan_id"]}

    run(api_url, scenario)


def test_repay_in_part_then_pay_off_by_quote(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, other: Bank, admin: Bank, analyst: Bank) -> None:
        product = await create_product(admin, origination_fee_percent="0", day_count="ACT/365F")
        account = await customer.open()
        applied = await apply(customer, product, account, "1000.00", 6)
        await loan_until(analyst, applied["loan_id"], lambda loan: loan["status"] == "in_review")
        await decide(analyst, applied["loan_id"], "approve")
        loan = await loan_until(customer, applied["loan_id"], lambda loan: loan["status"] == "active")
        assert (await teller.fund(account, "100.00")).status_code == 200
        # a manual repayment pays the first instalment's interest before its principal
        paid = await customer.post(f"/v1/loans/{applied['loan_id']}/repayments", {"amount": "5.00"})
        assert paid.status_code == 200 and paid.json()["status"] == "accepted", paid.text
        loan = await loan_until(customer, applied["loan_id"], lambda loan: len(loan["repayments"]) == 1)
        repayment = loan["repayments"][0]
        assert loan["schedule"][0]["interest"] == "10.00"
        assert repayment["interest"] == "5.00" and repayment["principal"] == "0.00"
        assert loan["schedule"][0]["status"] == "partly_paid" and loan["schedule"][0]["paid"] == "5.00"
        problem(await customer.post(f"/v1/loans/{applied['loan_id']}/repayments", {"amount": "5000.00"}), 422,
                "more_than_owed")
        problem(await other.post(f"/v1/loans/{applied['loan_id']}/repayments", {"amount": "5.00"}), 404,
                "unknown_loan")

        # twenty days on, the payoff quote: all principal, and the interest accrued over those days (ACT/365F) less
        # the interest already paid for this period
        disbursed = date.fromisoformat(loan["disbursed_on"])
        await move_to_day(admin, disbursed + timedelta(days=20))
        quote = (await customer.http.get(f"/v1/loans/{applied['loan_id']}/payoff-quote")).json()
        today = date.fromisoformat(quote["valid_on"])
        assert quote["principal"] == "1000.00" and quote["fees"] == "0.00"
        accrued = (Decimal("1000.00") * Decimal("0.12") * (today - disbursed).days / 365).quantize(Decimal("0.01"))
        assert Decimal(quote["interest"]) == accrued - Decimal("5.00") > 0
        assert Decimal(quote["amount"]) == Decimal("1000.00") + Decimal(quote["interest"])
        key = f"payoff-{applied['loan_id']}"
        paid_off = await customer.post(f"/v1/loans/{applied['loan_id']}/payoff", {}, key=key)
        assert paid_off.status_code == 200 and paid_off.json()["status"] == "accepted", paid_off.text
        loan = await loan_until(customer, applied["loan_id"], lambda loan: loan["status"] == "closed")
        # its answer lost, the payoff is asked for again with its key: the payoff's answer, not "nothing to pay off"
        again = await customer.post(f"/v1/loans/{applied['loan_id']}/payoff", {}, key=key)
        assert again.status_code == 200 and again.json()["command_id"] == paid_off.json()["command_id"], again.text
        problem(await customer.post(f"/v1/loans/{applied['loan_id']}/payoff", {}), 409, "loan_not_active")
        assert loan["outstanding_principal"] == "0.00"
        await balance_reaches(customer, account, Decimal("1100.00") - Decimal("5.00") - Decimal(quote["amount"]))
        await trial_balance_is_zero(admin)

    run(api_url, scenario)


def test_products_rates_change_only_forward_and_retired_products_take_no_application(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, other: Bank, admin: Bank, analyst: Bank) -> None:
        product = await create_product(admin)
        today = (await business_now(admin)).date()
        problem(await admin.http.post(f"/v1/admin/loan-products/{product['product_id']}/rates", json={
            "annual_rate_percent": "9.5", "effective_on": (today - timedelta(days=1)).isoformat()}), 422,
            "backdated_rate")
        changed = await admin.http.post(f"/v1/admin/loan-products/{product['product_id']}/rates", json={
            "annual_rate_percent": "9.5", "effective_on": (today + timedelta(days=30)).isoformat()})
        assert changed.status_code == 200, changed.text
        assert [rate["annual_rate_percent"] for rate in changed.json()["rates"]] == ["12", "9.5"]
        assert changed.json()["version"] == 2 and changed.json()["annual_rate_percent"] == "12"
        one = await customer.http.get(f"/v1/loan-products/{product['product_id']}")
        assert one.status_code == 200 and one.json() == changed.json()
        problem(await customer.http.get("/v1/loan-products/no-such-product"), 404, "unknown_loan_product")
        problem(await analyst.http.post("/v1/admin/loan-products", json={}), 403, "forbidden")
        problem(await admin.http.post("/v1/admin/loan-products", json={
            "name": "inverted", "currency": "EUR", "principal_min": "900.00", "principal_max": "100.00",
            "term_min": 3, "term_max": 6, "annual_rate_percent": "5"}), 422, "invalid_principal")
        retired = await admin.http.put(f"/v1/admin/loan-products/{product['product_id']}", json={"status": "retired"})
        assert retired.status_code == 200 and retired.json()["status"] == "retired"
        listed = (await customer.http.get("/v1/loan-products")).json()["products"]
        assert product["product_id"] not in [p["product_id"] for p in listed]
        problem(await customer.http.get(f"/v1/loan-products/{product['product_id']}"), 404, "unknown_loan_product")
        assert (await analyst.http.get(f"/v1/loan-products/{product['product_id']}")).json()["status"] == "retired"
        account = await customer.open()
        problem(await customer.http.post("/v1/loans", json={
            "product_id": product["product_id"], "account_id": account, "amount": "1000.00", "term": 12,
            "purpose": "retired"}), 404, "unknown_loan_product")

    run(api_url, scenario)


def test_a_prepayment_lowers_the_instalment_or_shortens_the_term_as_the_customer_chooses(api_url: str) -> None:
    async def scenario(teller: Bank, customer: Bank, other: Bank, admin: Bank, analyst: Bank) -> None:
        product = await create_product(admin, origination_fee_percent="0")
        account = await customer.open()
        applied = await apply(customer, product, account, "1200.00", 12)
        await loan_until(analyst, applied["loan_id"], lambda loan: loan["status"] == "in_review")
        await decide(analyst, applied["loan_id"], "approve")
        loan = await loan_until(customer, applied["loan_id"], lambda loan: loan["status"] == "active")
        first = loan["schedule"][0]
        problem(await customer.post(f"/v1/loans/{applied['loan_id']}/prepayments",
                                    {"amount": "1200.00", "effect": "shorten_term"}), 422, "more_than_owed")
        await move_to_day(admin, date.fromisoformat(first["due_on"]))
        loan = await loan_until(customer, applied["loan_id"], lambda loan: loan["schedule"][0]["status"] == "paid")
        outstanding = Decimal(loan["outstanding_principal"])

        # as many instalments, lower: the 11 left re-amortised on the balance (numpy-financial's pmt)
        lower = await customer.post(f"/v1/loans/{applied['loan_id']}/prepayments",
                                    {"amount": "300.00", "effect": "lower_instalment"})
        assert lower.status_code == 200 and lower.json()["status"] == "accepted", lower.text
        loan = await loan_until(customer, applied["loan_id"], lambda loan: len(loan["repayments"]) == 2)
        balance_left = outstanding - Decimal("300.00")
        payment = Decimal(str(round(float(-npf.pmt(0.01, 11, float(balance_left))), 2)))
        assert len(loan["schedule"]) == 12 and Decimal(loan["schedule"][1]["total"]) == payment
        assert Decimal(loan["schedule"][1]["total"]) < Decimal(first["total"])
        assert Decimal(loan["outstanding_principal"]) == balance_left

        # as high, fewer: the same instalment until the balance is repaid, the last one smaller
        shorter = await customer.post(f"/v1/loans/{applied['loan_id']}/prepayments",
                                      {"amount": "200.00", "effect": "shorten_term"})
        assert shorter.status_code == 200 and shorter.json()["status"] == "accepted", shorter.text
        loan = await loan_until(customer, applied["loan_id"], lambda loan: len(loan["repayments"]) == 3)
        rest = loan["schedule"][1:]
        assert len(rest) < 11 and all(Decimal(item["total"]) == payment for item in rest[:-1])
        assert Decimal(rest[-1]["total"]) <= payment
        assert sum(Decimal(item["principal"]) for item in loan["schedule"]) + Decimal("500.00") == Decimal("1200.00")
        assert [r["kind"] for r in loan["repayments"]] == ["scheduled", "prepay_lower_instalment",
                                                           "prepay_shorten_term"]
        assert (await ledger_credits(admin, "loans", account)) == Decimal("1200.00") - Decimal(
            loan["outstanding_principal"])

    run(api_url, scenario)
