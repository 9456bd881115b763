"""Waiting on results: what ``get()`` accepts, and where it may block.

``get()`` takes Celery's arguments in Celery's order, so a positional call written for
Celery means the same here; each is checked, so a value that landed on the wrong
parameter is a ``TypeError`` naming that parameter instead of a silent wrong wait.

Inside a task, a blocking ``get()`` can deadlock the worker (the awaited task may be
queued behind the one waiting), so it raises unless the caller opts in: with
``disable_sync_subtasks=False`` or inside ``with allow_join_result():``, as in Celery.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .request import current_request

__all__ = ["allow_join_result", "check_get_arguments", "check_join"]

_allowed: ContextVar[bool] = ContextVar("conveyor_join_allowed", default=False)

_ORDINALS = ("1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th")


@contextmanager
def allow_join_result() -> Iterator[None]:
    """Let ``get()`` block inside a task for the duration of the block."""
    token = _allowed.set(True)
    try:
        yield
    finally:
        _allowed.reset(token)


def check_join(disable_sync_subtasks: bool, use_instead: str = "a chain or chord") -> None:
    """Raise when a blocking wait is about to happen inside a task without an opt-in."""
    if not disable_sync_subtasks or _allowed.get():
        return
    request = current_request()
    if request is not None and not request.is_eager:
        raise RuntimeError(
            "never call result.get() inside a task: it can deadlock the worker; use "
            f"{use_instead}, or wrap the call in `with allow_join_result():` "
            "(from conveyor.result)"
        )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_get_arguments(order: tuple[str, ...], **given: Any) -> None:
    """Check ``get()``'s arguments; ``order`` is its parameters in positional order."""
    for name, value in given.items():
        if name == "timeout":
            ok, wants = value is None or _number(value), "seconds (a number) or None"
        elif name == "interval":
            ok, wants = _number(value), "seconds (a number)"
        elif name == "callback":
            ok, wants = value is None or callable(value), "a callable or None"
        elif name in ("on_message", "on_interval"):
            ok = value is None
            wants = "None: get() does not stream progress here; poll result.state and .info"
        else:
            ok, wants = isinstance(value, bool) or value in (0, 1), "True or False"
        if not ok:
            position = _ORDINALS[order.index(name)]
            raise TypeError(
                f"get() got {value!r} for {name}, its {position} parameter in Celery's order "
                f"({', '.join(order[:3])}, ...): {name} takes {wants}"
            )
