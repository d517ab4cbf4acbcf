"""Account numbers and IBANs (core/account_numbers.py): valid check digits, unique by construction, stable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from schwifty import IBAN

from api.ledger_view import LedgerView
from core import commands as c
from core import events as e
from core import ledger
from core.account_numbers import AccountNumbering, InvalidIban, NumberingError
from core.commands import derive_id
from core.settings import Settings

NOW = datetime(2026, 12, 5, tzinfo=UTC)
DEFAULT = AccountNumbering.of(Settings())


def test_the_default_bank_is_a_german_one_of_no_real_bank() -> None:
    assert (DEFAULT.country, DEFAULT.bank_code, DEFAULT.length) == ("DE", "10090099", 10)
    assert IBAN.generate("DE", "10090099", "1").bank is None   # not in the Bundesbank's list schwifty ships


def test_numbers_are_stable() -> None:
    """The same serial gives the same number in every release (the log keeps numbers, but tests and people
    reading a number should be able to rely on it)."""
    assert DEFAULT.number_of_serial(1) == "6230718170"
    assert DEFAULT.iban("6230718170").machine == "DE40100900996230718170"
    assert DEFAULT.iban("6230718170").formatted == "DE40 1009 0099 6230 7181 70"
    assert DEFAULT.legacy_number("acc-7d1e4b2a") == DEFAULT.legacy_number("acc-7d1e4b2a")


def test_100000_allocated_numbers_are_distinct_valid_and_never_in_the_legacy_range() -> None:
    bodies = [DEFAULT.body_of_serial(serial) for serial in range(1, 100_001)]
    assert len(set(bodies)) == 100_000                      # a number is its body and one check digit
    assert all(0 < body < 900_000_000 for body in bodies)   # never a body starting with 9 (the legacy range)
    for serial in range(1, 100_001, 97):   # and the numbers, as schwifty checks them
        number = DEFAULT.number_of_serial(serial)
        assert number is not None and number[:-1] == f"{DEFAULT.body_of_serial(serial):09d}"
        iban = IBAN(DEFAULT.iban(number).machine, validate_bban=True)
        assert iban.account_code == number and iban.bank_code == "10090099"
        assert _luhn_valid(number)


def test_the_serial_to_body_map_is_a_permutation() -> None:
    """Unique by construction, not by luck: serial * SPREAD mod range is a bijection (SPREAD prime to the range)."""
    small = AccountNumbering(country="DE", bank_code="10090099", length=4)   # a range of 900 bodies
    bodies = [n[:-1] for n in map(small.number_of_serial, range(1, small.allocated_range)) if n is not None]
    assert len(bodies) == len(set(bodies)) == small.allocated_range - 1
    with pytest.raises(NumberingError, match="exhausted"):
        small.number_of_serial(small.allocated_range)


def test_derived_numbers_of_accounts_opened_without_one_are_valid_and_apart_from_allocated_ones() -> None:
    account_ids = [derive_id(f"command-{i}", "account") for i in range(2_000)]
    numbers = [DEFAULT.legacy_number(account_id) for account_id in account_ids]
    assert all(n[0] == "9" and len(n) == 10 for n in numbers)   # the range allocation never uses
    assert numbers == [DEFAULT.legacy_number(account_id) for account_id in account_ids]   # deterministic
    assert all(IBAN(DEFAULT.iban(n).machine, validate_bban=True) for n in numbers[:50])


@pytest.mark.parametrize("bank_code", ["10220500", "10090000", "20030133"])   # Bundesbank methods 00, 06, 10
def test_the_national_check_digit_follows_a_real_banks_method(bank_code: str) -> None:
    numbering = AccountNumbering.for_bank("DE", bank_code)
    numbers = [n for n in map(numbering.number_of_serial, range(1, 300)) if n is not None]
    assert len(numbers) > 250
    for number in numbers:
        IBAN.generate("DE", bank_code, number).validate(validate_bban=True)   # raises if the digit is wrong


def test_another_country_numbers_too() -> None:
    austria = AccountNumbering.for_bank("AT", "19043")
    number = austria.number_of_serial(1)
    assert number is not None and len(number) == 11
    assert austria.parse(austria.iban(number).formatted).account_number == number


def test_settings_it_cannot_number_with_are_refused() -> None:
    with pytest.raises(NumberingError, match="BANK_IBAN_COUNTRY"):
        AccountNumbering.for_bank("XX", "10090099")
    with pytest.raises(NumberingError, match="BANK_IBAN_BANK_CODE"):
        AccountNumbering.for_bank("DE", "1009009")    # 7 digits


def test_parse_takes_spaces_and_lower_case_and_refuses_bad_check_digits() -> None:
    ours = DEFAULT.iban("6230718170")
    parsed = DEFAULT.parse("  de40 1009 0099 6230 7181 70 ")
    assert parsed == ours and DEFAULT.is_ours(parsed)
    other = DEFAULT.parse("DE89 3704 0044 0532 0130 00")
    assert not DEFAULT.is_ours(other) and other.bank_code == "37040044"
    for text in ("DE41100900996230718170", "DE4010090099623071817", "not an iban", "DE40 1009 0099 6230 7181 7X"):
        with pytest.raises(InvalidIban):
            DEFAULT.parse(text)


def test_the_ledger_records_the_number_the_command_carries() -> None:
    opened = ledger.decide(None, _open("6230718170"), NOW)
    assert isinstance(opened[0], e.AccountOpened) and opened[0].account_number == "6230718170"
    legacy = ledger.decide(None, _open(None), NOW)
    assert isinstance(legacy[0], e.AccountOpened) and legacy[0].account_number is None


def test_the_ledger_refuses_a_number_of_the_wrong_shape() -> None:
    [rejected] = ledger.decide(None, _open("12 34"), NOW)
    assert isinstance(rejected, e.CommandRejected) and rejected.reason == "invalid_account_number"


def test_the_api_view_indexes_numbers_and_resolves_no_shared_one() -> None:
    """api/ledger_view.py: an IBAN resolves to its account; a number two openings share resolves to neither."""
    view = LedgerView("127.0.0.1:1", DEFAULT)   # folded by hand here: never started, never connects
    view.apply(_opened("acc-1", "6230718170"))
    view.apply(_opened("acc-2", None))
    legacy = DEFAULT.legacy_number("acc-2")
    assert view.account_numbers == {"acc-1": "6230718170", "acc-2": legacy}
    assert view.number_taken("6230718170") and view.number_taken(legacy) and not view.number_taken("3461436341")
    found = view.account_for_iban(DEFAULT.parse("DE40 1009 0099 6230 7181 70"))
    assert found is not None and found.account_id == "acc-1"
    assert view.iban_of("acc-2") == DEFAULT.iban(legacy) and view.iban_of("acc-3") is None
    assert view.account_for_iban(DEFAULT.parse("DE89 3704 0044 0532 0130 00")) is None   # another bank's
    view.apply(_opened("acc-3", "6230718170"))   # by a producer other than the API: now shared
    assert view.account_for_iban(DEFAULT.iban("6230718170")) is None
    assert view.account_for_iban(DEFAULT.iban(legacy)) is not None


def _opened(account_id: str, number: str | None) -> e.AccountOpened:
    return e.AccountOpened(event_id=f"ev-{account_id}", command_id=f"cmd-{account_id}",
                           correlation_id=f"cmd-{account_id}", account_id=account_id, occurred_at=NOW, sequence=1,
                           customer_id="cust-1", currency="EUR", overdraft_limit=0, account_number=number)


def _open(number: str | None) -> c.OpenAccount:
    return c.OpenAccount(command_id="cmd-1", account_id="acc-1", issued_at=NOW, correlation_id="cmd-1",
                         customer_id="cust-1", currency="EUR", account_number=number)


def _luhn_valid(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        doubled = int(char) * (2 if position % 2 == 1 else 1)
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def test_derived_ids_are_the_uuid5s_every_earlier_release_derived() -> None:
    # ids on the log were derived with uuid.uuid5: a retry decided after an upgrade must derive the same ones
    import uuid

    from core.commands import BANK_NAMESPACE
    parts = [(f"command-{i}", purpose) for i in range(500) for purpose in ("account", "credit", "é/✓", "")]
    assert [derive_id(*p) for p in parts] == [str(uuid.uuid5(BANK_NAMESPACE, "/".join(p))) for p in parts]
    assert derive_id("a", "b") == derive_id("a/b") != derive_id("a", "c")
