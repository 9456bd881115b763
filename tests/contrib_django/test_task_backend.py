"""Django's tasks framework on Conveyor: ``@task`` functions (django.tasks, or the
django_tasks backport before Django 6) enqueued here and run by a Conveyor worker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from contrib_django.testapp.tasks import more
from conveyor.contrib.django import get_app
from conveyor.contrib.django.task_backend import ConveyorTaskBackend, conveyor_priority

from .conftest import Worker, wait_until

try:
    from django.tasks import TaskResultStatus, default_task_backend, task_backends
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued
except ImportError:  # Django < 6
    from django_tasks import TaskResultStatus, default_task_backend, task_backends
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued


def finished(result: Any) -> Any:
    def check() -> bool:
        result.refresh()
        return bool(result.is_finished)

    wait_until(check, what=f"django task {result.id}")
    return result


def test_the_backend_says_what_it_supports() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, ConveyorTaskBackend)
    assert backend.supports_defer and backend.supports_get_result
    assert backend.supports_async_task and backend.supports_priority
    assert "contrib_django.testapp.tasks.more.add" in get_app().tasks


def test_a_task_runs_on_a_worker_and_its_result_can_be_read_anywhere(worker: Worker) -> None:
    enqueued: list[Any] = []

    def note(sender: Any, task_result: Any, **kwargs: Any) -> None:
        enqueued.append(task_result)

    task_enqueued.connect(note)
    try:
        result = more.add.enqueue(2, 3)
    finally:
        task_enqueued.disconnect(note)

    assert result.status == TaskResultStatus.READY and enqueued == [result]
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert (result.args, result.kwargs) == ([2, 3], {})
    assert result.enqueued_at and result.started_at and result.finished_at
    assert result.attempts == 1 and result.worker_ids

    again = more.add.get_result(result.id)  # from the id alone
    assert again.return_value == 5 and again.task.func == more.add.func


def test_a_failure_is_reported_with_its_exception(worker: Worker) -> None:
    result = finished(more.explode.enqueue())

    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is ValueError
    assert "kaboom" in error.traceback
    with pytest.raises(ValueError):
        result.return_value  # noqa: B018


def test_context_async_functions_priority_and_queue(worker: Worker) -> None:
    context = finished(more.attempt.enqueue("first"))
    assert context.return_value == {"label": "first", "attempt": 1, "id": context.id}

    doubled = finished(more.double.enqueue(21))
    assert doubled.return_value == 42
    assert conveyor_priority(more.double.priority) == 5
    assert [conveyor_priority(p) for p in (-100, 0, 1, 100)] == [0, 0, 1, 9]


def test_run_after_defers_the_run(worker: Worker) -> None:
    start = timezone.now()
    result = more.add.using(run_after=start + timedelta(seconds=1)).enqueue(1, 1)

    finished(result)
    assert result.started_at is not None and result.started_at >= start + timedelta(seconds=1)


def test_an_unknown_result_id_does_not_exist() -> None:
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-such-id")
