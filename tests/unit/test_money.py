"""Money: decimal strings in, integer minor units inside, per-currency precision."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import CURRENCY_DIGITS, MAX_MINOR_UNITS, MoneyError, format_amount, parse_amount


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("12.50", "EUR", 1250), ("12.5", "EUR", 1250), ("12", "EUR", 1200), ("0.01", "USD", 1),
    ("100", "JPY", 100), ("1.125", "BHD", 1125), ("0.001", "KWD", 1),
])
def test_parse(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(("text", "currency", "reason"), [
    ("1.001", "EUR", "too_many_decimals"), ("1.5", "JPY", "too_many_decimals"), ("0", "EUR", "non_positive_amount"),
    ("0.00", "EUR", "non_positive_amount"), ("-1", "EUR", "invalid_amount"), ("1e3", "EUR", "invalid_amount"),
    ("", "EUR", "invalid_amount"), ("01", "EUR", "invalid_amount"), ("1,5", "EUR", "invalid_amount"),
    (" 1", "EUR", "invalid_amount"), ("NaN", "EUR", "invalid_amount"), ("1", "XXX", "unknown_currency"),
    ("1", "eur", "unknown_currency"), (str(MAX_MINOR_UNITS), "EUR", "amount_too_large"),
])
def test_parse_refuses(text: str, currency: str, reason: str) -> None:
    with pytest.raises(MoneyError) as error:
        parse_amount(text, currency)
    assert error.value.reason == reason


def test_zero_allowed_only_when_asked() -> None:
    assert parse_amount("0.00", "EUR", allow_zero=True) == 0


def test_format() -> None:
    assert format_amount(-305, "EUR") == "-3.05"
    assert format_amount(1000, "JPY") == "1000"
    assert format_amount(125, "BHD") == "0.125"
    assert format_amount(0, "EUR") == "0.00"


@given(st.sampled_from(sorted(CURRENCY_DIGITS)), st.integers(min_value=1, max_value=MAX_MINOR_UNITS))
def test_round_trip(currency: str, minor: int) -> None:
    assert parse_amount(format_amount(minor, currency), currency) == minor


def test_no_float_in_the_domain() -> None:
    """No code in core/ names the float type (comments and docstrings may)."""
    import io
    import tokenize
    from pathlib import Path

    for path in Path(__file__).resolve().parents[2].joinpath("core").glob("*.py"):
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
        names = {t.string for t in tokens if t.type == tokenize.NAME}
        assert "float" not in names, f"{path.name} uses float"
