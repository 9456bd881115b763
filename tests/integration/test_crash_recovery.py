"""At-least-once delivery when processes die: a killed worker's task runs again elsewhere,
a killed child is replaced and its task redelivered, and children are recycled."""

from __future__ import annotations

import os
import signal

from conveyor import states

from .support import DEFAULT_TIMEOUT, pid_alive, read_jsonl, wait_until


def events(path, kind: str) -> list[dict]:
    return [e for e in read_jsonl(path) if e["event"] == kind]


def test_task_of_a_sigkilled_worker_runs_again_on_the_next_worker(tasks, workers, workdir):
    log, gate = workdir / "hold.jsonl", workdir / "gate"
    first = workers.start()
    result = tasks.hold.delay(str(log), str(gate))
    (started,) = wait_until(lambda: events(log, "start"), what="the task to start")
    assert started["redelivered"] is False
    assert started["hostname"] == first.hostname

    wait_until(lambda: result.state == states.STARTED, what="STARTED (written 2 ms in)")

    first.kill_group()  # supervisor and children at once, as the OOM killer would

    assert result.state == states.STARTED
    gate.touch()
    second = workers.start()
    info = result.get(timeout=DEFAULT_TIMEOUT)

    assert info["redelivered"] is True
    assert info["delivery_count"] == 2
    assert info["hostname"] == second.hostname
    assert result.state == states.SUCCESS
    starts = events(log, "start")
    assert [s["hostname"] for s in starts] == [first.hostname, second.hostname]
    wait_until(lambda: tasks.app.broker.stats() == {}, what="the message to be acked")
    assert len(events(log, "done")) == 1  # exactly one run completed


def test_killed_child_is_replaced_and_its_task_redelivered(tasks, workers, workdir):
    log, gate = workdir / "hold.jsonl", workdir / "gate"
    worker = workers.start()
    result = tasks.hold.delay(str(log), str(gate))
    (started,) = wait_until(lambda: events(log, "start"), what="the task to start")
    child = started["pid"]
    assert child in worker.children()

    os.kill(child, signal.SIGKILL)
    wait_until(lambda: not pid_alive(child), what="the child to die")
    gate.touch()

    info = result.get(timeout=DEFAULT_TIMEOUT)
    assert info["redelivered"] is True
    assert info["pid"] != child
    assert info["pid"] in worker.children()
    assert worker.running()
    assert f"child pid {child} died while running {result.id}" in worker.log()
    # The worker keeps serving new work with its replacement child.
    assert tasks.add.delay(20, 1).get(timeout=DEFAULT_TIMEOUT) == 21
    worker.wait_children_settled()
    assert len(events(log, "done")) == 1


def test_children_die_with_a_sigkilled_supervisor(tasks, workers):
    worker = workers.start("-c", "2")
    children = wait_until(lambda: len(worker.children()) == 2 and worker.children())

    worker.signal(signal.SIGKILL)
    worker.wait()

    wait_until(
        lambda: not any(pid_alive(pid) for pid in children),
        what=f"children {children} to exit after their supervisor died",
    )


def test_max_tasks_per_child_recycles_children(tasks, workers):
    worker = workers.start("--max-tasks-per-child", "2")

    results = [tasks.whoami.delay() for _ in range(6)]
    pids = [r.get(timeout=DEFAULT_TIMEOUT) for r in results]

    assert len(set(pids)) >= 3
    assert worker.pid not in pids
    assert "exited with" not in worker.log()  # recycling is not reported as a crash
    assert worker.running()
    # The last recycle spawned a fresh child; let it start before the fixture stops the worker.
    assert tasks.ping.delay().get(timeout=DEFAULT_TIMEOUT) == "pong"
    worker.wait_children_settled()
