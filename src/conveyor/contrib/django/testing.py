"""Test helpers for Django projects.

- ``CONVEYOR_TASK_ALWAYS_EAGER = True`` and ``CONVEYOR_TASK_EAGER_PROPAGATES = True`` in
  test settings run tasks inline, exceptions raised where the task was sent; ``eager()``
  does the same for one block.
- ``in_memory_worker()`` runs a real worker thread against an in-memory broker, so a test
  sees tasks go through serialization, retries and callbacks as in production. The worker
  thread has its own database connection: it sees only committed data, so use it from a
  ``TransactionTestCase`` (pytest-django: ``django_db(transaction=True)``).

``conveyor.contrib.django.fixtures`` wraps both as pytest fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ...app import Conveyor
from ...backends.memory import MemoryBackend
from ...brokers.memory import MemoryBroker
from ...coordination.memory import MemoryCoordinator
from ...testing import run_until_empty, worker_thread
from ...worker.local import LocalPool
from .conf import get_app

__all__ = ["eager", "in_memory_worker", "run_until_empty"]


@contextmanager
def eager(propagate: bool = True, app: Conveyor | None = None) -> Iterator[Conveyor]:
    """Run every task sent in the block inline (and raise its exceptions, by default)."""
    app = app or get_app()
    # An override, not an assignment: Django's settings keep reaching the app afterwards.
    with app.conf.override(task_always_eager=True, task_eager_propagates=propagate):
        yield app


@contextmanager
def in_memory_worker(
    queues: Sequence[str] | None = None,
    concurrency: int = 1,
    keep_results: bool = False,
    app: Conveyor | None = None,
) -> Iterator[LocalPool]:
    """Point the project's app at an in-memory broker (and result backend, unless
    ``keep_results``) and run a threads-pool worker on it for the block."""
    app = app or get_app()
    saved = (app._broker, app._backend, app._coordinator, app._results)
    # The app's parts are swapped in place: tasks bound to it send to the memory broker too.
    app._broker = MemoryBroker(clock=app.clock)
    app._coordinator = MemoryCoordinator(clock=app.clock)
    if not keep_results:
        app._backend, app._results = MemoryBackend(clock=app.clock), None
    try:
        with (
            app.conf.override(task_always_eager=False),
            worker_thread(app, queues, concurrency) as pool,
        ):
            yield pool
    finally:
        app._broker, app._backend, app._coordinator, app._results = saved
