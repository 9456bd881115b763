"""Pieces shared by the workflow integration tests (test_workflows.py,
test_chord_faults.py).

The tasks live in apps/workflow_tasks.py, registered on the sample app. Workers started
with ``start_worker`` import that module through the ``include`` setting, so they still
run ``-A sample_tasks:app`` exactly as the shared ``workers`` fixture starts them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from types import ModuleType

import pytest

from .support import WorkerProcess, Workers

MODULE = "workflow_tasks"
INCLUDE = {"CONVEYOR_INCLUDE": MODULE}


@pytest.fixture
def wf(tasks: ModuleType) -> Iterator[ModuleType]:
    """workflow_tasks imported afresh, so its tasks are bound to this test's sample app."""
    sys.modules.pop(MODULE, None)
    module = importlib.import_module(MODULE)
    try:
        if module.app is not tasks.app:
            raise AssertionError("workflow_tasks did not bind to this test's sample app")
        yield module
    finally:
        sys.modules.pop(MODULE, None)


def start_worker(
    workers: Workers, *args: str, env: Mapping[str, str] | None = None
) -> WorkerProcess:
    """A ``conveyor worker`` that also loads the workflow tasks; waits until it is ready."""
    worker = workers.start(*args, env={**INCLUDE, **(env or {})})
    banner = worker.log()
    if "wf.chord_member" not in banner:
        raise AssertionError(f"worker {worker.name} did not load {MODULE}:\n{banner}")
    return worker
