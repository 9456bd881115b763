"""Soft and hard time limits with real prefork workers, set on the task and per call."""

from __future__ import annotations

import time

import pytest

from conveyor import SoftTimeLimitExceeded, TimeLimitExceeded, states

from .control_support import control_tasks_module, start_worker
from .support import pid_alive, wait_until

RESULT_TIMEOUT = 15.0
"""The tasks below would sleep 5 or 30 s; a limit ends each of them within about 1 s."""


@pytest.fixture
def control(tasks):
    with control_tasks_module(tasks) as module:
        yield module


def test_soft_time_limit_lets_the_task_clean_up(control, workers):
    start_worker(workers)
    sent = time.monotonic()

    result = control.cleanup_after_soft_limit.delay(5.0)

    assert result.get(timeout=RESULT_TIMEOUT) == "cleaned up"
    assert result.state == states.SUCCESS
    # The point: the 5 s sleep was interrupted at the 0.5 s soft limit.
    assert time.monotonic() - sent < 4.5


def test_soft_time_limit_not_caught_fails_the_task(control, workers):
    start_worker(workers)

    result = control.ignore_soft_limit.delay(5.0)

    with pytest.raises(SoftTimeLimitExceeded):
        result.get(timeout=RESULT_TIMEOUT)
    assert result.state == states.FAILURE
    assert control.child_pid.delay().get(timeout=RESULT_TIMEOUT) > 0


def test_soft_time_limit_per_call(control, workers):
    start_worker(workers)

    result = control.nap.apply_async((5.0,), soft_time_limit=0.5)

    assert result.get(timeout=4.5) == "cleaned up"


def test_hard_time_limit_kills_the_child_and_the_worker_keeps_serving(control, workers):
    worker = start_worker(workers)
    (child,) = worker.children()

    result = control.overstay.delay(30.0)

    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=RESULT_TIMEOUT)
    assert result.state == states.FAILURE
    assert isinstance(result.result, TimeLimitExceeded)
    assert "hard time limit" in worker.log()
    # The child that ran it was killed and replaced; the next task runs in the new one.
    wait_until(lambda: not pid_alive(child), what=f"child {child} to be gone")
    assert control.child_pid.delay().get(timeout=RESULT_TIMEOUT) != child
    assert worker.running()


def test_hard_time_limit_per_call(control, workers):
    worker = start_worker(workers)

    result = control.nap.apply_async((30.0,), time_limit=1)

    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=RESULT_TIMEOUT)
    assert result.state == states.FAILURE
    assert control.nap.delay(0.0).get(timeout=RESULT_TIMEOUT) == "slept"
    assert worker.running()


def test_worker_default_limits_apply_to_tasks_without_their_own(control, workers):
    worker = start_worker(
        workers, env={"CONVEYOR_TASK_SOFT_TIME_LIMIT": "0.5", "CONVEYOR_TASK_TIME_LIMIT": "2"}
    )

    soft = control.nap.delay(5.0)
    hard = control.clean_up_slowly.delay(30.0)

    assert soft.get(timeout=4.5) == "cleaned up"
    # Caught the soft limit at 0.5 s, then overstayed: the hard limit killed it at 2 s.
    with pytest.raises(TimeLimitExceeded):
        hard.get(timeout=RESULT_TIMEOUT)
    assert control.child_pid.delay().get(timeout=RESULT_TIMEOUT) > 0
    assert worker.running()


def test_a_chord_member_killed_by_its_hard_limit_fails_the_chord(control, workers):
    """The supervisor stores TimeLimitExceeded; the chord still learns of it and does not hang."""
    from conveyor import chord
    from conveyor.exceptions import ChordError, TimeLimitExceeded

    start_worker(workers, "-c", "2")

    result = chord(
        [control.overstay.s(30.0), control.nap.s(0.1)], control.mark_ran.si("-", "cb")
    ).delay()

    # As in Celery 5, get() raises the failed member's own error; the callback's stored
    # ChordError names the member.
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=RESULT_TIMEOUT)
    with pytest.raises(ChordError, match="overstay"):
        result.get(timeout=RESULT_TIMEOUT, follow_parents=False)
