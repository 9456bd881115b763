"""Task control with real workers: autoretry with backoff, task locks, idempotency keys and
``app.lock`` shared between processes.

Limits are in test_limits.py, revocation and abort in test_revocation.py, time limits in
test_time_limits.py; the tasks are in apps/control_tasks.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from itertools import pairwise

import pytest

from conveyor import states
from conveyor.exceptions import TimeoutError as ConveyorTimeoutError

from .control_support import control_tasks_module, overlapped, scheduled, start_worker
from .support import base_env, read_jsonl, wait_until

RESULT_TIMEOUT = 15.0


@pytest.fixture
def control(tasks):
    with control_tasks_module(tasks) as module:
        yield module


# -- retries ----------------------------------------------------------------------------


def test_autoretry_backs_off_exponentially_keeping_the_task_id(control, workers, workdir):
    start_worker(workers)
    log = workdir / "attempts.jsonl"

    result = control.call_flaky_api.delay(str(log), 3)

    assert result.get(timeout=RESULT_TIMEOUT) == 3
    assert result.state == states.SUCCESS
    assert result.retries == 3
    attempts = read_jsonl(log)
    assert [a["retries"] for a in attempts] == [0, 1, 2, 3]
    assert {a["id"] for a in attempts} == {result.id}
    # retry_backoff=0.2 without jitter: 0.2, 0.4, 0.8 s before the retries.
    gaps = [b["at"] - a["at"] for a, b in pairwise(attempts)]
    for gap, backoff in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert gap >= backoff, f"gaps between attempts: {gaps}"
    on_retry = read_jsonl(workdir / "on_retry.jsonl")
    assert [(r["task_id"], r["retries"]) for r in on_retry] == [
        (result.id, 0),
        (result.id, 1),
        (result.id, 2),
    ]
    assert on_retry[0]["error"] == "connection reset on attempt 1"


def test_autoretry_past_max_retries_fails_with_the_last_error(control, workers, workdir):
    start_worker(workers)
    log = workdir / "attempts.jsonl"

    result = control.call_flaky_api.delay(str(log), 10)

    with pytest.raises(ConnectionError, match="connection reset on attempt 4"):
        result.get(timeout=RESULT_TIMEOUT)
    assert result.state == states.FAILURE
    # retry_kwargs={"max_retries": 3}: the first run and three retries.
    assert [a["retries"] for a in read_jsonl(log)] == [0, 1, 2, 3]
    assert len(read_jsonl(workdir / "on_retry.jsonl")) == 3


def test_retry_expiring_before_it_is_due_ends_revoked(control, workers, workdir):
    worker = start_worker(workers)
    log = workdir / "attempts.jsonl"

    # The retry is due in 1 s but expires 0.3 s after it was sent.
    result = control.retry_later.delay(str(log), 1.0, 0.3)

    worker.wait_for_log(f"{result.id}] retry 1")
    wait_until(lambda: result.state == states.REVOKED, what="state REVOKED")
    assert "expired" in str(result.result)
    assert [a["retries"] for a in read_jsonl(log)] == [0]


def test_exhausted_retries_go_to_the_dead_letters_and_can_be_resent(control, workers, workdir, cli):
    start_worker(workers)
    log, fixed = workdir / "attempts.jsonl", workdir / "gateway-fixed"

    result = control.charge_card.delay(str(log), str(fixed))

    with pytest.raises(ConnectionError, match="payment gateway unreachable"):
        result.get(timeout=RESULT_TIMEOUT)
    listed = cli("-A", "sample_tasks:app", "dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert line.startswith(result.id)
    assert "failed: ConnectionError: payment gateway unreachable" in line
    assert "1 dead letter(s)" in listed.stderr

    fixed.touch()
    resent = cli("-A", "sample_tasks:app", "dead-letters", "retry", "--all")
    assert resent.returncode == 0, resent.stderr
    assert resent.stdout.strip() == "re-sent 1 message(s)"

    wait_until(lambda: result.state == states.SUCCESS, what="the re-sent task to succeed")
    assert result.get(timeout=1) == "charged"
    assert [a["retries"] for a in read_jsonl(log)] == [0, 1, 1]
    assert {a["id"] for a in read_jsonl(log)} == {result.id}


# -- task locks -------------------------------------------------------------------------


def test_lock_skip_ends_the_second_run_ignored(control, workers, workdir):
    start_worker(workers, "-c", "2", "--prefetch-multiplier", "1")
    log, gate = workdir / "reports.jsonl", workdir / "gate"

    first = control.daily_report.delay(str(log), "2024-05-01", str(gate))
    second = control.daily_report.delay(str(log), "2024-05-01", str(gate))

    # One holds the lock until the gate opens; the other finds it held and is skipped.
    skipped = wait_until(
        lambda: [r for r in (first, second) if r.state == states.IGNORED],
        what="one of the two runs to be skipped",
    )
    gate.touch()
    (ran,) = [r for r in (first, second) if r.id != skipped[0].id]
    assert ran.get(timeout=RESULT_TIMEOUT) == "2024-05-01"
    assert skipped[0].state == states.IGNORED
    assert "report-2024-05-01" in str(skipped[0].result)
    assert len(read_jsonl(log)) == 1
    # The lock went away with the run that held it: the next one for that day runs.
    again = control.daily_report.delay(str(log), "2024-05-01", str(gate))
    assert again.get(timeout=RESULT_TIMEOUT) == "2024-05-01"
    assert len(read_jsonl(log)) == 2


def test_lock_retry_runs_both_one_after_the_other(control, workers, workdir):
    start_worker(workers, "-c", "2", "--prefetch-multiplier", "1")
    log = workdir / "reports.jsonl"

    runs = [control.daily_report_retry.delay(str(log), "2024-05-02", 0.5) for _ in range(2)]

    assert [r.get(timeout=RESULT_TIMEOUT) for r in runs] == ["2024-05-02", "2024-05-02"]
    assert [r.state for r in runs] == [states.SUCCESS, states.SUCCESS]
    a, b = [(rec["start"], rec["end"]) for rec in read_jsonl(log)]
    assert not overlapped(a, b), f"runs under one lock overlapped: {a} and {b}"


def test_lock_is_kept_while_a_run_outlasts_the_broker_lease(control, workers, workdir):
    # lock_timeout is unset, so the lock lives for one broker lease (2 s in the sample app)
    # at a time; the worker's heartbeat must keep extending it while the task runs.
    start_worker(workers, "-c", "2", "--prefetch-multiplier", "1")
    log = workdir / "reports.jsonl"

    runs = [control.daily_report_retry.delay(str(log), "2024-05-03", 2.6) for _ in range(2)]

    assert [r.get(timeout=RESULT_TIMEOUT) for r in runs] == ["2024-05-03", "2024-05-03"]
    a, b = [(rec["start"], rec["end"]) for rec in read_jsonl(log)]
    assert not overlapped(a, b), f"runs under one lock overlapped: {a} and {b}"


# -- idempotency keys -------------------------------------------------------------------


def test_same_idempotency_key_sends_once_and_returns_the_same_result(control, workers, workdir):
    log = workdir / "orders.jsonl"

    first = control.confirm_order.apply_async((str(log), 42), idempotency_key="order-42:confirm")
    second = control.confirm_order.apply_async((str(log), 42), idempotency_key="order-42:confirm")

    assert second.id == first.id
    assert scheduled(control.app) == 1
    start_worker(workers)
    assert first.get(timeout=RESULT_TIMEOUT) == 42
    # Still inside the window after the first run finished: nothing new is sent.
    third = control.confirm_order.apply_async((str(log), 42), idempotency_key="order-42:confirm")
    assert third.id == first.id
    other = control.confirm_order.apply_async((str(log), 43), idempotency_key="order-43:confirm")
    assert other.id != first.id
    assert other.get(timeout=RESULT_TIMEOUT) == 43
    assert scheduled(control.app) == 0
    assert [r["order_id"] for r in read_jsonl(log)] == [42, 43]


def test_idempotency_key_derived_from_arguments_by_the_task_option(control, workers, workdir):
    log = workdir / "orders.jsonl"
    start_worker(workers)

    first = control.confirm_order_once.delay(str(log), 7)
    second = control.confirm_order_once.delay(str(log), 7)
    other = control.confirm_order_once.delay(str(log), 8)

    assert second.id == first.id
    assert other.id != first.id
    assert first.get(timeout=RESULT_TIMEOUT) == 7
    assert other.get(timeout=RESULT_TIMEOUT) == 8
    wait_until(lambda: scheduled(control.app) == 0, what="an empty broker")
    assert sorted(r["order_id"] for r in read_jsonl(log)) == [7, 8]


# -- app.lock across processes ----------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from sample_tasks import app

    before = time.time()
    with app.lock("x", timeout=float(sys.argv[1])) as held:
        print(f"held {held} {before!r}", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    """
)


@pytest.fixture
def lock_holder(tmp_path, broker_url):
    """Start a process that takes ``app.lock("x", timeout=...)``; returns (process, time
    read just before it asked for the lock)."""
    started: list[subprocess.Popen[str]] = []

    def start(timeout: float) -> tuple[subprocess.Popen[str], float]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(timeout)],
            cwd=tmp_path,
            env=base_env(broker_url),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:2] == ["held", "True"], f"lock holder said {line!r}"
        return proc, float(line[2])

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_app_lock_held_by_another_process_is_refused_until_released(control, lock_holder):
    app = control.app
    holder, _ = lock_holder(30.0)

    with app.lock("x", timeout=600) as acquired:  # the task_lock shape: no waiting
        assert acquired is False
    with pytest.raises(ConveyorTimeoutError), app.lock("x", blocking_timeout=0.3):
        pytest.fail("entered a lock another process holds")
    with app.lock("y", blocking=False) as acquired:
        assert acquired is True

    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "released"
    assert holder.wait(10) == 0
    with app.lock("x", blocking=False) as acquired:
        assert acquired is True


def test_app_lock_of_a_killed_holder_frees_itself_after_its_timeout(control, lock_holder):
    app = control.app
    holder, asked_at = lock_holder(2.0)

    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert holder.returncode == -signal.SIGKILL
    lock = app.lock("x", timeout=5, blocking=False)
    assert time.time() < asked_at + 2.0, "too slow to check the lock before it expired"
    assert lock.acquire() is False, "a SIGKILLed holder's lock was free before its timeout"

    wait_until(lock.acquire, timeout=10, interval=0.05, what="the dead holder's lock to expire")
    acquired_at = time.time()
    assert acquired_at >= asked_at + 2.0
    assert lock.release() is True
