"""``revoke_by_stamped_headers(..., terminate=True)`` on a real prefork worker: running
tasks whose stamps match are terminated, as ``revoke(id, terminate=True)`` terminates one;
a running task stamped otherwise goes on."""

from __future__ import annotations

import pytest

from conveyor import TaskRevokedError, states

from .control_support import control_tasks_module, start_worker
from .support import read_jsonl, wait_until

REVOKE_TIMEOUT = 10.0
"""How soon a terminated task must show REVOKED: the supervisor polls every 0.5 s."""


@pytest.fixture
def control(tasks):
    with control_tasks_module(tasks) as module:
        yield module


def ticks(path) -> int:
    return sum(1 for e in read_jsonl(path) if e.get("event") == "tick")


def test_terminate_by_stamp_stops_the_running_tasks_that_carry_it(control, workers, workdir):
    worker = start_worker(workers, "-c", "2")
    doomed_log, kept_log = workdir / "doomed.jsonl", workdir / "kept.jsonl"
    doomed = control.long_loop.s(str(doomed_log), 30.0).stamp(batch="b-7").apply_async()
    kept = control.long_loop.s(str(kept_log), 10.0).stamp(batch="b-8").apply_async()
    wait_until(lambda: ticks(doomed_log) >= 2 and ticks(kept_log) >= 2, what="both to tick")
    assert doomed.state == states.STARTED

    def running_ids() -> set[str]:  # stamped tasks are described to the registry as others
        active = control.app.control.inspect().active() or {}
        return {t["id"] for tasks in active.values() for t in tasks if t.get("name")}

    wait_until(lambda: {doomed.id, kept.id} <= running_ids(), what="both in inspect().active()")

    control.app.control.revoke_by_stamped_headers({"batch": "b-7"}, terminate=True)

    wait_until(lambda: doomed.state == states.REVOKED, timeout=REVOKE_TIMEOUT, what="REVOKED")
    with pytest.raises(TaskRevokedError):
        doomed.get(timeout=1)
    assert read_jsonl(doomed_log)[-1]["event"] == "stopped"  # Terminated raised in the task
    assert kept.get(timeout=30) == "finished"  # stamped otherwise: left to finish
    assert worker.running()


def test_without_terminate_a_running_stamped_task_finishes(control, workers, workdir):
    start_worker(workers, "-c", "1")
    log = workdir / "loop.jsonl"
    result = control.long_loop.s(str(log), 1.5).stamp(batch="b-9").apply_async()
    wait_until(lambda: ticks(log) >= 2, what="the loop to tick")

    result.revoke_by_stamped_headers({"batch": "b-9"})

    assert result.get(timeout=15) == "finished"
