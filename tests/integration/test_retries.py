"""self.retry(): retried to success, past max_retries to failure, and the RETRY state."""

from __future__ import annotations

import json

import pytest

from conveyor import states

from .support import read_jsonl, wait_until

RETRY_TIMEOUT = 10.0
"""Each of these tasks finishes in well under a second once its retries are delivered."""


def scheduled(app) -> int:
    """Messages waiting in the broker (ready or delayed), as ``conveyor queues`` shows them."""
    return sum(s.ready + s.delayed for s in app.broker.stats().values())


def test_task_failing_twice_then_succeeding_ends_success(tasks, workers, workdir):
    workers.start()
    attempts = workdir / "attempts.jsonl"

    result = tasks.flaky.delay(str(attempts), 2)

    assert result.get(timeout=RETRY_TIMEOUT) == {"attempt": 3, "retries": 2}
    assert result.state == states.SUCCESS
    assert [a["retries"] for a in read_jsonl(attempts)] == [0, 1, 2]


def test_past_max_retries_fails_with_the_original_exception(tasks, workers, workdir):
    workers.start()

    result = tasks.always_times_out.delay(str(workdir))

    with pytest.raises(tasks.GatewayTimeout, match="upstream gateway timed out"):
        result.get(timeout=RETRY_TIMEOUT)
    assert result.state == states.FAILURE
    # max_retries=2: the first run and two retries, then on_failure.
    assert [a["retries"] for a in read_jsonl(workdir / "attempts.jsonl")] == [0, 1, 2]
    marker = json.loads((workdir / "on_failure.json").read_text())
    assert marker == {
        "type": "GatewayTimeout",
        "message": "upstream gateway timed out",
        "task_id": result.id,
        "retries": 2,
    }


def test_retry_state_is_visible_between_attempts(tasks, workers, workdir):
    workers.start()
    attempts = workdir / "attempts.jsonl"

    result = tasks.retry_once.delay(str(attempts), 1.5)

    wait_until(lambda: result.state == states.RETRY, what="state RETRY")
    assert not result.ready()
    assert "first attempt failed" in str(result.info)
    # The next attempt waits in the broker's delayed store for its countdown.
    wait_until(
        lambda: scheduled(tasks.app) or result.ready(),
        timeout=1.0,
        what="the retry to be scheduled in the broker",
    )
    assert result.get(timeout=RETRY_TIMEOUT) == 1
    assert result.state == states.SUCCESS
    assert len(read_jsonl(attempts)) == 2
