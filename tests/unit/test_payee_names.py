"""Confirmation of payee's name rule (core/payees.py): normalised equality, then word order or similarity."""

from __future__ import annotations

import pytest

from core.payees import CLOSE_MATCH_RATIO, confirm_name, normalise_name, similarity


def test_normalising_drops_diacritics_case_and_punctuation() -> None:
    assert normalise_name("  José   NÚÑEZ-García ") == "jose nunez garcia"
    assert normalise_name("Straße") == "strasse"   # casefold, not lower
    assert normalise_name("O'Brien, Ltd.") == "o brien ltd"


@pytest.mark.parametrize(("given", "on_file"), [
    ("John Smith", "John Smith"), ("john smith", "JOHN SMITH"), ("Jose Nunez", "José Núñez"),
    ("Smith-Jones  Ann", "smith jones ann"),
])
def test_the_same_name_once_normalised_matches(given: str, on_file: str) -> None:
    assert confirm_name(given, on_file) == "match"


@pytest.mark.parametrize(("given", "on_file"), [
    ("Jon Smith", "John Smith"), ("John Smyth", "John Smith"), ("Smith John", "John Smith"),
    ("Smith, John", "John Smith"),
])
def test_a_typo_or_another_word_order_is_a_close_match(given: str, on_file: str) -> None:
    assert confirm_name(given, on_file) == "close_match"


@pytest.mark.parametrize(("given", "on_file"), [
    ("Jane Smith", "John Smith"), ("J Smith", "John Smith"), ("Bob Other", "Ann Own"), ("ACME Ltd", "John Smith"),
])
def test_another_name_is_no_match(given: str, on_file: str) -> None:
    assert confirm_name(given, on_file) == "no_match"


def test_the_threshold_sits_between_a_typo_and_another_first_name() -> None:
    assert similarity("Jane Smith", "John Smith") < CLOSE_MATCH_RATIO <= similarity("Jon Smith", "John Smith")
