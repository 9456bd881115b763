"""The tasks every app has: what ``xmap`` and ``xstarmap`` send, and the collector that
gathers a replaced group's results (``Task.replace``). Each app registers them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .canvas import ACCUMULATE, MAP, STARMAP, maybe_signature
from .current import current_app

__all__ = ["BUILTIN_TASKS"]


def _run_each(task: Any, items: Iterable[Any], call: Callable[[Any, Any], Any]) -> list[Any]:
    fun = maybe_signature(task)
    assert fun is not None, "xmap and xstarmap need a task"
    fun = fun.clone()
    fun._app = fun._app or current_app()
    return [call(fun.type, item) for item in items]


def xmap_task(task: Any, it: list[Any]) -> list[Any]:
    return _run_each(task, it, lambda fun, item: fun(item))


def xstarmap_task(task: Any, it: list[Any]) -> list[Any]:
    return _run_each(task, it, lambda fun, item: fun(*item))


def accumulate(*args: Any, index: int | None = None) -> Any:
    return args[index] if index is not None else list(args)


BUILTIN_TASKS: tuple[tuple[Callable[..., Any], str], ...] = (
    (xmap_task, MAP),
    (xstarmap_task, STARMAP),
    (accumulate, ACCUMULATE),
)
"""(function, task name) of each built-in task."""
