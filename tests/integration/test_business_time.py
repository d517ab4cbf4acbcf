"""A process's business time (infra/clock.py) against the broker: what one process publishes on bank.clock is
every process's business time, a process starting later begins on it, and with clock control off the topic is
never read. Moves here are a second each: the session's other tests share this business time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from infra.clock import BusinessTime, ClockControlOff
from schemas.codec import get_codec

pytestmark = pytest.mark.usefixtures("topics_applied")


async def _started(bootstrap: str, controlled: bool = True) -> BusinessTime:
    time = BusinessTime(bootstrap, controlled, get_codec())
    await time.start()
    return time


async def _until(condition: object, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.05)


def test_a_move_reaches_running_and_later_processes(kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        mover, follower = await _started(kafka_bootstrap), await _started(kafka_bootstrap)
        try:
            move = mover.controlled_clock.advance_by(timedelta(seconds=1), "integration-test")
            await mover.publish(move)
            assert mover.controlled_clock.offset == move.offset          # its own move, at once
            await _until(lambda: follower.controlled_clock.offset >= move.offset)
            assert follower.controlled_clock.offset == move.offset       # another process, through the topic
            assert follower.controlled_clock.last == move
            late = await _started(kafka_bootstrap)                        # starts on the live offset
            try:
                assert late.controlled_clock.offset == move.offset
            finally:
                await late.stop()
        finally:
            await mover.stop()
            await follower.stop()

    asyncio.run(scenario())


def test_with_control_off_business_time_is_real_time_whatever_the_topic_says(kafka_bootstrap: str) -> None:
    async def scenario() -> None:
        on, off = await _started(kafka_bootstrap), await _started(kafka_bootstrap, controlled=False)
        try:
            await on.publish(on.controlled_clock.advance_by(timedelta(seconds=1), "integration-test"))
            assert on.now() - datetime.now(UTC) > timedelta(milliseconds=500)    # the topic says: a second on
            assert abs(off.now() - datetime.now(UTC)) < timedelta(milliseconds=500)
            with pytest.raises(ClockControlOff):
                await off.publish(on.controlled_clock.advance_by(timedelta(seconds=1), "integration-test"))
        finally:
            await on.stop()
            await off.stop()

    asyncio.run(scenario())
