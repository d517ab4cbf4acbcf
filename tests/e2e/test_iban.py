"""Account numbers and IBANs over HTTP against the running stack (issue 14, point 5).

Every account opened gets a national account number and an IBAN of the bank's country and bank code (settings);
accounts are found by IBAN (a customer only their own); transfers take an IBAN of this bank; an invalid IBAN or
another bank's is refused with a problem that says which.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from schwifty import IBAN

from core.settings import Settings
from tests.support import Bank, problem, with_customers

pytestmark = pytest.mark.usefixtures("stack")

SETTINGS = Settings()
EXTERNAL = "DE89 3704 0044 0532 0130 00"   # Commerzbank's documented example: a valid IBAN of another bank



def run(api_url: str, scenario: Callable[[Bank, Bank, Bank], Awaitable[Any]]) -> Any:
    """The scenario with a teller and two freshly registered customers."""
    return with_customers(api_url, scenario, "Ann Iban", "Bob Iban")


async def opened(client: Bank) -> dict[str, Any]:
    """A new account of the client's, as the API shows it."""
    return await client.account(await client.open())


def test_an_opened_account_has_a_number_and_a_valid_iban_of_the_bank(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        response = await ann.post("/v1/accounts", {"currency": "EUR"})
        assert response.status_code == 201, response.text
        [event] = [e for e in response.json()["events"] if e["type"] == "AccountOpened"]
        account = await ann.account(response.json()["account_id"])
        number, machine = account["account_number"], account["iban"]
        assert event["data"]["account_number"] == number   # decided by the server, on the record
        iban = IBAN(machine, validate_bban=True)   # schwifty: structure, length, check digits
        assert (iban.country_code, iban.bank_code, iban.account_code) == (SETTINGS.iban_country,
                                                                          SETTINGS.iban_bank_code, number)
        assert account["iban_formatted"] == iban.formatted and machine == iban.compact
        # the customer's list shows them too, and a second account gets another number
        other = await opened(ann)
        listing = (await ann.get(f"/v1/customers/{ann.customer_id}/accounts")).json()["accounts"]
        numbers = {a["account_id"]: a["account_number"] for a in listing}
        assert numbers[account["account_id"]] == number and numbers[other["account_id"]] == other["account_number"]
        assert other["account_number"] != number and other["iban"] != machine

    run(api_url, scenario)


def test_a_retried_opening_keeps_its_number(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        key = str(uuid.uuid4())
        first = await ann.post("/v1/accounts", {"currency": "EUR"}, key=key)
        again = await ann.post("/v1/accounts", {"currency": "EUR"}, key=key)
        assert first.json()["account_id"] == again.json()["account_id"]
        numbers = {e["data"]["account_number"] for r in (first, again) for e in r.json()["events"]
                   if e["type"] == "AccountOpened"}
        assert len(numbers) == 1 and None not in numbers

    run(api_url, scenario)


def test_lookup_by_iban_own_other_and_staff(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        mine, theirs = await opened(ann), await opened(bob)
        for form in ("iban", "iban_formatted"):
            found = await ann.get(f"/v1/accounts/by-iban/{mine[form]}")
            assert found.status_code == 200, found.text
            assert found.json() | {"version": 1} == mine | {"version": 1}
        assert (await ann.get(f"/v1/accounts/by-iban/{mine['iban'].lower()}")).json()["account_id"] == \
            mine["account_id"]
        # another customer's IBAN looks exactly like one no account has
        refused = problem(await ann.get(f"/v1/accounts/by-iban/{theirs['iban']}"), 404, "unknown_account")
        nobody = _unused_iban_of_ours(mine["iban"])
        unknown = problem(await ann.get(f"/v1/accounts/by-iban/{nobody}"), 404, "unknown_account")
        assert refused["title"] == unknown["title"] and refused.keys() == unknown.keys()
        assert refused["detail"].replace(theirs["iban"], "X") == unknown["detail"].replace(nobody, "X")
        # staff find anyone's
        teller.position = ann.position | bob.position
        for account in (mine, theirs):
            found = await teller.get(f"/v1/accounts/by-iban/{account['iban']}")
            assert found.status_code == 200 and found.json()["account_id"] == account["account_id"], found.text
        problem(await teller.get(f"/v1/accounts/by-iban/{nobody}"), 404, "unknown_account")
        problem(await teller.get(f"/v1/accounts/by-iban/{EXTERNAL.replace(' ', '')}"), 404, "unknown_account")

    run(api_url, scenario)


def test_an_invalid_iban_is_a_422_problem(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        mine = await opened(ann)
        wrong_check = mine["iban"][:2] + f"{(int(mine['iban'][2:4]) + 1) % 100:02d}" + mine["iban"][4:]
        for client in (ann, teller):
            for text in (wrong_check, mine["iban"][:-1], "XX00123"):
                body = problem(await client.get(f"/v1/accounts/by-iban/{text}"), 422, "invalid_iban")
                assert text in body["detail"]
        refused = await ann.post("/v1/transfers", {"from_account_id": mine["account_id"], "to_iban": wrong_check,
                                                   "amount": "1.00", "currency": "EUR"})
        assert "checksum" in problem(refused, 422, "invalid_iban")["detail"].lower()

    run(api_url, scenario)


def test_a_transfer_to_an_iban_of_the_bank(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        source, destination = await opened(ann), await opened(bob)
        assert (await teller.fund(source["account_id"], "100.00")).status_code == 200
        sent = await ann.post("/v1/transfers", {"from_account_id": source["account_id"], "amount": "30.00",
                                                "currency": "EUR", "to_iban": destination["iban_formatted"]})
        assert sent.status_code == 200 and sent.json()["status"] == "accepted", sent.text
        bob.position = ann.position | teller.position
        assert (await bob.account(destination["account_id"]))["balance"] == "30.00"
        ann.position |= teller.position
        assert (await ann.account(source["account_id"]))["balance"] == "70.00"
        # the sender learns nothing about the destination beyond what a transfer by id tells
        assert all(e["account_id"] == source["account_id"] for e in sent.json()["events"])

    run(api_url, scenario)


def test_a_transfer_names_its_destination_exactly_once(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        source, destination = await opened(ann), await opened(bob)
        money = {"from_account_id": source["account_id"], "amount": "1.00", "currency": "EUR"}
        both = await ann.post("/v1/transfers", money | {"to_iban": destination["iban"],
                                                        "to_account_id": destination["account_id"]})
        problem(both, 422, "one_destination")
        problem(await ann.post("/v1/transfers", money), 422, "one_destination")
        unknown = await ann.post("/v1/transfers", money | {"to_iban": _unused_iban_of_ours(destination["iban"])})
        problem(unknown, 404, "unknown_account")

    run(api_url, scenario)


def test_a_transfer_to_another_banks_iban_is_refused_and_moves_nothing(api_url: str) -> None:
    async def scenario(teller: Bank, ann: Bank, bob: Bank) -> None:
        source = await opened(ann)
        assert (await teller.fund(source["account_id"], "10.00")).status_code == 200
        refused = await ann.post("/v1/transfers", {"from_account_id": source["account_id"], "to_iban": EXTERNAL,
                                                   "amount": "5.00", "currency": "EUR"})
        body = problem(refused, 422, "external_iban")
        assert "another bank" in body["detail"] and "/v1/payments" in body["detail"]
        ann.position |= teller.position
        assert (await ann.account(source["account_id"]))["balance"] == "10.00"

    run(api_url, scenario)


def _unused_iban_of_ours(_: str) -> str:
    """A valid IBAN of this bank that no account has: a number of the range allocation never uses (numbers
    starting with 9), and every account of the test stack is opened through the API, so allocated."""
    return IBAN.generate(SETTINGS.iban_country, SETTINGS.iban_bank_code, "9999999999").compact
