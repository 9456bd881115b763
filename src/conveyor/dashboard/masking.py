"""Hide secrets before they reach a page: arguments and results named by a task's
``dashboard_mask`` (and the dashboard's own ``mask`` list) are replaced, never sent."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

__all__ = ["MASK", "Masker"]

MASK = "••••••"


class Masker:
    """Masks by field name: dict keys anywhere in a value, and positional arguments by the
    name of the parameter they fill in the task's signature."""

    def __init__(self, always: Collection[str], per_task: Callable[[str | None], Collection[str]]):
        self.always = frozenset(always)
        self.per_task = per_task

    def fields(self, task: str | None) -> frozenset[str]:
        return self.always | frozenset(self.per_task(task))

    def value(self, task: str | None, value: Any) -> Any:
        fields = self.fields(task)
        return _mask(value, fields) if fields else value

    def arguments(
        self,
        task: str | None,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        function: Callable[..., Any] | None,
    ) -> tuple[list[Any], dict[str, Any]]:
        fields = self.fields(task)
        if not fields:
            return list(args), dict(kwargs)
        names = _parameter_names(function)
        shown = [
            MASK if i < len(names) and names[i] in fields else _mask(arg, fields)
            for i, arg in enumerate(args)
        ]
        return shown, _mask(dict(kwargs), fields)

    def text(self, task: str | None, text: str | None) -> str | None:
        """A repr made elsewhere cannot be masked piece by piece: hidden whole."""
        if text is None or not self.fields(task):
            return text
        return MASK


def _mask(value: Any, fields: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: MASK if k in fields else _mask(v, fields) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, fields) for v in value]
    return value


def _parameter_names(function: Callable[..., Any] | None) -> list[str]:
    if function is None:
        return []
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
    ]
