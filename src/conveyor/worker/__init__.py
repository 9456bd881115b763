"""The worker: pools of consumers that run tasks from the broker.

``Worker`` (in ``runner.py``) is loaded on first use, so ``import conveyor`` (which needs
only ``worker/eager.py``, for ``Task.apply``) does not load the pools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import POOLS, Worker

__all__ = ["POOLS", "Worker"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
