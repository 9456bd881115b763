"""Signatures: a task call as plain data, to pass around, store, or send later."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Conveyor
    from .result import AsyncResult

__all__ = ["Signature", "signature"]


class Signature:
    """``add.s(2, 2)``: a task name with arguments and send options, serializable to a dict."""

    def __init__(
        self,
        task: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        immutable: bool = False,
        app: Conveyor | None = None,
    ) -> None:
        self.task = task
        self.args = tuple(args or ())
        self.kwargs = dict(kwargs or {})
        self.options = dict(options or {})
        self.immutable = bool(self.options.pop("immutable", immutable))
        self._app = app

    @property
    def name(self) -> str:
        return self.task

    @property
    def app(self) -> Conveyor:
        if self._app is not None:
            return self._app
        from .app import current_app

        return current_app()

    def set(self, **options: Any) -> Signature:
        """Update the send options in place; returns the signature for chaining."""
        self.options.update(options)
        return self

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A copy; unless immutable, ``args`` are prepended and ``kwargs`` merged."""
        sig = copy.deepcopy(self)
        sig._app = self._app
        if not self.immutable:
            sig.args = tuple(args or ()) + self.args
            sig.kwargs = {**self.kwargs, **(kwargs or {})}
        sig.options.update(options)
        return sig

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        sig = self.clone(args, kwargs, **options)
        app = self.app
        task = app.tasks.own.get(sig.task) or _shared_task(sig.task)
        if task is not None:
            return task.apply_async(sig.args, sig.kwargs, **sig.options)
        return app.send_task(sig.task, sig.args, sig.kwargs, **sig.options)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "options": self.options,
            "immutable": self.immutable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: Conveyor | None = None) -> Signature:
        return cls(
            data["task"],
            data.get("args"),
            data.get("kwargs"),
            data.get("options"),
            bool(data.get("immutable", False)),
            app,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signature):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}{'!' if self.immutable else ''}({', '.join(parts)})"


def _shared_task(name: str) -> Any:
    from .app import _shared

    return _shared.get(name)


def signature(
    task: str | Signature | Mapping[str, Any],
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> Signature:
    """``signature("tasks.add", args=(2, 2))``, or a copy of a signature or its dict form."""
    if isinstance(task, Signature):
        return task.clone()
    if isinstance(task, Mapping):
        return Signature.from_dict(task)
    immutable = bool(options.pop("immutable", False))
    return Signature(task, args, kwargs, options, immutable)
