"""Revocation with real workers: before the task starts (and across a worker restart),
terminate of a running task (cooperative, SIGKILL, and after the grace period), and
cooperative abort."""

from __future__ import annotations

import time

import pytest

from conveyor import TaskRevokedError, states

from .control_support import control_tasks_module, start_worker
from .support import pid_alive, read_jsonl, wait_until

RESULT_TIMEOUT = 15.0
REVOKE_TIMEOUT = 10.0
"""How soon a terminated task must show REVOKED: the supervisor polls every 0.5 s."""


@pytest.fixture
def control(tasks):
    with control_tasks_module(tasks) as module:
        yield module


def events(path, kind: str) -> list[dict]:
    return [e for e in read_jsonl(path) if e.get("event") == kind]


def test_revoked_before_it_starts_never_runs(control, workers, workdir):
    log = workdir / "ran.jsonl"
    revoked = [control.mark_ran.apply_async((str(log), f"r{n}"), countdown=1.5) for n in range(2)]
    kept = control.mark_ran.apply_async((str(log), "kept"), countdown=1.5)

    revoked[0].revoke()
    control.app.control.revoke([revoked[1].id])

    assert [r.state for r in revoked] == [states.REVOKED, states.REVOKED]
    worker = start_worker(workers)
    # Sent together with the revoked ones: once it ran, the worker got to all three.
    assert kept.get(timeout=RESULT_TIMEOUT) == "kept"
    for result in revoked:
        worker.wait_for_log(f"{result.id}] revoked")
        assert result.state == states.REVOKED
        with pytest.raises(TaskRevokedError):
            result.get(timeout=1)
    assert [r["label"] for r in read_jsonl(log)] == ["kept"]


def test_revocation_survives_a_worker_restart(control, workers, workdir):
    log = workdir / "ran.jsonl"
    sent_at = time.time()
    result = control.mark_ran.apply_async((str(log), "revoked"), countdown=3)
    kept = control.mark_ran.apply_async((str(log), "kept"), countdown=3)
    result.revoke()  # no worker runs yet

    first = start_worker(workers)
    assert first.stop() == 0
    restarted_before_due = time.time() < sent_at + 3
    second = start_worker(workers)

    assert kept.get(timeout=RESULT_TIMEOUT) == "kept"
    assert result.state == states.REVOKED
    assert [r["label"] for r in read_jsonl(log)] == ["kept"]
    if restarted_before_due:
        # The first worker stopped before the task was due: the second one, which never saw
        # the revoke call, found the revocation in the broker.
        assert result.id not in first.log()
        second.wait_for_log(f"{result.id}] revoked")


def test_revoked_while_waiting_for_its_retry_runs_no_more(control, workers, workdir):
    worker = start_worker(workers)
    log = workdir / "attempts.jsonl"
    result = control.retry_later.delay(str(log), 1.5)
    wait_until(lambda: result.state == states.RETRY, what="state RETRY")

    result.revoke()

    # The retry keeps the task id, so the revocation catches it when it comes due.
    worker.wait_for_log(f"{result.id}] revoked")
    assert result.state == states.REVOKED
    assert [a["retries"] for a in read_jsonl(log)] == [0]


def test_terminate_stops_a_running_task_and_the_worker_keeps_serving(control, workers, workdir):
    worker = start_worker(workers)
    log = workdir / "loop.jsonl"
    result = control.long_loop.delay(str(log), 30.0)
    wait_until(lambda: len(events(log, "tick")) >= 2, what="the loop to tick")
    assert result.state == states.STARTED

    result.revoke(terminate=True)

    wait_until(lambda: result.state == states.REVOKED, timeout=REVOKE_TIMEOUT, what="state REVOKED")
    with pytest.raises(TaskRevokedError):
        result.get(timeout=1)
    # Terminated was raised inside the task: its finally block ran, then nothing more.
    lines = read_jsonl(log)
    assert lines[-1]["event"] == "stopped"
    assert len(events(log, "stopped")) == 1
    time.sleep(0.5)
    assert len(read_jsonl(log)) == len(lines)
    assert control.child_pid.delay().get(timeout=RESULT_TIMEOUT) > 0
    assert worker.running()


def test_terminate_with_sigkill_replaces_the_child(control, workers, workdir):
    worker = start_worker(workers)
    log = workdir / "loop.jsonl"
    result = control.long_loop.delay(str(log), 30.0)
    wait_until(lambda: events(log, "tick"), what="the loop to tick")
    (start,) = events(log, "start")

    control.app.control.revoke(result.id, terminate=True, signal="SIGKILL")

    wait_until(lambda: result.state == states.REVOKED, timeout=REVOKE_TIMEOUT, what="state REVOKED")
    wait_until(lambda: not pid_alive(start["pid"]), what="the killed child to be gone")
    assert events(log, "stopped") == []  # killed at once: no cleanup ran
    assert control.child_pid.delay().get(timeout=RESULT_TIMEOUT) != start["pid"]
    assert worker.running()


def test_terminate_ignored_by_the_task_kills_the_child_after_the_grace(control, workers, workdir):
    worker = start_worker(workers)
    log = workdir / "loop.jsonl"
    result = control.stubborn_loop.delay(str(log), 30.0)
    wait_until(lambda: events(log, "tick"), what="the loop to tick")
    (start,) = events(log, "start")

    result.revoke(terminate=True)

    wait_until(lambda: events(log, "ignored terminate"), what="the task to get the request")
    # KILL_GRACE is 5 s: then the supervisor SIGKILLs the child.
    wait_until(lambda: result.state == states.REVOKED, timeout=15, what="state REVOKED")
    assert not pid_alive(start["pid"])
    assert "ignored the terminate request" in worker.log()
    assert control.child_pid.delay().get(timeout=RESULT_TIMEOUT) != start["pid"]


@pytest.mark.parametrize("how", ["abort", "revoke"])
def test_running_task_sees_is_aborted_and_stops_cleanly(control, workers, workdir, how):
    start_worker(workers)
    log = workdir / "steps.jsonl"
    result = control.abortable.delay(str(log), 300)
    wait_until(lambda: len(events(log, "step")) >= 3, what="three steps")

    if how == "abort":
        result.abort()
    else:
        result.revoke()  # without terminate: the task is asked, not killed

    answer = result.get(timeout=RESULT_TIMEOUT)
    assert answer.startswith("aborted at step ")
    step = int(answer.rsplit(" ", 1)[1])
    assert step >= 3
    assert result.state == states.SUCCESS
    assert events(log, "aborted") == [{"event": "aborted", "step": step}]
    assert len(events(log, "step")) == step
