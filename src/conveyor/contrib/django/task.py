"""``DjangoTask``: the Task class of a Django project, with the sends that wait for a commit.

As Celery's Django fixup does, the integration installs it beneath every task of the
project's app and every shared task (``install``), so ``task.delay_on_commit(...)`` works
on the tasks a project defines, whenever they were defined. Tasks of other apps, and task
classes written on ``conveyor.Task`` itself, do not have these methods, as in Celery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ...task import SharedTask, Task
from .transaction import apply_async_on_commit

if TYPE_CHECKING:
    from ...app import Conveyor
    from ...result import AsyncResult

__all__ = ["DjangoTask", "install"]

P = ParamSpec("P")
R = TypeVar("R", covariant=True)


class DjangoTask(Task[P, R]):
    """A task with ``delay_on_commit`` and ``apply_async_on_commit`` (Celery's names)."""

    abstract = True

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """``delay`` once the current transaction commits; nothing if it rolls back."""
        return self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        using: str | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """``apply_async`` once the transaction on database ``using`` commits. The message
        is built now, so bad arguments fail here; the result already has its id."""
        result: AsyncResult[R] = apply_async_on_commit(self, args, kwargs, using, options)
        return result


def install(app: Conveyor) -> None:
    """Put ``DjangoTask`` beneath the app's own Task class and the shared tasks' base, so
    the tasks made from them before now get its methods too (Conveyor makes tasks when
    they are defined, where Celery makes them lazily from ``app.Task``)."""
    for base in (app.Task, SharedTask):
        if not issubclass(base, DjangoTask):
            base.__bases__ = (DjangoTask,)
