"""``@app.periodic_task``: a task, and a beat entry that sends it, in one decorator."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import ImproperlyConfigured
from ..task import AnyTask, Task
from .entries import Entry, declare
from .schedules import to_schedule

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["periodic_task"]


def periodic_task(
    app: Conveyor,
    schedule: Any,
    *,
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    catch_up: str = "latest",
    **task_options: Any,
) -> Callable[[Any], AnyTask]:
    """The decorator behind ``@app.periodic_task``: a task plus a beat entry that sends it.

    A plain function becomes a task (``task_options`` go to ``@app.task``); a task is used
    as it is. The entry is named ``name``, or after the task.
    """
    parsed = to_schedule(schedule)

    def decorate(target: Any) -> AnyTask:
        if isinstance(target, Task) and task_options:
            raise ImproperlyConfigured(
                f"task options {sorted(task_options)} cannot change the existing task "
                f"{target.name!r}: pass them to @app.task"
            )
        if isinstance(target, Task):
            task: AnyTask = target
        else:
            make: Callable[[Callable[..., Any]], AnyTask] = app.task(**task_options)
            task = make(target)
        task_name = task.name or type(task).default_name()
        entry = Entry(
            name=name or task_name,
            task=task_name,
            schedule=parsed,
            args=args,
            kwargs=kwargs or {},
            options=options or {},
            catch_up=catch_up,
            source="code",
        )
        declare(app, entry)
        return task

    return decorate
