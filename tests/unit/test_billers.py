"""References to billers: format, Luhn check digit, spaces; staff's patterns."""

from __future__ import annotations

import pytest

from core.billers import BillerError, ReferenceRule, check_reference, checked_pattern, luhn_valid

LUHN = ReferenceRule(r"^\d{8,12}$", "luhn")


@pytest.mark.parametrize("digits", ["79927398713", "4539578763621486", "0000000000", "18"])
def test_luhn_accepts_valid_numbers(digits: str) -> None:
    assert luhn_valid(digits)


@pytest.mark.parametrize("digits", ["79927398710", "4539578763621487", "1", "", "12a4", "٣٤"])
def test_luhn_refuses_the_rest(digits: str) -> None:
    assert not luhn_valid(digits)


def test_a_reference_is_sent_without_the_spaces_people_type() -> None:
    assert check_reference(" 7992 7398 713 ", LUHN) == "79927398713"


@pytest.mark.parametrize("reference", ["79927398710", "ABC12345", "1234567", "7" * 40, " "])
def test_a_reference_that_does_not_fit_is_refused(reference: str) -> None:
    with pytest.raises(BillerError) as refused:
        check_reference(reference, LUHN)
    assert refused.value.reason == "invalid_reference"


def test_without_a_check_digit_only_the_format_counts() -> None:
    assert check_reference("INV-2026-0042", ReferenceRule(r"^INV-\d{4}-\d{4}$")) == "INV-2026-0042"


@pytest.mark.parametrize("pattern", ["(unclosed", "", "x" * 201])
def test_staff_patterns_must_compile_and_be_of_a_sane_size(pattern: str) -> None:
    with pytest.raises(BillerError):
        checked_pattern(pattern)
