"""Global rate and concurrency limits, held across two real worker processes."""

from __future__ import annotations

import pytest

from .control_support import (
    control_tasks_module,
    max_overlap,
    most_in_window,
    overlapped,
    scheduled,
    start_worker,
)
from .support import read_jsonl, wait_until

RESULT_TIMEOUT = 30.0


@pytest.fixture
def control(tasks):
    with control_tasks_module(tasks) as module:
        yield module


def test_rate_limit_holds_across_two_workers_without_blocking_other_tasks(
    control, workers, workdir
):
    first = start_worker(workers, "-c", "2")
    second = start_worker(workers, "-c", "2")
    log, free = workdir / "limited.jsonl", workdir / "free.jsonl"

    limited = [control.rate_limited.delay(str(log), n) for n in range(20)]
    quick = control.unlimited.delay(str(free))

    quick_ran_at = quick.get(timeout=RESULT_TIMEOUT)
    assert sorted(r.get(timeout=RESULT_TIMEOUT) for r in limited) == list(range(20))
    runs = read_jsonl(log)
    times = sorted(r["at"] for r in runs)
    assert len(times) == 20
    # "5/s" with a bucket of one token: at most 5 + 1 runs in any one-second window...
    busiest = most_in_window(times, 1.0)
    assert busiest <= 6, f"{busiest} runs within one second: {times}"
    # ... so 20 runs take at least (20 - 1) / 5 = 3.8 s, however many workers share them.
    assert times[-1] - times[0] >= 3.5
    assert {r["host"] for r in runs} == {first.hostname, second.hostname}
    # The unlimited task, sent after all of them, did not wait behind them.
    assert quick_ran_at < times[-1] - 1.0
    assert scheduled(control.app) == 0


def test_concurrency_limit_holds_across_two_workers(control, workers, workdir):
    first = start_worker(workers, "-c", "2", "--prefetch-multiplier", "1")
    second = start_worker(workers, "-c", "2", "--prefetch-multiplier", "1")
    log = workdir / "runs.jsonl"

    results = [control.limited_pair.delay(str(log), 0.4) for _ in range(10)]

    for result in results:
        result.get(timeout=RESULT_TIMEOUT)
    runs = read_jsonl(log)
    assert len(runs) == 10
    intervals = [(r["start"], r["end"]) for r in runs]
    # Four children could run four at once; the limit lets two.
    assert max_overlap(intervals) == 2, sorted(intervals)
    # Both workers took part, so the limit held between them, not only inside one.
    assert {r["host"] for r in runs} == {first.hostname, second.hostname}


def test_concurrency_limit_keyed_by_argument_holds_per_tenant(control, workers, workdir):
    start_worker(workers, "-c", "2", "--prefetch-multiplier", "1")
    start_worker(workers, "-c", "2", "--prefetch-multiplier", "1")
    log = workdir / "runs.jsonl"

    results = [
        control.per_tenant.delay(str(log), tenant, 0.4)
        for _ in range(3)
        for tenant in ("acme", "globex")
    ]

    for result in results:
        result.get(timeout=RESULT_TIMEOUT)
    runs = read_jsonl(log)
    assert len(runs) == 6
    by_tenant = {
        tenant: [(r["start"], r["end"]) for r in runs if r["tenant"] == tenant]
        for tenant in ("acme", "globex")
    }
    assert max_overlap(by_tenant["acme"]) == 1, sorted(by_tenant["acme"])
    assert max_overlap(by_tenant["globex"]) == 1, sorted(by_tenant["globex"])
    # Each tenant has its own slot: the two tenants ran side by side.
    assert any(overlapped(a, g) for a in by_tenant["acme"] for g in by_tenant["globex"])


def test_rate_limit_raised_at_run_time_speeds_up_waiting_tasks(control, workers, workdir):
    start_worker(workers, "-c", "2")
    start_worker(workers, "-c", "2")
    log = workdir / "limited.jsonl"
    name = control.rate_limited.name

    control.app.control.rate_limit(name, "1/m")
    waiting = [control.rate_limited.delay(str(log), n) for n in range(3)]
    wait_until(lambda: len(read_jsonl(log)) >= 1, what="the first run")
    wait_until(
        lambda: control.app.broker.stats()["default"].delayed == 2,
        what="the other two to wait in the broker",
    )
    assert len(read_jsonl(log)) == 1  # one token; the next one in a minute

    control.app.control.rate_limit(name, "20/s")

    # At 20/s the two left need 0.1 s; under the old rate they would wait a minute. Postponed
    # messages ask again within 2 s, so the new rate reaches them.
    assert sorted(r.get(timeout=5) for r in waiting) == [0, 1, 2]


def test_rate_limit_set_at_run_time_applies_to_every_worker(control, workers, workdir):
    start_worker(workers, "-c", "2")
    start_worker(workers, "-c", "2")
    log = workdir / "limited.jsonl"
    name = control.rate_limited.name

    # The task's own limit is 5/s; the override, set before any worker sees a message of it,
    # holds for both workers together.
    control.app.control.rate_limit(name, "2/s")
    results = [control.rate_limited.delay(str(log), n) for n in range(6)]

    assert sorted(r.get(timeout=RESULT_TIMEOUT) for r in results) == list(range(6))
    runs = read_jsonl(log)
    times = sorted(r["at"] for r in runs)
    assert most_in_window(times, 1.0) <= 3, times
    assert times[-1] - times[0] >= 2.0  # (6 - 1) / 2 = 2.5 s
