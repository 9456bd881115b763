"""Pieces shared by the workflow integration tests (test_workflows.py,
test_chord_faults.py).

The tasks live in apps/workflow_tasks.py, registered on the sample app. Workers started
with ``start_worker`` import that module through the ``include`` setting, so they still
run ``-A sample_tasks:app`` exactly as the shared ``workers`` fixture starts them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import ModuleType

import pytest

from .support import WorkerProcess, Workers, extra_tasks, start_worker_with

MODULE = "workflow_tasks"
INCLUDE = {"CONVEYOR_INCLUDE": MODULE}


@pytest.fixture
def wf(tasks: ModuleType) -> Iterator[ModuleType]:
    """workflow_tasks imported afresh, so its tasks are bound to this test's sample app."""
    with extra_tasks(MODULE, tasks) as module:
        yield module


def start_worker(
    workers: Workers, *args: str, env: Mapping[str, str] | None = None
) -> WorkerProcess:
    """A ``conveyor worker`` that also loads the workflow tasks; waits until it is ready."""
    return start_worker_with(workers, MODULE, "wf.chord_member", *args, env=env)
