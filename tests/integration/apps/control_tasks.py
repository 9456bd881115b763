"""Tasks for the task-control integration tests: retries, time limits, rate and concurrency
limits, revocation, abort, locks and idempotency keys.

They are registered on the sample app (same SQLite file, ``broker_lease=2``). Workers load
this module through ``CONVEYOR_INCLUDE=control_tasks`` next to ``-A sample_tasks:app``; the
tests import it afresh after ``sample_tasks`` (see control_support.py).

Every task writes what it did as JSON lines into a file the test passes in, stamped with
``time.time()``, so a test can check order, spacing and overlap across processes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from sample_tasks import app

from conveyor import SoftTimeLimitExceeded
from conveyor.exceptions import Terminated

GATE_TIMEOUT = 10.0
"""A task waiting for a gate file gives up after this long, so a broken test never hangs."""


def note(path: str | Path, **fields: Any) -> None:
    """Append one JSON line (one small write: lines from several processes do not mix)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(fields) + "\n")


def wait_for_gate(path: str | Path, timeout: float = GATE_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


# -- retries ----------------------------------------------------------------------------


def _note_retry(
    self: Any, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
) -> None:
    note(
        Path(args[0]).with_name("on_retry.jsonl"),
        task_id=task_id,
        retries=self.request.retries,
        error=str(exc),
    )


@app.task(
    bind=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=0.2,
    retry_jitter=False,
    retry_kwargs={"max_retries": 3},
    on_retry=_note_retry,
)
def call_flaky_api(self: Any, log_path: str, failures: int) -> int:
    """Raise ConnectionError on the first ``failures`` attempts, then return the retry count."""
    retries = self.request.retries
    note(log_path, at=time.time(), id=self.request.id, retries=retries)
    if retries < failures:
        raise ConnectionError(f"connection reset on attempt {retries + 1}")
    return int(retries)


@app.task(
    bind=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=0.1,
    retry_jitter=False,
    retry_kwargs={"max_retries": 1},
    dead_letter=True,
)
def charge_card(self: Any, log_path: str, fixed_flag: str) -> str:
    """Fails with ConnectionError until the ``fixed_flag`` file exists."""
    note(log_path, id=self.request.id, retries=self.request.retries)
    if not os.path.exists(fixed_flag):
        raise ConnectionError("payment gateway unreachable")
    return "charged"


@app.task(bind=True, max_retries=3)
def retry_later(self: Any, log_path: str, countdown: float, expires: float | None = None) -> str:
    """Ask for one retry after ``countdown`` s (expiring ``expires`` s after it is sent)."""
    note(log_path, at=time.time(), retries=self.request.retries)
    if self.request.retries == 0:
        options = {} if expires is None else {"expires": expires}
        raise self.retry(exc=ConnectionError("try later"), countdown=countdown, **options)
    return "retried"


# -- time limits ------------------------------------------------------------------------


@app.task(soft_time_limit=0.5)
def cleanup_after_soft_limit(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "slept"


@app.task(soft_time_limit=0.5)
def ignore_soft_limit(seconds: float) -> str:
    """Does not catch SoftTimeLimitExceeded."""
    time.sleep(seconds)
    return "slept"


@app.task(time_limit=1)
def overstay(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@app.task
def nap(seconds: float) -> str:
    """No limits of its own: for limits given per call with apply_async()."""
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "slept"


@app.task
def clean_up_slowly(seconds: float) -> str:
    """Catches the soft limit, then takes ``seconds`` more to clean up."""
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        time.sleep(seconds)
        return "cleaned up late"
    return "slept"


@app.task
def child_pid() -> int:
    return os.getpid()


# -- rate and concurrency limits --------------------------------------------------------


@app.task(bind=True, rate_limit="5/s")
def rate_limited(self: Any, log_path: str, n: int) -> int:
    note(log_path, at=time.time(), n=n, host=self.request.hostname)
    return n


@app.task
def unlimited(log_path: str) -> float:
    now = time.time()
    note(log_path, at=now)
    return now


@app.task(bind=True, concurrency_limit=2)
def limited_pair(self: Any, log_path: str, seconds: float) -> None:
    start = time.time()
    time.sleep(seconds)
    note(log_path, start=start, end=time.time(), host=self.request.hostname)


@app.task(bind=True, concurrency_limit=1, concurrency_key="tenant_id")
def per_tenant(self: Any, log_path: str, tenant_id: str, seconds: float) -> None:
    start = time.time()
    time.sleep(seconds)
    note(log_path, start=start, end=time.time(), tenant=tenant_id, host=self.request.hostname)


# -- revocation, terminate, abort -------------------------------------------------------


@app.task
def mark_ran(log_path: str, label: str) -> str:
    note(log_path, label=label, at=time.time())
    return label


@app.task
def long_loop(log_path: str, seconds: float) -> str:
    """Tick every 0.1 s for ``seconds``; the ``finally`` records where it stopped."""
    note(log_path, event="start", pid=os.getpid())
    step = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            step += 1
            note(log_path, event="tick", step=step)
            time.sleep(0.1)
    finally:
        note(log_path, event="stopped", step=step)
    return "finished"


@app.task
def stubborn_loop(log_path: str, seconds: float) -> str:
    """Swallows the terminate request (as code stuck in a library might) and keeps going.

    The whole loop sits inside the ``try``, so the request is caught wherever it lands.
    """
    note(log_path, event="start", pid=os.getpid())
    deadline = time.monotonic() + seconds
    while True:
        try:
            while time.monotonic() < deadline:
                note(log_path, event="tick")
                time.sleep(0.1)
            return "finished"
        except Terminated:
            note(log_path, event="ignored terminate")


@app.task(bind=True)
def abortable(self: Any, log_path: str, steps: int) -> str:
    for step in range(steps):
        if self.is_aborted():
            note(log_path, event="aborted", step=step)
            return f"aborted at step {step}"
        note(log_path, event="step", step=step)
        time.sleep(0.1)
    return "finished"


# -- locks and idempotency --------------------------------------------------------------


@app.task(lock="report-{day}", on_locked="skip")
def daily_report(log_path: str, day: str, gate: str) -> str:
    """Holds the day's lock until the gate opens."""
    start = time.time()
    wait_for_gate(gate)
    note(log_path, day=day, start=start, end=time.time())
    return day


@app.task(lock="report-{day}", on_locked="retry")
def daily_report_retry(log_path: str, day: str, seconds: float) -> str:
    start = time.time()
    time.sleep(seconds)
    note(log_path, day=day, start=start, end=time.time())
    return day


@app.task
def confirm_order(log_path: str, order_id: int) -> int:
    note(log_path, order_id=order_id)
    return order_id


@app.task(idempotency_key="order-{order_id}:confirm")
def confirm_order_once(log_path: str, order_id: int) -> int:
    note(log_path, order_id=order_id)
    return order_id
