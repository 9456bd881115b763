"""Building a task from a decorated function, for ``@app.task`` and ``@shared_task``.

It takes the base class from its caller, so ``task.py`` can use it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .control import parse_rate
from .current import register_shared
from .exceptions import ImproperlyConfigured
from .pydantic_tasks import with_pydantic

if TYPE_CHECKING:
    from .app import Conveyor
    from .task import AnyTask

__all__ = ["make_task"]


def make_task(
    fun: Callable[..., Any],
    app: Conveyor | None,
    options: dict[str, Any],
    base: type[AnyTask],
) -> AnyTask:
    """A Task subclass of ``base`` (or of the ``base`` option) whose run() is ``fun``: its
    instance, registered as shared when it has no ``app``."""
    options = dict(options)
    options.pop("shared", None)
    base = options.pop("base", None) or base
    bind = bool(options.pop("bind", False))
    name = options.pop("name", None) or f"{fun.__module__}.{fun.__qualname__}"
    parse_rate(options.get("rate_limit"))
    if options.get("on_locked", "skip") not in ("skip", "retry"):
        raise ImproperlyConfigured(
            f"on_locked must be 'skip' or 'retry', not {options['on_locked']!r}"
        )
    for key in ("autoretry_for", "dont_autoretry_for"):
        if key in options:
            options[key] = tuple(options[key])
    run = with_pydantic(fun, app, name, options)  # pydantic=True: Celery 5.5's validation
    attrs: dict[str, Any] = {
        "name": name,
        "run": run if bind else staticmethod(run),
        "__doc__": fun.__doc__,
        "__module__": fun.__module__,
        "__qualname__": fun.__qualname__,
        "__wrapped__": fun,
        "abstract": False,
        **options,
    }
    cls = type(fun.__name__, (base,), attrs)
    task: AnyTask = cls()
    if app is None:
        register_shared(task)
    return task
