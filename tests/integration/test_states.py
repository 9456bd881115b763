"""States that a web view polling a task can trust, read from real workers' results."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conveyor import AsyncResult, states
from conveyor.exceptions import Retry, TaskRevokedError, TimeoutError

from .support import DEFAULT_TIMEOUT, wait_until

APP = "reliability_tasks:app"
ORDER = {states.PENDING: 0, states.RECEIVED: 1, states.STARTED: 2, states.SUCCESS: 3}


def test_a_polled_state_only_moves_forward(rt, pool):
    """Readers poll short tasks as a progress view does: never UNKNOWN, never backwards."""
    pool.start("-c", "2", app=APP)
    results = [rt.square.delay(i) for i in range(400)]
    seen: dict[str, list[str]] = {r.id: [] for r in results}
    errors: list[BaseException] = []

    def poll(mine: list[AsyncResult[int]]) -> None:
        try:
            waiting = list(mine)
            while waiting:
                for result in list(waiting):
                    state = result.state
                    seen[result.id].append(state)
                    if state == states.SUCCESS:
                        waiting.remove(result)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=poll, args=(results[i::4],)) for i in range(4)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(DEFAULT_TIMEOUT * 4)

    assert not errors and not any(r.is_alive() for r in readers)
    reads = sum(len(v) for v in seen.values())
    assert reads >= len(results)
    for task_id, sequence in seen.items():
        assert states.UNKNOWN not in sequence, (task_id, sequence)
        ranks = [ORDER[s] for s in sequence]
        assert ranks == sorted(ranks), (task_id, sequence)
    assert [r.get(timeout=DEFAULT_TIMEOUT) for r in results[:3]] == [0, 1, 4]


def test_started_info_names_the_process_and_host(rt, pool, tmp_path):
    log, gate = str(tmp_path / "runs"), str(tmp_path / "gate")
    worker = pool.start(app=APP)
    result = rt.hold.delay(log, gate, "x")

    wait_until(lambda: result.state == states.STARTED, what="STARTED")
    info = result.info
    assert info["hostname"] == worker.hostname
    assert info["pid"] == rt.runs(log)[0]["pid"]
    assert info.get("missing") is None  # a view's info.get(...) works in STARTED
    Path(gate).touch()
    assert result.get(timeout=DEFAULT_TIMEOUT) == "x"


def test_retry_info_carries_the_exception_and_when_the_next_attempt_is_due(rt, pool, tmp_path):
    log = str(tmp_path / "runs")
    pool.start(app=APP)
    before = datetime.now(UTC)
    result = rt.retries_later.delay(log)

    wait_until(lambda: result.state == states.RETRY, what="RETRY")
    info = result.info
    assert isinstance(info, Retry)
    assert type(info.exc).__name__ == "Unavailable" and str(info.exc) == "partner API down"
    assert isinstance(info.when, datetime)
    assert before + timedelta(seconds=55) <= info.when <= datetime.now(UTC) + timedelta(seconds=61)


def test_a_get_that_times_out_on_a_waiting_task_says_pending(rt):
    result = rt.square.delay(3)  # no worker runs

    with pytest.raises(TimeoutError, match=r"state PENDING"):
        result.get(timeout=0.2)
    assert result.state == states.PENDING


def test_a_task_revoked_before_it_started_names_its_id(rt, pool):
    result = rt.square.delay(3)
    result.revoke()
    pool.start(app=APP)

    with pytest.raises(TaskRevokedError) as raised:
        result.get(timeout=DEFAULT_TIMEOUT)
    assert result.id in str(raised.value)
    assert "None" not in str(raised.value)
