"""What the task API borrows from the runtime layer, which it may not import.

``Task.apply()`` runs a task here through the worker's hooks (``worker/eager.py``);
``Task.replace()`` and ``Task.add_to_chord()`` change a running workflow (``workflow.py``).
Those modules lend their functions here when imported, and ``import conveyor`` imports
them, as ``app.py`` fills in ``current.set_default_app``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .result import EagerResult
    from .task import AnyTask

__all__ = ["Runtime", "runtime"]


def _not_lent(*args: Any) -> NoReturn:
    raise RuntimeError(
        "Conveyor's runtime is not loaded: import conveyor (the package), which loads "
        "conveyor.worker.eager and conveyor.workflow"
    )


@dataclass(slots=True)
class Runtime:
    run_eagerly: Callable[
        [AnyTask, tuple[Any, ...], dict[str, Any], dict[str, Any]], EagerResult[Any]
    ] = _not_lent
    """``worker.eager.run_eagerly``: ``Task.apply()`` and ``task_always_eager``."""
    replace: Callable[[AnyTask, Any], Any] = _not_lent
    """``workflow.replace``: ``Task.replace()``."""
    add_to_chord: Callable[[AnyTask, Any, bool], Any] = _not_lent
    """``workflow.add_to_chord``: ``Task.add_to_chord()``."""


runtime = Runtime()
"""The functions lent so far."""
