"""countdown and eta delay a task (lower bounds only); expires turns it into REVOKED."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import TaskRevokedError, states

from .support import DEFAULT_TIMEOUT, wait_until


def test_countdown_runs_no_earlier_than_asked(tasks, workers):
    workers.start()
    sent_at = time.time()

    result = tasks.stamp.apply_async(countdown=1)

    ran_at = result.get(timeout=DEFAULT_TIMEOUT)
    assert ran_at >= sent_at + 1.0


def test_eta_datetime_runs_no_earlier_than_asked(tasks, workers):
    workers.start()
    eta = datetime.now(UTC) + timedelta(seconds=1)

    result = tasks.stamp.apply_async(eta=eta)

    ran_at = result.get(timeout=DEFAULT_TIMEOUT)
    assert ran_at >= eta.timestamp()
    assert result.state == states.SUCCESS


def test_a_delayed_task_does_not_hold_back_ready_ones(tasks, workers):
    workers.start("-c", "1", "--prefetch-multiplier", "1")
    sent_at = time.time()

    later = tasks.stamp.apply_async(countdown=1)
    now = tasks.stamp.delay()

    later_ran = later.get(timeout=DEFAULT_TIMEOUT)
    # One consumer, one message at a time: the delayed task, sent first, did not block it.
    assert now.get(timeout=DEFAULT_TIMEOUT) < later_ran
    assert later_ran >= sent_at + 1.0


def test_expires_in_the_past_ends_revoked_without_running(tasks, workers, workdir):
    workers.start()
    marker = workdir / "ran"

    result = tasks.touch.apply_async((str(marker),), expires=datetime(2000, 1, 1, tzinfo=UTC))

    with pytest.raises(TaskRevokedError, match="expired"):
        result.get(timeout=DEFAULT_TIMEOUT)
    assert result.state == states.REVOKED
    assert result.ready() and not result.successful()
    assert not marker.exists()


def test_expires_passing_while_no_worker_runs_ends_revoked(tasks, workers, workdir):
    marker = workdir / "ran"
    result = tasks.touch.apply_async((str(marker),), expires=0.3)
    fresh = tasks.add.apply_async((1, 2), expires=60)
    sent_by = time.time()
    # Waiting is the point here: the expiry must pass before any worker exists.
    wait_until(lambda: time.time() > sent_by + 0.3, what="the expiry to pass")

    workers.start()

    with pytest.raises(TaskRevokedError):
        result.get(timeout=DEFAULT_TIMEOUT)
    assert result.state == states.REVOKED
    assert not marker.exists()
    assert fresh.get(timeout=DEFAULT_TIMEOUT) == 3
    wait_until(lambda: tasks.app.broker.stats() == {}, what="both messages acked")
