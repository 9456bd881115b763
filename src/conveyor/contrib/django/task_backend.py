"""A backend for Django's tasks framework: ``@task`` functions run on Conveyor workers.

::

    TASKS = {"default": {"BACKEND": "conveyor.contrib.django.task_backend.ConveyorTaskBackend"}}

Works with ``django.tasks`` (Django 6) and the ``django_tasks`` backport. Each Django task
is a Conveyor task named after its module path (``shop.reports.tasks.build``), registered
in every process that imports its module (``tasks.py`` modules are imported at start-up),
so ``conveyor worker`` lists it and runs it like any other. ``enqueue`` sends it (to the
queue named by ``queue_name``, after ``run_after``, at a priority mapped onto 0-9) and
keeps a small record (arguments, enqueue time, attempts) beside Conveyor's own result, so
``get_result`` can answer from any process.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django.utils.module_loading import import_string

from ... import states
from ...app import Conveyor
from ...ids import new_id
from ...records import TaskRecord
from ...serialization import decode_value, encode_value
from ...task import Task
from .conf import get_app

if TYPE_CHECKING:
    from django_tasks import TaskContext, TaskResult, TaskResultStatus
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task as DjangoTask
    from django_tasks.base import TaskError
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
else:
    try:
        from django.tasks import TaskContext, TaskResult, TaskResultStatus
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import Task as DjangoTask
        from django.tasks.base import TaskError
        from django.tasks.exceptions import TaskResultDoesNotExist
        from django.tasks.signals import task_enqueued, task_finished, task_started
    except ImportError:  # before Django 6: the backport
        from django_tasks import TaskContext, TaskResult, TaskResultStatus
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task as DjangoTask
        from django_tasks.base import TaskError
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started

__all__ = ["ConveyorTaskBackend"]

META_PREFIX = "conveyor-django-task-"
_STATUS = {
    states.SUCCESS: TaskResultStatus.SUCCESSFUL,
    states.FAILURE: TaskResultStatus.FAILED,
    states.REVOKED: TaskResultStatus.FAILED,
    states.REJECTED: TaskResultStatus.FAILED,
    states.IGNORED: TaskResultStatus.FAILED,
    states.PENDING: TaskResultStatus.READY,
    states.RECEIVED: TaskResultStatus.READY,
    states.RETRY: TaskResultStatus.READY,
}


def conveyor_priority(priority: int) -> int:
    """Django's -100..100 (0 by default) onto Conveyor's 0..9 (0 by default): 0 and below
    run at the default, 1..100 at 1..9."""
    return 0 if priority <= 0 else min(9, math.ceil(priority * 9 / 100))


class DjangoTaskRunner(Task[..., Any]):
    """The Conveyor task behind one Django task: imports it by path and calls it."""

    abstract = True  # instances are registered by ConveyorTaskBackend, one per Django task
    typing = False  # arguments arrive as the JSON the Django task was enqueued with

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def run(self, *args: Any, **kwargs: Any) -> Any:
        target = import_string(self.name or "")
        if not isinstance(target, DjangoTask):
            raise TypeError(f"{self.name} is not a Django task (decorate it with @task)")
        backend = target.get_backend()
        result = self._started(target, list(args), kwargs)
        task_started.send(type(backend), task_result=result)
        try:
            if target.takes_context:
                value = target.call(TaskContext(task_result=result), *args, **kwargs)
            else:
                value = target.call(*args, **kwargs)
            value = decode_value(encode_value(value))
        except Exception as exc:
            error = TaskError(exception_class_path=_path(type(exc)), traceback=_traceback(exc))
            result.errors.append(error)
            _finish(result, TaskResultStatus.FAILED)
            task_finished.send(type(backend), task_result=result)
            raise
        _finish(result, TaskResultStatus.SUCCESSFUL)
        object.__setattr__(result, "_return_value", value)
        task_finished.send(type(backend), task_result=result)
        return value

    def _started(
        self, target: DjangoTask[Any, Any], args: list[Any], kwargs: Any
    ) -> TaskResult[Any]:
        """Note this attempt in the task's record (start time, worker) and describe it."""
        request = self.request
        task_id = request.id or ""
        store = self.app.backend
        raw = store.get(META_PREFIX + task_id)
        meta: dict[str, Any] = decode_value(raw) if raw else {}
        now = timezone.now()
        meta.setdefault("started_at", now.timestamp())
        meta["last_attempted_at"] = now.timestamp()
        meta["worker_ids"] = [*meta.get("worker_ids", []), request.hostname or "worker"]
        store.set(META_PREFIX + task_id, encode_value(meta), self.app.conf.result_expires)
        return TaskResult(
            task=target,
            id=task_id,
            status=TaskResultStatus.RUNNING,
            enqueued_at=_time(meta.get("enqueued_at")),
            started_at=_time(meta["started_at"]),
            finished_at=None,
            last_attempted_at=now,
            args=args,
            kwargs=dict(kwargs),
            backend=target.backend,
            errors=[],
            worker_ids=list(meta["worker_ids"]),
        )


class ConveyorTaskBackend(BaseTaskBackend):
    """Django tasks on Conveyor: deferred runs, priorities, async functions and results."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    @property
    def app(self) -> Conveyor:
        return get_app()

    def runner(self, task: DjangoTask[Any, Any]) -> DjangoTaskRunner:
        """The Conveyor task for ``task``, registered on the project's app."""
        app = self.app
        name = task.module_path
        found = app.tasks.own.get(name)
        if isinstance(found, DjangoTaskRunner):
            return found
        runner = DjangoTaskRunner(name)
        app.register_task(runner)
        return runner

    def validate_task(self, task: DjangoTask[Any, Any]) -> None:
        super().validate_task(task)
        self.runner(task)  # every process that defines the task can now run it

    def enqueue(self, task: DjangoTask[Any, Any], args: Any, kwargs: Any) -> TaskResult[Any]:
        self.validate_task(task)
        app = self.app
        now = timezone.now()
        result: TaskResult[Any] = TaskResult(
            task=task,
            id=new_id(),
            status=TaskResultStatus.READY,
            enqueued_at=now,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        meta = {
            "task": task.module_path,
            "args": result.args,
            "kwargs": result.kwargs,
            "enqueued_at": now.timestamp(),
        }
        app.backend.set(META_PREFIX + result.id, encode_value(meta), app.conf.result_expires)
        run_after = task.run_after
        if run_after is not None and timezone.is_naive(run_after):
            run_after = timezone.make_aware(run_after)
        self.runner(task).apply_async(
            result.args,
            result.kwargs,
            task_id=result.id,
            queue=task.queue_name,
            priority=conveyor_priority(task.priority),
            eta=run_after,
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        app = self.app
        raw = app.backend.get(META_PREFIX + result_id)
        if raw is None:
            raise TaskResultDoesNotExist(result_id)
        meta: dict[str, Any] = decode_value(raw)
        record = app.results.read(result_id)
        status = _status(record)
        result: TaskResult[Any] = TaskResult(
            task=import_string(meta["task"]),
            id=result_id,
            status=status,
            enqueued_at=_time(meta.get("enqueued_at")),
            started_at=_time(meta.get("started_at")),
            finished_at=_time(record.date_done) if record and record.date_done else None,
            last_attempted_at=_time(meta.get("last_attempted_at")),
            args=meta.get("args", []),
            kwargs=meta.get("kwargs", {}),
            backend=self.alias,
            errors=_errors(record) if status == TaskResultStatus.FAILED else [],
            worker_ids=list(meta.get("worker_ids", [])),
        )
        if status == TaskResultStatus.SUCCESSFUL and record is not None:
            object.__setattr__(result, "_return_value", record.result)
        return result


def _status(record: TaskRecord | None) -> TaskResultStatus:
    if record is None:
        return TaskResultStatus.READY
    return _STATUS.get(record.status, TaskResultStatus.RUNNING)  # STARTED, PROGRESS, ...


def _errors(record: TaskRecord | None) -> list[TaskError]:
    if record is None:
        return []
    error = record.exception
    path = f"{error.module}.{error.type}" if error else "conveyor.exceptions.ConveyorError"
    return [TaskError(exception_class_path=path, traceback=record.traceback or str(record.result))]


def _finish(result: TaskResult[Any], status: TaskResultStatus) -> None:
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


def _path(kind: type[BaseException]) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _traceback(exc: BaseException) -> str:
    from ...records import format_traceback

    return format_traceback(exc)
