"""The current app, and the tasks every app sees.

Tasks, results, signatures and schedules find their app here when none was given, so they
need not import ``conveyor.app``, which imports them. The app module fills this in: it
tells ``current_app()`` how to make the default app, and each new app makes itself current.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .exceptions import DuplicateTaskName

if TYPE_CHECKING:
    from .app import Conveyor
    from .task import AnyTask

__all__ = [
    "CurrentApp",
    "current_app",
    "existing_app",
    "register",
    "register_shared",
    "set_current",
    "set_default_app",
    "shared_tasks",
]

shared_tasks: dict[str, AnyTask] = {}
"""``@shared_task`` and class-based tasks, by name: every app finds them after its own."""

_shared_lock = threading.Lock()
_current: Conveyor | None = None
_make_default: Callable[[], Conveyor] | None = None


def set_default_app(make: Callable[[], Conveyor]) -> None:
    """How ``current_app()`` makes an app when no app was made yet."""
    global _make_default
    _make_default = make


def set_current(app: Conveyor | None) -> None:
    global _current
    _current = app


def existing_app() -> Conveyor | None:
    """The current app, or None when no app was made yet (no default is made)."""
    return _current


def _current_or_default() -> Conveyor:
    global _current
    if _current is None:
        if _make_default is None:
            raise RuntimeError("no app yet: import conveyor (or conveyor.app) first")
        _current = _make_default()
    return _current


class CurrentApp:
    """``current_app``: the most recently created app (or one made current; a default app
    when there is none), looked up on each use.

    It is Celery's proxy, so ``current_app.conf.task_always_eager`` and
    ``current_app.send_task(...)`` work in a module imported before any app exists, and
    also a function: ``current_app()`` returns the app itself.
    """

    __slots__ = ()

    def __call__(self) -> Conveyor:
        return _current_or_default()

    def _get_current_object(self) -> Conveyor:
        """Celery's proxy method: the app itself."""
        return _current_or_default()

    def __getattr__(self, name: str) -> Any:
        return getattr(_current_or_default(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_current_or_default(), name, value)

    def __eq__(self, other: object) -> bool:
        return _current_or_default() == (other() if isinstance(other, CurrentApp) else other)

    def __hash__(self) -> int:
        return hash(_current_or_default())

    def __repr__(self) -> str:
        return repr(_current_or_default())


current_app = CurrentApp()


def _same_definition(a: AnyTask, b: AnyTask) -> bool:
    fa = getattr(type(a), "__wrapped__", None)
    fb = getattr(type(b), "__wrapped__", None)
    if fa is not None and fb is not None:
        return bool(
            fa.__module__ == fb.__module__
            and fa.__qualname__ == fb.__qualname__
            and fa.__code__.co_filename == fb.__code__.co_filename
        )
    return type(a).__module__ == type(b).__module__ and type(a).__qualname__ == type(b).__qualname__


def register(registry: dict[str, AnyTask], task: AnyTask) -> AnyTask:
    """Add ``task`` under its name; a different task by the same name is an error."""
    if not task.name:
        task.name = type(task).default_name()
    existing = registry.get(task.name)
    if existing is not None and existing is not task and not _same_definition(existing, task):
        raise DuplicateTaskName(
            f"two tasks are named {task.name!r}: {type(existing).__module__} and "
            f"{type(task).__module__}; give one of them name='...'"
        )
    registry[task.name] = task
    return task


def register_shared(task: AnyTask) -> AnyTask:
    """Register a task every app can see (``@shared_task`` and class-based tasks)."""
    with _shared_lock:
        return register(shared_tasks, task)
