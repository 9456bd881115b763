"""A broker outage is logged once, then briefly now and then, then once when it ends."""

from __future__ import annotations

import logging

import pytest

from conveyor.exceptions import BrokerError
from conveyor.outage import FIRST_PAUSE, LONGEST_PAUSE, Outage
from conveyor.testing import FakeClock

DOWN = BrokerError("Redis at redis://:***@db:6379/0 is unreachable (reserving): refused")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


@pytest.fixture
def outage(clock: FakeClock) -> Outage:
    return Outage(logging.getLogger("test.outage"), clock=clock)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_an_outage_is_one_line_then_reminders_then_one_line(
    outage: Outage, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "test.outage")
    for _ in range(10):  # four seconds of failures, a few every second
        outage.failed("consumer", DOWN)
        clock.advance(0.4)
    assert lines(caplog) == [f"consumer failed, retrying: {DOWN}"]
    assert all(record.exc_info is None for record in caplog.records)

    for _ in range(600):  # two more minutes
        outage.failed("consumer", DOWN)
        clock.advance(0.2)
    reminders = lines(caplog)[1:]
    assert reminders[0] == "broker still failing (16 attempts, 5s): consumer"
    assert len(reminders) == 4  # 5, 15, 35 and 75 s in: the gap doubles, up to a minute

    outage.ended("consumer")
    outage.ended("consumer")
    assert lines(caplog)[-1] == "the broker answers again (after 124s and 610 failed attempt(s))"
    assert len(lines(caplog)) == 6
    assert not outage.ongoing


def test_no_outage_no_lines(outage: Outage, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "test.outage")
    outage.ended("consumer")
    assert lines(caplog) == []


def test_it_ends_when_every_failing_loop_succeeds_again(
    outage: Outage, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "test.outage")
    outage.failed("lease heartbeat", DOWN)
    outage.failed("lease recovery", DOWN)
    for _ in range(5):  # recovery answers, the heartbeat still fails: no coming and going
        outage.ended("lease recovery")
        outage.failed("lease heartbeat", DOWN)
        clock.advance(1)
    assert len(lines(caplog)) == 1 and outage.ongoing
    outage.ended("lease heartbeat")
    assert lines(caplog)[-1].startswith("the broker answers again (after 5s")

    outage.failed("lease recovery", DOWN)  # a new outage is reported afresh
    assert lines(caplog)[-1] == f"lease recovery failed, retrying: {DOWN}"


def test_pauses_double_up_to_a_limit(outage: Outage) -> None:
    assert FIRST_PAUSE / 2 <= outage.pause() <= FIRST_PAUSE
    pauses = []
    for _ in range(2000):  # hours of failures: the pause stays bounded
        outage.failed("consumer", DOWN)
        pauses.append(outage.pause())
    assert FIRST_PAUSE / 2 <= pauses[0] <= FIRST_PAUSE
    assert FIRST_PAUSE <= pauses[1] <= 2 * FIRST_PAUSE
    assert all(LONGEST_PAUSE / 2 <= pause <= LONGEST_PAUSE for pause in pauses[10:])
