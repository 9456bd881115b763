"""Sending tasks when the database transaction commits.

The message is built and encoded at call time (so a bad argument, such as a model
instance, fails where it is passed) and only its publishing waits for the commit; the
returned result already has its id. Nothing is sent when the transaction rolls back.
Outside an atomic block, tasks are sent at once, as ``transaction.on_commit`` runs
callbacks at once there.

Two ways in: ``task.delay_on_commit(...)`` / ``apply_async_on_commit(...)`` for one send,
and ``CONVEYOR_SEND_ON_COMMIT = True`` for every send inside an atomic block.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from ...ids import new_id

if TYPE_CHECKING:
    from ...app import Conveyor
    from ...result import AnyResult
    from ...task import AnyTask

__all__ = ["apply_async_on_commit", "make_gate"]

_local = threading.local()
_gated: weakref.WeakSet[Conveyor] = weakref.WeakSet()


def _forced() -> list[str]:
    stack: list[str] | None = getattr(_local, "aliases", None)
    if stack is None:
        stack = _local.aliases = []
    return stack


@contextmanager
def _on_commit_of(using: str) -> Iterator[None]:
    stack = _forced()
    stack.append(using)
    try:
        yield
    finally:
        stack.pop()


def make_gate(app: Conveyor) -> Callable[[Callable[[], None]], bool]:
    """The app's ``defer_publish``: hold a publish until the commit when asked to."""

    def defer(publish: Callable[[], None]) -> bool:
        stack = _forced()
        alias = stack[-1] if stack else (DEFAULT_DB_ALIAS if app.conf.send_on_commit else None)
        if alias is None or not connections[alias].in_atomic_block:
            return False
        transaction.on_commit(publish, using=alias)
        return True

    _gated.add(app)
    return defer


def apply_async_on_commit(
    task: AnyTask,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    using: str | None,
    options: Mapping[str, Any],
) -> AnyResult:
    """Send ``task`` when the transaction on ``using`` commits (at once outside one)."""
    alias = using or DEFAULT_DB_ALIAS
    app = task.app
    options = dict(options)
    task_id = options.setdefault("task_id", new_id())
    if app.defer_publish is None:
        app.defer_publish = make_gate(app)
    if app.conf.task_always_eager or app not in _gated:
        # Nothing to publish (eager), or another gate: the whole send waits for the commit.
        sent: list[AnyResult] = []
        transaction.on_commit(
            lambda: sent.append(task.apply_async(args, kwargs, **options)), using=alias
        )
        return sent[0] if sent else task.AsyncResult(task_id)
    with _on_commit_of(alias):
        return task.apply_async(args, kwargs, **options)
