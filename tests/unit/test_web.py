"""The web apps' pure parts: amounts shown exactly as the API wrote them, sessions, CSRF, errors by field, and
which paths the one origin gives to the web apps."""

from __future__ import annotations

import time

from web.client import ApiError
from web.csrf import valid
from web.forms import field_errors
from web.formatting import describe, duration, money
from web.savings import enrolment_refusal, products_in
from web.savings import product_summary as savings_product
from web.session import SessionStore


def test_money_groups_digits_without_changing_them() -> None:
    assert money("1234567.5", "EUR") == "€1,234,567.5"
    assert money("-12.00", "EUR") == "\u2212€12.00"
    assert money("1000", "JPY") == "¥1,000"
    assert money("0.125", "BHD") == "BHD 0.125"
    assert money("10.00", "XYZ") == "XYZ 10.00"
    assert money("not a number", "EUR") == "not a number"
    assert money(None) == ""


def test_describe_names_postings() -> None:
    assert describe({"type": "deposit", "channel": "cash"}) == "Deposit (cash)"
    assert describe({"type": "transfer_out", "channel": "transfer"}) == "Transfer out"


def test_sessions_rotate_and_expire() -> None:
    store = SessionStore(idle_timeout_s=60)
    session = store.create()
    old_id, old_csrf = session.id, session.csrf_token
    store.rotate(session)
    assert store.get(old_id) is None and store.get(session.id) is session
    assert session.csrf_token != old_csrf
    session.last_seen = time.time() - 61
    assert store.get(session.id) is None   # idle too long


def test_csrf_tokens_must_match_the_session() -> None:
    session = SessionStore(60).create()
    assert valid(session, session.csrf_token)
    assert not valid(session, "")
    assert not valid(session, session.csrf_token + "x")
    assert not valid(None, session.csrf_token)


def test_api_problems_go_next_to_their_field() -> None:
    weak = ApiError(422, {"reason": "weak_password", "detail": "a; b", "problems": ["too short", "too common"]})
    assert field_errors(weak, ("name", "email", "password"), "email") == {"password": ["too short", "too common"]}
    invalid = ApiError(422, {"reason": "string_too_short", "detail": "name: too short",
                             "errors": [{"loc": ["body", "name"], "msg": "too short"}]})
    assert field_errors(invalid, ("name", "email"), "email") == {"name": ["name: too short"]}
    other = ApiError(409, {"reason": "something_else", "detail": "no"})
    assert field_errors(other, ("amount",), "amount") == {"amount": ["no"]}


def test_the_one_origin_routes_people_to_the_web_apps() -> None:
    from server.main import is_web_path

    for path in ("/", "/app", "/app/", "/app/accounts/x", "/admin/", "/admin/users"):
        assert is_web_path(path), path
    for path in ("/v1/accounts", "/docs", "/openapi.json", "/readyz", "/metrics", "/application", "/administer"):
        assert not is_web_path(path), path


def test_balance_chart_is_an_accessible_svg_of_the_apis_balances() -> None:
    from datetime import UTC, datetime

    from web.charts import balance_chart, balance_points

    postings = [{"occurred_at": "2026-12-01T10:00:00Z", "balance_after": "500.00"},
                {"occurred_at": "2026-12-03T10:00:00Z", "balance_after": "-20.50"}]
    points = balance_points(list(reversed(postings)), "-20.50", datetime(2026, 12, 5, tzinfo=UTC))
    assert [point.balance for point in points] == ["500.00", "-20.50", "-20.50"]   # oldest first, then now
    svg = str(balance_chart(points, "EUR"))
    assert svg.startswith("<svg") and 'role="img"' in svg and "<title" in svg
    assert "lowest \u2212€20.50, highest €500.00, now \u2212€20.50" in svg
    assert "style=" not in svg and "<script" not in svg                     # the CSP allows neither
    assert str(balance_chart(points[:1], "EUR")) == ""                       # one point: no chart


def test_savings_products_an_account_may_earn_and_the_refusals_in_words() -> None:
    products = [{"product_id": "p1", "name": "Easy Saver", "currency": "EUR", "annual_rate_percent": "2.5"},
                {"product_id": "p2", "name": "Dollar Saver", "currency": "USD", "annual_rate_percent": "4"},
                {"product_id": "p3", "name": "Old Saver", "currency": "EUR", "status": "retired",
                 "annual_rate_percent": "1"}]
    assert [p["product_id"] for p in products_in(products, "EUR")] == ["p1"]
    assert savings_product(products[0]) == "Easy Saver: 2.5% a year"
    mismatch = enrolment_refusal(ApiError(422, {"reason": "currency_mismatch", "detail": "EUR"}))
    assert "account's currency" in mismatch["product_id"][0]
    assert enrolment_refusal(ApiError(409, {"reason": "other", "detail": "no"})) == {"product_id": ["no"]}


def test_a_duration_from_the_api_reads_as_days_hours_minutes_and_seconds() -> None:
    assert duration("P1330DT2H12M9.6S") == "1,330 days 2 h 12 min 9 s"
    assert duration("PT3M59.990799S") == "3 min 59 s"
    assert duration("P1D") == "1 day"
    assert duration("P0D") == "0 s"
    assert duration("-PT1.5S") == "\u22121 s"
    assert duration("P3Y235D") == "P3Y235D"   # not the API's form: shown as it came
