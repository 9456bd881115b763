"""What a worker writes, and when: STARTED only for tasks still running a moment after they
start, outcomes of quick tasks together, and never a late STARTED over a later state."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Collection, Sequence

from conveyor import Conveyor, states
from conveyor.backends.memory import MemoryBackend
from conveyor.brokers.memory import MemoryBroker
from conveyor.coordination.memory import MemoryCoordinator
from conveyor.records import LEVEL_PROGRESS, LEVEL_STARTED, ResultStore, at_level, fence
from conveyor.testing import _NoTracker, worker_thread
from conveyor.worker.consumer import Consumer
from conveyor.worker.late import DELAY, late_writer


class RecordingBackend(MemoryBackend):
    """A memory backend that also notes every write call (the keys it carried)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    def set_fenced_many(
        self,
        items: Sequence[tuple[str, bytes, int | None]],
        ttl: float,
        replies: Collection[str] = (),
    ) -> list[bool]:
        self.calls.append([key for key, _, _ in items])
        return super().set_fenced_many(items, ttl, replies)


def make_app() -> tuple[Conveyor, RecordingBackend]:
    backend = RecordingBackend()
    app = Conveyor(
        "late",
        broker=MemoryBroker(),
        backend=backend,
        coordinator=MemoryCoordinator(),
        set_as_current=False,
    )
    return app, backend


def statuses(app: Conveyor, backend: RecordingBackend, task_id: str) -> int:
    key = app.results.key(task_id)
    return sum(call.count(key) for call in backend.calls)


def test_a_quick_task_writes_its_outcome_once_and_no_started() -> None:
    app, backend = make_app()

    @app.task
    def quick() -> int:
        return 1

    with worker_thread(app):
        result = quick.delay()
        assert result.get(timeout=5) == 1
    assert statuses(app, backend, result.id) == 1


def test_a_running_task_shows_started_soon_after_it_starts() -> None:
    app, _ = make_app()
    gate = threading.Event()

    @app.task
    def slow() -> str:
        gate.wait(5)
        return "done"

    with worker_thread(app):
        result = slow.delay()
        deadline = time.monotonic() + 5
        while result.state != states.STARTED and time.monotonic() < deadline:
            time.sleep(DELAY)
        assert result.state == states.STARTED
        gate.set()
        assert result.get(timeout=5) == "done"
    assert result.state == states.SUCCESS


def test_a_quick_tasks_result_does_not_wait_for_the_long_task_after_it() -> None:
    app, _ = make_app()
    gate = threading.Event()

    @app.task
    def quick() -> int:
        return 7

    @app.task
    def slow() -> None:
        gate.wait(5)

    with app.batch():
        first = quick.delay()
        second = slow.delay()
    with worker_thread(app):
        try:
            assert first.get(timeout=2) == 7
            assert not second.ready()
        finally:
            gate.set()
        second.get(timeout=5)


def test_many_quick_outcomes_share_writes() -> None:
    app, backend = make_app()

    @app.task
    def quick(i: int) -> int:
        return i

    with app.batch():
        results = [quick.delay(i) for i in range(200)]
    with worker_thread(app):
        assert [r.get(timeout=10) for r in results] == list(range(200))
    writes = [call for call in backend.calls if call]
    assert {key for call in writes for key in call} == {app.results.key(r.id) for r in results}
    assert len(writes) < 100  # one write per task would be 200 (or 400 with STARTED)


def test_levels_order_states_within_one_attempt() -> None:
    backend = MemoryBackend()
    store = ResultStore(backend, expires=60)
    final = fence(0, 1)
    assert store.backend.set("k", b"SUCCESS", 60, final)
    assert not backend.set("k", b"late STARTED", 60, at_level(final, LEVEL_STARTED))
    assert not backend.set("k", b"late PROGRESS", 60, at_level(final, LEVEL_PROGRESS))
    assert backend.get("k") == b"SUCCESS"
    assert backend.set("k", b"redelivered STARTED", 60, fence(0, 2, LEVEL_STARTED))
    assert backend.set("k", b"retry STARTED", 60, fence(1, 1, LEVEL_STARTED))
    assert not backend.set("k", b"old try's outcome", 60, fence(0, 9))


def test_a_quick_async_task_writes_no_started_a_running_one_shows_it() -> None:
    app, backend = make_app()
    gate = threading.Event()

    @app.task
    async def quick() -> int:
        return 1

    @app.task
    async def slow() -> str:
        await asyncio.to_thread(gate.wait, 5)
        return "done"

    with worker_thread(app):
        results = [quick.delay() for _ in range(20)]
        assert [r.get(timeout=5) for r in results] == [1] * 20
        running = slow.delay()
        deadline = time.monotonic() + 5
        while running.state != states.STARTED and time.monotonic() < deadline:
            time.sleep(DELAY)
        assert running.state == states.STARTED
        gate.set()
        assert running.get(timeout=5) == "done"
    # each its outcome; a STARTED only if the machine held its loop back DELAY (rare)
    assert sum(statuses(app, backend, r.id) for r in results) < 30


class WakeCounter:
    """Registered with the process's late writer beside the outboxes: counts its wake-ups."""

    def __init__(self) -> None:
        self.wakes = 0

    def write_late(self) -> bool:
        self.wakes += 1
        return False


def test_quick_async_tasks_on_the_consumers_loop_leave_the_late_writer_asleep() -> None:
    """``--pool asyncio``: the consumer stores a quick coroutine's outcome itself before its
    next broker call, so the late writer's thread has nothing to do and is not woken for
    it (each wake-up takes the GIL from the consumer)."""
    app, _ = make_app()

    @app.task
    async def quick(i: int) -> int:
        return i

    counter = WakeCounter()
    writer = late_writer()
    stop = threading.Event()
    consumer = Consumer(
        app, app.router.worker_queues(None), "test@localhost", _NoTracker(), None,
        stop=stop, inline_async=True,
    )  # fmt: skip
    thread = threading.Thread(target=consumer.run, name="conveyor-test-consumer", daemon=True)
    thread.start()
    try:
        assert quick.delay(-1).get(timeout=5) == -1
        writer.register(counter)
        for i in range(40):  # one at a time, as requests come, each after a writer's delay
            assert quick.delay(i).get(timeout=5) == i
            time.sleep(2 * DELAY)
    finally:
        writer.unregister(counter)
        stop.set()
        thread.join(10)
    assert counter.wakes <= 3, f"the late writer woke {counter.wakes} times for 40 tasks"
