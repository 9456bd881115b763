"""Pieces shared by the task-control integration tests (test_task_control.py, test_limits.py,
test_revocation.py, test_time_limits.py).

The tasks live in apps/control_tasks.py, registered on the sample app. Workers started with
``start_worker`` import that module through the ``include`` setting, so they still run
``-A sample_tasks:app`` exactly as the shared ``workers`` fixture starts them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from .support import WorkerProcess, Workers, extra_tasks, start_worker_with

MODULE = "control_tasks"
INCLUDE = {"CONVEYOR_INCLUDE": MODULE}


def control_tasks_module(sample_tasks: ModuleType) -> contextlib.AbstractContextManager[ModuleType]:
    """control_tasks imported afresh, so its tasks are bound to this test's sample app."""
    return extra_tasks(MODULE, sample_tasks)


def start_worker(
    workers: Workers, *args: str, env: Mapping[str, str] | None = None
) -> WorkerProcess:
    """A ``conveyor worker`` that also loads the control tasks; waits until it is ready."""
    return start_worker_with(workers, MODULE, f"{MODULE}.mark_ran", *args, env=env)


def scheduled(app: Any) -> int:
    """Messages waiting in the broker (ready or delayed)."""
    return sum(s.ready + s.delayed for s in app.broker.stats().values())


def most_in_window(times: Sequence[float], width: float) -> int:
    """The largest number of ``times`` inside any half-open window [t, t + width)."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        count = sum(1 for t in ordered[i:] if t < start + width)
        best = max(best, count)
    return best


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """How many (start, end) intervals were open at once, at most (touching ends don't count)."""
    events = []
    for start, end in intervals:
        events.append((start, 1))
        events.append((end, -1))
    # At equal times an end sorts before a start: back-to-back runs do not overlap.
    events.sort()
    current = best = 0
    for _, change in events:
        current += change
        best = max(best, current)
    return best


def overlapped(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]
