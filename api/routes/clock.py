"""Business time, for tests and demos: GET /v1/admin/clock reads it, PUT moves it forward (admins only).

Only with BANK_CLOCK_CONTROL on (never in production). Off, both answer 404 `clock_control_off` to admins, as
if the endpoint were not there: in production business time is real time and nothing can move it (api/authz.py
still answers other roles 403 first, as for every admin route). A move goes onto bank.clock, which every process
with the setting on follows (infra/clock.py), so the workers and every API instance read the same business time;
it is audit-recorded (`clock_moved`, with the times before and after). Business time never runs back: a move to
an earlier moment, or by a negative duration, is refused with 409 `clock_backwards` (and audit-recorded as denied);
one more than core.clock.MAX_OFFSET ahead of real time with 422 `clock_too_far`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, model_validator

from api.deps import Platform, PlatformDep, utc_moment
from api.problems import PROBLEM_JSON, Problem
from api.routes.auth import caller
from core.clock import ClockBackwards, ClockSet, ClockTooFar, ControlledClock

router = APIRouter(prefix="/v1/admin", tags=["admin: operations"])

_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "BANK_CLOCK_CONTROL is off (production): business time is real time",
          "content": {PROBLEM_JSON: {}}},
}


class ClockMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime | None = Field(None, description="set business time to this moment (with its zone)",
                                     examples=["2027-01-31T00:00:00Z"])
    advance: timedelta | None = Field(None, description="move business time forward by this duration (ISO 8601 "
                                      "or seconds)", examples=["P31D", "PT2H"])

    @model_validator(mode="after")
    def _one_of(self) -> ClockMove:
        if (self.at is None) == (self.advance is None):
            raise ValueError("give exactly one of `at` and `advance`")
        return self


def days_duration(duration: timedelta) -> str:
    """ISO 8601 with days as the largest unit (PnDTnHnMn.nS). Pydantic writes a year of 365 days past a year's
    offset (P3Y235D), but a year or a month is no fixed number of days, so other parsers would read it otherwise."""
    sign, duration = ("-", -duration) if duration < timedelta(0) else ("", duration)
    hours, rest = divmod(duration.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    fraction = f".{duration.microseconds:06d}".rstrip("0") if duration.microseconds else ""
    time = "".join(f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M")) if value)
    time += f"{seconds}{fraction}S" if seconds or duration.microseconds else ""
    days = f"{duration.days}D" if duration.days else ""
    return f"{sign}P{days}T{time}" if time else f"{sign}P{days or '0D'}"


class ClockState(BaseModel):
    now: datetime = Field(description="business time (UTC)")
    real_now: datetime = Field(description="real time on this API instance (UTC)")
    # A string, not a `duration` format: JSON Schema's duration (RFC 3339 appendix A) has no fractional seconds,
    # and an offset set by `at` has microseconds (the fuzzer caught it).
    offset: Annotated[timedelta, PlainSerializer(days_duration, return_type=str),
                      WithJsonSchema({"type": "string", "examples": ["PT3M59.990799S", "P1330DT2H12M9.6S"]})] = Field(
        description="business time minus real time (ISO 8601 duration in days at most, seconds may have a fraction)")
    set_at: datetime | None = Field(None, description="the real time of the last move (none: never moved)")
    set_by: str | None = Field(None, description="the admin's user id who made the last move")


def _controlled(platform: Platform) -> ControlledClock:
    if not platform.time.controlled:
        raise Problem(404, "Not found", "business time is real time here: BANK_CLOCK_CONTROL is off",
                      "clock_control_off")
    return platform.time.controlled_clock


def _state(clock: ControlledClock) -> ClockState:
    real = clock.real()
    last = clock.last
    return ClockState(now=real + clock.offset, real_now=real, offset=clock.offset,
                      set_at=last.set_at if last else None, set_by=last.set_by if last else None)


@router.get("/clock", response_model=ClockState, responses=_ANSWERS, name="get_clock",
            summary="Business time and its offset from real time (BANK_CLOCK_CONTROL only)")
async def get_clock(platform: PlatformDep) -> ClockState:
    return _state(_controlled(platform))


@router.put("/clock", response_model=ClockState, name="move_clock",
            responses=_ANSWERS | {409: {"description": "the move would run business time back",
                                        "content": {PROBLEM_JSON: {}}},
                                   422: {"description": "an invalid move, or one more than 100 years ahead of "
                                         "real time", "content": {PROBLEM_JSON: {}}}},
            summary="Move business time forward, for every process (BANK_CLOCK_CONTROL only)")
async def move_clock(body: ClockMove, platform: PlatformDep) -> ClockState:
    clock = _controlled(platform)
    before = clock.now()
    by = caller().user_id
    try:
        move = clock.move_to(utc_moment(body.at), by) if body.at is not None else \
            clock.advance_by(body.advance or timedelta(), by)
    except ClockTooFar as error:
        await platform.access.audit.record("clock_moved", "denied", reason="clock_too_far",
                                           details={"from": before.isoformat()})
        raise Problem(422, "Too far ahead", str(error), "clock_too_far") from None
    except ClockBackwards as refused:
        await platform.access.audit.record("clock_moved", "denied", reason="clock_backwards",
                                           details=_details(before, refused.wanted))
        raise Problem(409, "Business time never runs back", str(refused), "clock_backwards",
                      now=refused.current.isoformat()) from None
    await platform.time.publish(move)
    await platform.access.audit.record("clock_moved", details=_details(before, move.business_time, move))
    return _state(clock)


def _details(before: datetime, after: datetime, move: ClockSet | None = None) -> dict[str, str]:
    details = {"from": before.isoformat(), "to": after.isoformat()}
    if move is not None:
        details["offset_micros"] = str(move.offset_micros)
    return details
