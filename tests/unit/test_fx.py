"""Currency exchange: quotes priced in the bank's favour, legs that balance per currency to the minor unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import events as e
from core.books import CHART, kind_of, legs_of, unbalanced
from core.fx import (
    FxError, FxRatesSet, Quote, Rate, RateBook, Side, Spreads, check_not_expired, effective_rate, exchange_of, fx_legs,
    pair_key, quote, rates_and_spreads,
)
from core.money import currency_digits

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)
EARLIER = NOW - timedelta(days=1)
RATES = (
    Rate("EUR", "USD", Decimal("1.0850"), EARLIER),
    Rate("EUR", "JPY", Decimal("162.35"), EARLIER),
    Rate("EUR", "BHD", Decimal("0.408712"), EARLIER),
    Rate("GBP", "EUR", Decimal("1.1712"), EARLIER),
)
SPREADS = Spreads({pair_key("EUR", "USD"): 30}, default=50)
CURRENCIES = ("EUR", "USD", "JPY", "BHD", "GBP")


def priced(sell: str, buy: str, amount: int, side: Side = "sell") -> Quote:
    return quote(sell, buy, amount, side, RATES, SPREADS, NOW, TTL, quote_id="q1")


def test_sell_euros_for_dollars() -> None:
    result = priced("EUR", "USD", 100_00)
    # 1.0850 less 30 bp = 1.081745 dollars per euro; 100 euros buy 108.1745, rounded down to 108.17.
    assert result.rate == Decimal("1.081745")
    assert result.buy_amount == 108_17 and result.sell_amount == 100_00
    assert result.remainder == Fraction(45, 100)
    assert result.position_amount == 108_17 and result.rounding_amount == 0
    assert result.expires_at == NOW + TTL


def test_buy_dollars_with_euros_rounds_the_payment_up() -> None:
    result = priced("EUR", "USD", 100_00, side="buy")
    # 100 dollars / 1.081745 = 92.4433... euros, paid as 92.45.
    assert result.buy_amount == 100_00 and result.sell_amount == 92_45


def test_inverse_pair_and_cross_rate() -> None:
    assert effective_rate(RATES, "USD", "EUR", NOW) == 1 / Fraction(Decimal("1.0850"))
    cross = effective_rate(RATES, "GBP", "JPY", NOW)
    assert cross == Fraction(Decimal("1.1712")) * Fraction(Decimal("162.35"))
    result = priced("GBP", "JPY", 10_00)   # 10 pounds: about 1,900 yen at the mid, JPY has no minor units
    assert 1890 <= result.buy_amount <= 1901


def test_usd_to_jpy_crosses_through_euro() -> None:
    result = priced("USD", "JPY", 50_00)
    mid = Fraction(Decimal("162.35")) / Fraction(Decimal("1.0850"))
    assert result.buy_amount < 50 * mid


def test_bahraini_dinar_has_three_digits() -> None:
    result = priced("EUR", "BHD", 1_00)
    assert result.buy_amount == 406   # 0.408712 less 50 bp = 0.40666844 -> 0.406 BHD


def test_no_rate() -> None:
    with pytest.raises(FxError) as error:
        priced("USD", "CHF", 100)
    assert error.value.reason == "no_rate"


def test_a_future_rate_is_not_effective_yet_and_the_newest_wins() -> None:
    rates = (*RATES, Rate("EUR", "CHF", Decimal("0.94"), NOW + timedelta(hours=1)))
    with pytest.raises(FxError) as error:
        quote("EUR", "CHF", 100, "sell", rates, SPREADS, NOW, TTL)
    assert error.value.reason == "no_rate"
    newer = (*RATES, Rate("EUR", "USD", Decimal("2"), NOW - timedelta(hours=1)))
    assert effective_rate(newer, "EUR", "USD", NOW) == 2


def test_too_small_to_exchange() -> None:
    with pytest.raises(FxError) as error:
        priced("JPY", "EUR", 1)   # one yen is under a cent
    assert error.value.reason == "amount_too_small"


def test_too_large_on_either_side() -> None:
    rates = (Rate("EUR", "XOF", Decimal("9999999999"), EARLIER),)
    with pytest.raises(FxError) as error:
        quote("EUR", "XOF", 10**12, "sell", rates, SPREADS, NOW, TTL)
    assert error.value.reason == "amount_too_large"


def test_expiry() -> None:
    result = priced("EUR", "USD", 100)
    check_not_expired(result, NOW + TTL - timedelta(microseconds=1))
    with pytest.raises(FxError) as error:
        check_not_expired(result, NOW + TTL)
    assert error.value.reason == "quote_expired"


@pytest.mark.parametrize(("base", "quote_currency", "mid", "reason"), [
    ("EUR", "EUR", "1", "same_currency"), ("EUR", "USD", "0", "invalid_rate"),
    ("EUR", "USD", "-1", "invalid_rate"), ("EUR", "USD", "1.2345678901", "invalid_rate"),
])
def test_bad_rates_refused(base: str, quote_currency: str, mid: str, reason: str) -> None:
    with pytest.raises(FxError) as error:
        Rate(base, quote_currency, Decimal(mid), NOW)
    assert error.value.reason == reason


def test_rounding_goes_to_an_income_account_of_the_chart() -> None:
    assert kind_of("fee-income").type == "income" and kind_of("fx-position") is CHART["fx-position"]


pairs = st.sampled_from([(sell, buy) for sell in CURRENCIES for buy in CURRENCIES if sell != buy])


@given(pair=pairs, amount=st.integers(1, 10**12), side=st.sampled_from(["sell", "buy"]))
def test_amounts_follow_the_rate_in_the_banks_favour(pair: tuple[str, str], amount: int, side: Side) -> None:
    sell, buy = pair
    try:
        result = priced(sell, buy, amount, side)
    except FxError as error:
        assert error.reason == "amount_too_small" and side == "sell"
        return
    scale = Fraction(10) ** (currency_digits(buy) - currency_digits(sell))
    worth = result.sell_amount * Fraction(result.rate) * scale   # the sell amount at the customer's rate
    # The customer never gets more than the sell amount is worth, and at most a minor unit less (sell side);
    # on the buy side the customer never pays less than the buy amount costs, and at most a minor unit more.
    assert result.buy_amount <= worth
    if side == "sell":
        assert worth - result.buy_amount < 1 and result.sell_amount == amount
    else:
        assert (result.sell_amount - 1) * Fraction(result.rate) * scale < result.buy_amount == amount
    # The customer's rate is never better than the mid.
    mid = effective_rate(RATES, sell, buy, NOW)
    assert mid is not None and Fraction(result.rate) < mid
    assert 0 <= result.remainder < 1 and result.rounding_amount in (0, 1)


@given(pair=pairs, amount=st.integers(1, 10**12), side=st.sampled_from(["sell", "buy"]))
def test_legs_balance_per_currency(pair: tuple[str, str], amount: int, side: Side) -> None:
    try:
        result = priced(pair[0], pair[1], amount, side)
    except FxError as error:   # a fraction of a minor unit is not exchanged
        assert error.reason == "amount_too_small" and side == "sell"
        return
    legs = fx_legs(result, "A1", "A2")
    assert unbalanced(legs) == {}
    assert all(leg.amount > 0 for leg in legs)
    for leg in legs:
        kind_of(leg.ledger_account_id)   # every leg names an account of the chart
    rounding = [leg for leg in legs if leg.ledger_account_id == "fee-income"]
    assert all(leg.side == "credit" for leg in rounding)   # rounding only ever earns the bank money
    customer_debit = next(leg for leg in legs if leg.ledger_account_id == "customer:A1")
    customer_credit = next(leg for leg in legs if leg.ledger_account_id == "customer:A2")
    assert (customer_debit.amount, customer_debit.currency) == (result.sell_amount, result.sell_currency)
    assert (customer_credit.amount, customer_credit.currency) == (result.buy_amount, result.buy_currency)


@given(amount=st.integers(100, 10**9), side=st.sampled_from(["sell", "buy"]),
       pair=st.sampled_from([("EUR", "USD"), ("USD", "JPY"), ("GBP", "BHD"), ("JPY", "EUR")]))
def test_an_exchanged_transfer_posts_exactly_the_quotes_legs_through_transit(amount: int, side: Side,
                                                                             pair: tuple[str, str]) -> None:
    """Debited on the source's partition, credited on the destination's: together, net of `transit`, the books
    post what fx_legs says the quote posts, and each event alone balances per currency."""
    try:
        exchanged = priced(pair[0], pair[1], amount, side)
    except FxError:
        return   # too small or too large to exchange: nothing to post
    exchange = exchange_of(exchanged)
    common = {"command_id": "t", "correlation_id": "t", "occurred_at": NOW, "transfer_id": "t", "reference": None,
              "exchange": exchange}
    debited = e.TransferDebited(**common, event_id="d", account_id="A", sequence=2, to_account_id="B",
                                amount=exchanged.sell_amount, currency=pair[0], balance_after=0)
    credited = e.TransferCredited(**common, event_id="c", account_id="B", sequence=2, from_account_id="A",
                                  amount=exchanged.buy_amount, currency=pair[1], balance_after=exchanged.buy_amount)
    legs = [*legs_of(debited), *legs_of(credited)]
    assert unbalanced(legs_of(debited)) == {} and unbalanced(legs_of(credited)) == {}

    def net(of: list) -> dict[tuple[str, str], int]:
        totals: dict[tuple[str, str], int] = {}
        for leg in of:
            totals[(leg.ledger_account_id, leg.currency)] = totals.get((leg.ledger_account_id, leg.currency), 0) \
                + leg.signed
        return {key: value for key, value in totals.items() if value}

    assert net(legs) == net(list(fx_legs(exchanged, "A", "B")))


def _change(event_id: str, *entries: tuple[str, str, str, datetime], by: str = "admin-1") -> FxRatesSet:
    return FxRatesSet(event_id=event_id, set_by=by, set_at=NOW, entries=[
        {"base": base, "quote": quote, "mid_rate": mid, "spread_basis_points": 50, "effective_from": start}
        for base, quote, mid, start in entries])


def test_the_rate_book_folds_changes_newest_start_first_and_lists_what_is_scheduled() -> None:
    book = RateBook()
    earlier, later = NOW - timedelta(days=1), NOW + timedelta(hours=1)
    book.apply(_change("a", ("EUR", "USD", "1.08", earlier), ("EUR", "GBP", "0.85", earlier)))
    book.apply(_change("b", ("EUR", "USD", "1.09", NOW - timedelta(hours=1)), ("EUR", "USD", "1.10", later),
                       by="admin-2"))
    book.apply(_change("c", ("EUR", "GBP", "0.86", earlier)))          # the same start, set later: it applies
    book.apply(_change("a", ("EUR", "USD", "9.99", earlier)))          # a record read twice counts once
    effective = {(e.rate.base, e.rate.quote): (e.rate.mid, e.set_by) for e in book.effective(NOW)}
    assert effective == {("EUR", "GBP"): (Decimal("0.86"), "admin-1"), ("EUR", "USD"): (Decimal("1.09"), "admin-2")}
    assert [(e.rate.mid, e.rate.effective_from) for e in book.scheduled(NOW)] == [(Decimal("1.10"), later)]
    assert book.effective(later)[1].rate.mid == Decimal("1.10")
    rates, spreads = rates_and_spreads(book.effective(NOW))
    assert quote("EUR", "USD", 10_000, "sell", rates, spreads, NOW, TTL).buy_amount == 10_845   # 1.09 less 0.5 %


def test_a_rate_change_survives_the_codec() -> None:
    from schemas.codec import get_codec

    codec = get_codec()
    change = _change("d", ("EUR", "USD", "1.0850", NOW))
    value, headers = codec.encode(change)
    assert codec.decode(value, headers, {"FxRatesSet"}) == change


def test_a_row_of_the_old_rate_table_is_carried_over_as_its_change_under_a_stable_id() -> None:
    from api.fx_rates import change_of_row

    row = {"id": 7, "base_currency": "EUR", "quote_currency": "NOK", "mid_rate": Decimal("11.5230"),
           "spread_basis_points": 40, "effective_from": EARLIER, "set_by": "admin-1", "set_at": EARLIER}
    change = change_of_row(row)
    assert change == change_of_row(dict(row))   # two instances carrying it over publish the same id: folded once
    assert change.entries == [{"base": "EUR", "quote": "NOK", "mid_rate": "11.5230", "spread_basis_points": 40,
                               "effective_from": EARLIER}]
    book = RateBook()
    book.apply(change)
    book.apply(change_of_row(row))
    assert [(e.rate.mid, e.set_by) for e in book.effective(NOW)] == [(Decimal("11.5230"), "admin-1")]
