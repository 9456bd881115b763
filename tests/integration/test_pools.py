"""The in-process pools: --pool threads and --pool solo run tasks and stop cleanly."""

from __future__ import annotations

import signal

import pytest

from .support import DEFAULT_TIMEOUT, read_jsonl, wait_until


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_pool_runs_tasks_in_the_worker_process(tasks, workers, pool):
    worker = workers.start("-P", pool, "-c", "2")

    assert tasks.add.delay(2, 3).get(timeout=DEFAULT_TIMEOUT) == 5
    info = tasks.where.delay().get(timeout=DEFAULT_TIMEOUT)

    assert info["hostname"] == worker.hostname
    # One child process under the supervisor runs every thread's tasks.
    assert worker.children() == [info["pid"]]
    assert tasks.where.delay().get(timeout=DEFAULT_TIMEOUT)["pid"] == info["pid"]
    assert f"pool:        {pool} x {1 if pool == 'solo' else 2}" in worker.log()


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_pool_warm_shutdown_finishes_the_running_task(tasks, workers, workdir, pool):
    log, gate = workdir / "hold.jsonl", workdir / "gate"
    worker = workers.start("-P", pool)
    held = tasks.hold.delay(str(log), str(gate))
    wait_until(lambda: read_jsonl(log), what="the held task to start")

    worker.signal(signal.SIGTERM)
    worker.wait_for_log("warm shutdown")
    gate.touch()

    assert worker.wait() == 0
    assert held.get(timeout=DEFAULT_TIMEOUT)["pid"] not in (worker.pid, None)
