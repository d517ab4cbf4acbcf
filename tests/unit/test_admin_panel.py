"""The admin panel's and `bank demo`'s pure parts: what the pages count and parse, the SSE framing, the demo's
personas file, TOTP codes and planned payments."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pyotp

from cli.demo import DemoState, Persona, email_local_part, payment
from web.admin.common import sections_for
from web.admin.customers import refusal_in_words
from web.admin.feed import later, moment
from web.sse import sse
from web.admin.overview import cob_state, read_model_lags, throughput
from web.savings import PRODUCT_FIELDS, product_body, product_refusal
from web.admin.reports import patterns


def test_read_model_lags_come_from_the_readiness_detail() -> None:
    checks = {"read_models": {"ok": True, "detail": "events behind the log: postgres 0, redis 12, mongo 3"}}
    assert read_model_lags(checks) == [("postgres", 0), ("redis", 12), ("mongo", 3)]
    assert read_model_lags({"read_models": {"ok": False, "error": "TimeoutError: "}}) == []


def test_throughput_counts_events_per_minute_up_to_the_newest() -> None:
    events = [{"occurred_at": at} for at in ("2027-01-01T10:00:05Z", "2027-01-01T10:00:59.5Z",
                                             "2027-01-01T10:02:00Z", "2027-01-01T09:40:00Z")]
    buckets = throughput(events, minutes=3)
    assert [(b["minute"], b["events"]) for b in buckets] == [("10:00", 2), ("10:01", 0), ("10:02", 1)]
    assert [b["width"] for b in buckets] == [10, 0, 5]
    assert throughput([]) == []


def _entry(at: str, action: str, outcome: str, user: str, agent: str = "firefox", reason: str | None = None) -> dict:
    return {"occurred_at": at, "action": action, "outcome": outcome, "reason": reason,
            "actor": {"user_id": user if outcome == "success" else None}, "subject_user_id": user,
            "user_agent": agent}


def test_sign_in_patterns_per_day() -> None:
    entries = [_entry("2027-01-01T09:00:00Z", "login", "success", "ann"),
               _entry("2027-01-01T10:00:00Z", "login", "success", "ann"),
               _entry("2027-01-01T11:00:00Z", "login_failed", "failure", "bob", reason="invalid_credentials"),
               _entry("2027-01-02T09:00:00Z", "login", "success", "ann", agent="phone"),
               _entry("2027-01-02T09:30:00Z", "login", "success", "bob")]
    result = patterns(entries)
    assert [(r["day"], r["sign_ins"], r["failures"], r["people"], r["new_devices"]) for r in result["rows"]] == [
        ("2027-01-02", 2, 0, 2, 2), ("2027-01-01", 2, 1, 1, 1)]
    assert result["reasons"] == [("invalid_credentials", 1)]
    assert result["rows"][0]["sign_in_width"] == 10 and result["rows"][1]["failure_width"] == 5


def test_sse_frames_every_line_of_a_fragment() -> None:
    assert sse("posting", "<tr>\n<td>1</td>\n</tr>\n") == "event: posting\ndata: <tr>\ndata: <td>1</td>\ndata: </tr>\n\n"
    assert sse("ended", "") == "event: ended\ndata: \n\n"
    assert sse("notification", "<li>x</li>", "42") == "event: notification\nid: 42\ndata: <li>x</li>\n\n"


def test_feed_moments_compare_as_times_not_text() -> None:
    # the API's text drops zero microseconds: as text "…:21Z" sorts after "…:21.5Z"
    assert later(moment("2027-01-01T10:00:21.5Z"), moment("2027-01-01T10:00:21Z"))
    assert not later(moment("2027-01-01T10:00:21Z"), moment("2027-01-01T10:00:21.5Z"))
    assert later(moment("2027-01-01T10:00:21Z"), None) and moment("soon") is None


def test_the_close_of_business_in_words() -> None:
    done = {"closing_through": "2027-01-31", "accounts_behind": 0, "oldest_open_date": None}
    assert cob_state(done) == ("ok", "Closed through 31 Jan 2027")
    behind = done | {"accounts_behind": 2, "oldest_open_date": "2027-01-30"}
    assert cob_state(behind) == ("warning", "2 accounts still to close, from 30 Jan 2027")


def test_the_savings_product_form_and_the_apis_refusals() -> None:
    from web.client import ApiError

    body, errors = product_body({"name": " Easy Saver ", "currency": "EUR", "annual_rate_percent": "2.5",
                                 "rate_effective_on": "", "day_count": "ACT/365F"})
    assert errors == {} and body == {"name": "Easy Saver", "currency": "EUR", "annual_rate_percent": "2.5",
                                     "day_count": "ACT/365F"}
    assert set(product_body({"currency": "EUR"})[1]) == {"name", "annual_rate_percent"}
    backdated = ApiError(422, {"reason": "backdated_rate", "detail": "a rate takes effect today or later"})
    assert list(product_refusal(backdated, PRODUCT_FIELDS, "name")) == ["rate_effective_on"]
    assert list(product_refusal(backdated, ("annual_rate_percent", "effective_on"), "annual_rate_percent")) == [
        "effective_on"]


def test_navigation_follows_the_roles() -> None:
    assert "Review queue" not in [s.label for s in sections_for("teller")]
    assert {"Review queue", "Users", "Audit"} <= {s.label for s in sections_for("analyst")}
    assert sections_for("customer") == []


def test_an_erasure_refusal_is_said_in_words() -> None:
    from web.client import ApiError

    accounts = [{"account_id": "acc-1", "iban_formatted": "DE40 1009 0099 6230 7181 70"}]
    still_open = ApiError(409, {"reason": "accounts_open", "detail": "close every account first: acc-1",
                                "accounts": ["acc-1"]})
    assert "close DE40 1009 0099 6230 7181 70 first" in refusal_in_words(still_open, accounts)
    kept = ApiError(409, {"reason": "retention_period", "erasable_from": "2031-12-05T10:00:00+00:00"})
    assert "until 05 Dec 2031" in refusal_in_words(kept, accounts)
    assert refusal_in_words(ApiError(409, {"reason": "other", "detail": "no"}), []) == "no"


def test_demo_personas_survive_a_restart_privately(tmp_path: Path) -> None:
    state = DemoState(personas={"admin": Persona("admin", "Ada Admin", "admin@x.example.com", "pw", "u1",
                                                 totp_secret=pyotp.random_base32(), last_step=7)},
                      history_done=True, held=["case-1"])
    path = tmp_path / "demo.json"
    state.save(path)
    again = DemoState.load(path)
    assert again == state
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DemoState.load(tmp_path / "missing.json") == DemoState()


def test_demo_totp_codes_never_reuse_a_time_step() -> None:
    persona = Persona("teller", "Theo", "t@x.example.com", "pw", totp_secret=pyotp.random_base32())
    first, wait_first = persona.otp()
    second, wait_second = persona.otp()
    third, wait_third = persona.otp()
    assert first and second and first != second and not wait_first and not wait_second
    # two steps used (this one and the next): the third waits for a step, unless the clock just crossed into one
    assert (third is None and 0 < wait_third <= 30.1) or (third not in (first, second) and not wait_third)
    assert pyotp.TOTP(persona.totp_secret or "").verify(first)


def test_demo_emails_and_payments() -> None:
    assert email_local_part("Amélie Dubois") == "amelie.dubois"
    assert email_local_part("James O'Connor") == "james.oconnor"
    people = [Persona("customer", name, f"{n}@x", "pw", accounts={"EUR": f"acc-{n}"} | ({"USD": f"usd-{n}"} if n else {}))
              for n, name in enumerate(("A", "B", "C"))]
    plans = [payment(people, people[1], random.Random(5), suspect=False) for _ in range(2)]
    assert plans[0] == plans[1] and plans[0] is not None   # the same seed plans the same payment
    assert plans[0]["from_account_id"] in people[1].accounts.values()
    assert plans[0]["to_account_id"] not in people[1].accounts.values()
    suspect = payment(people, people[1], random.Random(5), suspect=True)
    assert suspect is not None and suspect["currency"] == "EUR"
    lonely = [Persona("customer", "Solo", "s@x", "pw", accounts={"GBP": "gbp-1"})]
    assert payment(lonely, lonely[0], random.Random(1), suspect=False) is None
