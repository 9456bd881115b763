"""Records the workflow code writes keep the lineage their tasks' messages would have: the
steps a failure stops, a chord's callback failed by a member, the outcome stored under a
replaced task's id; and a running step's STARTED and progress states keep its own.
``AsyncResult(id).root_id`` and ``.parent`` answer for them as for the tasks that ran, in
any process.

Workflows are drained in this thread with ``run_until_empty`` (the worker's executor), or
by a worker thread when the test reads a task while it runs.
"""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from conveyor import AsyncResult, Conveyor, Task, chain, chord, states
from conveyor.testing import memory_app, run_until_empty, worker_thread
from conveyor.worker.executor import Executor
from conveyor.worker.late import DELAY


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"lineage-records-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def t(app: Conveyor) -> SimpleNamespace:
    @app.task(name="lr.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="lr.fetch_rates")
    def fetch_rates() -> None:
        raise ConnectionError("rates service down")

    @app.task(name="lr.total")
    def total(values: list[int]) -> int:
        return sum(values)

    @app.task(name="lr.rebalance", bind=True)
    def rebalance(self: Task) -> Any:  # type: ignore[type-arg]
        raise self.replace(add.si(5, 5))

    return SimpleNamespace(add=add, fetch_rates=fetch_rates, total=total, rebalance=rebalance)


def read(app: Conveyor, task_id: str) -> AsyncResult:
    """A handle made from the id alone, as a view in another process makes it."""
    return AsyncResult(task_id, app=app)


def test_steps_a_failure_stops_keep_their_workflow(app: Conveyor, t: SimpleNamespace) -> None:
    sent = chain(t.add.si(1, 1), t.fetch_rates.si(), t.add.si(2, 2), t.add.si(3, 3)).delay()
    run_until_empty(app)
    stopped, failed, first = sent.parent, sent.parent.parent, sent.parent.parent.parent

    for step, parent in ((stopped, failed), (sent, stopped)):
        record = read(app, step.id)
        assert record.state == states.FAILURE
        assert record.root_id == first.id
        assert record.parent is not None and record.parent.id == parent.id
    assert read(app, failed.id).parent.id == first.id  # type: ignore[union-attr]


def test_a_chord_callback_failed_by_a_member_keeps_the_chords_root(
    app: Conveyor, t: SimpleNamespace
) -> None:
    sent = chord([t.add.si(1, 1), t.fetch_rates.si()], t.total.s()).delay()
    run_until_empty(app)
    ok, failed = sent.parent.results

    callback = read(app, sent.id)
    assert callback.state == states.FAILURE
    assert callback.root_id == read(app, failed.id).root_id == ok.id
    assert callback.parent is not None and callback.parent.id == failed.id


def test_a_replaced_task_keeps_its_place_in_the_workflow(app: Conveyor, t: SimpleNamespace) -> None:
    sent = chain(t.add.si(1, 1), t.rebalance.si()).delay()
    run_until_empty(app)

    replaced = read(app, sent.id)
    assert replaced.get(timeout=1) == 10
    assert replaced.root_id == sent.parent.id
    assert replaced.parent is not None and replaced.parent.id == sent.parent.id


def test_a_running_step_keeps_its_workflow_in_started_and_progress(
    app: Conveyor, t: SimpleNamespace
) -> None:
    go_on, states_seen = [threading.Event(), threading.Event()], []

    @app.task(name="lr.import_rows", bind=True)
    def import_rows(self: Task) -> str:  # type: ignore[type-arg]
        go_on[0].wait(5)
        self.update_state(state="PROGRESS", meta={"done": 50})
        go_on[1].wait(5)
        return "imported"

    with worker_thread(app):
        sent = chain(t.add.si(1, 1), import_rows.si()).delay()
        running = read(app, sent.id)
        for wanted, gate in zip((states.STARTED, "PROGRESS"), go_on, strict=True):
            deadline = time.monotonic() + 5
            while running.state != wanted and time.monotonic() < deadline:
                time.sleep(DELAY)
            states_seen.append((running.state, running.root_id, running.parent))
            gate.set()
        assert sent.get(timeout=5) == "imported"

    first = sent.parent.id
    assert [(state, root, parent and parent.id) for state, root, parent in states_seen] == [
        (states.STARTED, first, first),
        ("PROGRESS", first, first),
    ]


class _Quiet:
    """A tracker for an executor that has no supervisor to tell."""

    def reserved(self, deliveries: list[Any]) -> None: ...
    def started(
        self, delivery: Any, task_id: str, hard_deadline: float | None, fence: int
    ) -> None: ...
    def finished(self, delivery: Any, failed: bool = False) -> None: ...
    def ended(self, delivery: Any, failed: bool = False) -> None: ...
    def released(self, deliveries: list[Any]) -> None: ...
    def flush(self) -> None: ...


def test_a_step_received_and_then_revoked_keeps_its_workflow(
    app: Conveyor, t: SimpleNamespace
) -> None:
    sent = chain(t.add.si(1, 1), t.add.si(2, 2)).delay()
    first = sent.parent.id
    run_until_empty(app, max_tasks=1)  # the first step: it sends the second
    Executor(app, "w1@host", _Quiet()).received(app.broker.reserve(["default"], 10, 30.0))

    received = read(app, sent.id)
    assert (received.state, received.root_id, received.parent.id) == (states.RECEIVED, first, first)
    app.control.revoke(sent.id)
    revoked = read(app, sent.id)
    assert (revoked.state, revoked.root_id, revoked.parent.id) == (states.REVOKED, first, first)
    assert revoked.name == "lr.add"
