"""The worker's metrics hook (worker/metrics.py) and the Prometheus recorder, in-process:
what a task's outcome adds to which series, and that a worker without metrics is untouched.
Real workers serving the endpoint are in tests/integration/test_metrics.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.brokers.base import Delivery
from conveyor.testing import memory_app, run_until_empty
from conveyor.worker import metrics
from conveyor.worker.executor import Executor

prometheus = pytest.importorskip("conveyor.contrib.prometheus")


class NoTracker:
    def reserved(self, deliveries: list[Delivery]) -> None:
        pass

    def started(
        self, delivery: Delivery, task_id: str, hard_deadline: float | None, fence: int
    ) -> None:
        pass

    def finished(self, delivery: Delivery) -> None:
        pass

    def ended(self, delivery: Delivery) -> None:
        pass

    def released(self, deliveries: list[Delivery]) -> None:
        pass

    def flush(self) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Any]:
    made = prometheus.WorkerMetrics()
    metrics.install(made)
    try:
        yield made
    finally:
        metrics.uninstall()


def samples(*metrics_: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for metric in metrics_
        for family in metric.collect()
        for sample in family.samples
    }


def test_without_a_recorder_the_executor_runs_its_own_handle() -> None:
    app = memory_app()
    executor = Executor(app, "test@localhost", NoTracker())
    assert executor.handle.__func__ is Executor.handle  # type: ignore[attr-defined]


def test_each_outcome_lands_in_its_series(recorder: Any) -> None:
    app = memory_app()

    @app.task(name="t.ok")
    def ok() -> int:
        return 1

    @app.task(name="t.bad")
    def bad() -> None:
        raise ValueError("no")

    @app.task(name="t.again", bind=True)
    def again(self: Any) -> None:
        raise self.retry(countdown=3600)

    @app.task(name="t.scarce", rate_limit="1/h")
    def scarce() -> None:
        pass

    for _ in range(3):
        ok.delay()
    bad.delay()
    again.delay()
    scarce.delay()
    scarce.delay()
    assert run_until_empty(app) == 7
    before = samples(recorder.tasks)
    recorder.flush()
    found = samples(recorder.tasks, recorder.runtime, recorder.queue_wait, recorder.postponed)
    assert not any(name == "conveyor_tasks_total" for name, _ in before)  # counted, not written
    total = "conveyor_tasks_total"
    assert found[(total, frozenset({("task", "t.ok"), ("outcome", "success")}))] == 3
    assert found[(total, frozenset({("task", "t.bad"), ("outcome", "failure")}))] == 1
    assert found[(total, frozenset({("task", "t.again"), ("outcome", "retry")}))] == 1
    assert found[(total, frozenset({("task", "t.scarce"), ("outcome", "success")}))] == 1
    postponed = ("conveyor_task_postponements_total", frozenset({("task", "t.scarce")}))
    assert found[postponed] == 1
    runtime = frozenset({("task", "t.ok")})
    assert found[("conveyor_task_runtime_seconds_count", runtime)] == 3
    assert found[("conveyor_task_runtime_seconds_bucket", runtime | {("le", "+Inf")})] == 3
    waited = frozenset({("queue", "default")})
    assert found[("conveyor_task_queue_wait_seconds_count", waited)] == 6  # the runs only
    recorder.flush()  # nothing new since: nothing is added twice
    again_found = samples(recorder.tasks, recorder.runtime, recorder.queue_wait, recorder.postponed)
    assert {k: v for k, v in again_found.items() if not k[0].endswith("_created")} == {
        k: v for k, v in found.items() if not k[0].endswith("_created")
    }


def test_task_names_past_the_limit_count_as_other(
    recorder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prometheus, "MAX_TASK_LABELS", 2)
    app = memory_app()
    for name in ("a", "b", "c", "d"):
        app.send_task(name)  # unknown names: each fails and is dead-lettered
    run_until_empty(app)
    recorder.flush()
    found = samples(recorder.tasks)
    names = {dict(labels)["task"] for (name, labels) in found if name == "conveyor_tasks_total"}
    assert names == {"a", "b", "other"}
    other = frozenset({("task", "other"), ("outcome", "failure")})
    assert found[("conveyor_tasks_total", other)] == 2
