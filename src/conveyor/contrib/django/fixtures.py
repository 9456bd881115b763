"""pytest fixtures: ``pytest_plugins = ["conveyor.contrib.django.fixtures"]`` in a conftest.

``conveyor_eager``: tasks run inline, exceptions propagate. ``conveyor_worker``: a real
worker thread on an in-memory broker (see ``testing.in_memory_worker``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ...app import Conveyor
from ...worker.local import LocalPool
from .testing import eager, in_memory_worker

__all__ = ["conveyor_eager", "conveyor_worker"]


@pytest.fixture
def conveyor_eager() -> Iterator[Conveyor]:
    with eager() as app:
        yield app


@pytest.fixture
def conveyor_worker() -> Iterator[LocalPool]:
    with in_memory_worker() as pool:
        yield pool
