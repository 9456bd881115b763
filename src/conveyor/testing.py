"""Helpers for testing code that sends tasks: an in-memory app, draining, a worker thread.

``memory_app()`` gives an app whose broker and results live in memory, with a clock you
can move. ``run_until_empty(app)`` runs every ready task in this thread, through the same
executor a worker uses; ``worker_thread(app)`` runs a real threads-pool worker beside
the test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .app import Conveyor
from .backends.memory import MemoryBackend
from .brokers.base import Delivery
from .brokers.memory import MemoryBroker
from .coordination.memory import MemoryCoordinator
from .worker.executor import Executor
from .worker.local import LocalPool

__all__ = ["FakeClock", "memory_app", "run_until_empty", "worker_thread"]


class FakeClock:
    """A clock that moves only when told; pass it to memory_app(clock=...)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def memory_app(name: str = "test", clock: Any = None, **settings: Any) -> Conveyor:
    """An app on the in-memory broker and backend (one clock shared by all three)."""
    clock = clock or time.time
    return Conveyor(
        name,
        broker=MemoryBroker(clock=clock),
        backend=MemoryBackend(clock=clock),
        coordinator=MemoryCoordinator(clock=clock),
        clock=clock,
        **settings,
    )


class _NoTracker:
    def reserved(self, deliveries: list[Delivery]) -> None:
        pass

    def started(
        self, delivery: Delivery, task_id: str, hard_deadline: float | None, fence: int
    ) -> None:
        pass

    def finished(self, delivery: Delivery, failed: bool = False) -> None:
        pass

    def ended(self, delivery: Delivery, failed: bool = False) -> None:
        pass

    def released(self, deliveries: list[Delivery]) -> None:
        pass

    def flush(self) -> None:
        pass


def run_until_empty(
    app: Conveyor, queues: Sequence[str] | None = None, max_tasks: int | None = None
) -> int:
    """Run ready tasks here until none is ready (delayed ones wait for the clock); the count run."""
    queues = app.router.worker_queues(queues)
    executor = Executor(app, "testing@localhost", _NoTracker())
    done = 0
    try:
        while max_tasks is None or done < max_tasks:
            batch = app.broker.reserve(queues, 1, float(app.conf.broker_lease))
            if not batch:
                break
            executor.handle(batch[0])
            executor.finish_async()  # an async def task runs to its end on the loop
            executor.outbox.flush_acks()
            done += 1
    finally:
        executor.outbox.close()
    return done


@contextmanager
def worker_thread(
    app: Conveyor, queues: Sequence[str] | None = None, concurrency: int = 1
) -> Iterator[LocalPool]:
    """A threads-pool worker running beside the test; stopped (warm) when the block ends."""
    pool = LocalPool(
        app,
        app.router.worker_queues(queues),
        concurrency,
        "testing@localhost",
        app.conf.worker_prefetch_multiplier,
        install_signals=False,
    )
    thread = threading.Thread(target=pool.run, name="conveyor-test-worker", daemon=True)
    thread.start()
    try:
        yield pool
    finally:
        pool.stop.set()
        thread.join(10)
