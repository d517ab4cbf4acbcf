"""Profiles without servers: phone numbers normalised to E.164, dates of birth, countries, the masks the audit
trail shows, and one-time codes."""

from __future__ import annotations

from datetime import date

import pytest

from core.profile import (CODE_DIGITS, InvalidContact, check_country, check_date_of_birth, code_hash, code_matches,
                          mask_email, mask_phone, mask_text, new_code, normalise_phone)


@pytest.mark.parametrize(("text", "region", "expected"), [
    ("+49 151 12345678", "DE", "+4915112345678"),
    ("0151 1234 5678", "DE", "+4915112345678"),        # national, in the default region
    ("(030) 123-4567", "DE", "+49301234567"),
    ("+1 (650) 253-0000", "DE", "+16502530000"),       # a + overrides the default region
    ("650 253 0000", "US", "+16502530000"),
    ("0044 20 7946 0958", "DE", "+442079460958"),       # the international prefix of the region
])
def test_phone_numbers_are_normalised_to_e164(text: str, region: str, expected: str) -> None:
    assert normalise_phone(text, region) == expected


@pytest.mark.parametrize("text", ["", "hello", "+49 12", "+1 555 0100 0000 0000 00", "+999 1234567", "12345"])
def test_text_that_is_no_assigned_number_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(InvalidContact) as raised:
        normalise_phone(text, "DE")
    assert raised.value.reason == "invalid_phone"
    assert raised.value.detail.startswith("phone: ")


def test_a_date_of_birth_is_in_the_past() -> None:
    today = date(2026, 12, 5)
    assert check_date_of_birth(date(1990, 2, 28), today) == date(1990, 2, 28)
    for born in (today, date(2027, 1, 1), date(1800, 1, 1)):
        with pytest.raises(InvalidContact, match="date_of_birth"):
            check_date_of_birth(born, today)


def test_countries_are_iso_3166_alpha_2() -> None:
    assert check_country("de") == "DE"
    assert check_country(" FR ") == "FR"
    for text in ("XX", "DEU", "", "Germany"):
        with pytest.raises(InvalidContact) as raised:
            check_country(text)
        assert raised.value.reason == "invalid_country"


def test_masks_keep_only_a_hint() -> None:
    assert mask_email("john.doe@example.com") == "j***@e***.com"
    assert mask_email("a@b.co.uk") == "a***@b***.uk"
    assert mask_email(None) is None
    assert mask_phone("+4915112345612") == "+49*********12"
    assert mask_phone("+16502530000") == "+1********00"
    assert len(mask_phone("+4915112345612") or "") == len("+4915112345612")
    assert mask_text("Ada Lovelace") == "A***"
    for masked in (mask_email("john.doe@example.com"), mask_phone("+4915112345612")):
        assert "doe" not in (masked or "") and "1234" not in (masked or "")


def test_codes_are_six_digits_and_match_only_their_change() -> None:
    codes = {new_code() for _ in range(200)}
    assert all(len(c) == CODE_DIGITS and c.isdigit() for c in codes)
    assert len(codes) > 150
    hashed = code_hash("change-1", "123456")
    assert code_matches("change-1", "123456", hashed)
    assert code_matches("change-1", " 123456 ", hashed)
    assert not code_matches("change-1", "123457", hashed)
    assert not code_matches("change-2", "123456", hashed)
