"""``--pool asyncio``: the consumer runs its event loop on its own thread, only while it
waits (worker/aio.py, ``AsyncRunner(inline=True)``), so coroutines run there, between the
consumer's broker calls, and an ended one is stored by the consumer at once."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest

from conveyor import Conveyor
from conveyor.testing import memory_app
from conveyor.worker.child import PipeTracker
from conveyor.worker.executor import Executor


@pytest.fixture
def app() -> Conveyor:
    return memory_app("inline-loop")


@pytest.fixture
def executor(app: Conveyor) -> Iterator[Executor]:
    read, write = os.pipe()
    os.set_blocking(read, False)
    executor = Executor(app, "inline@test", PipeTracker(write), inline_loop=True)
    yield executor
    os.close(read)
    os.close(write)


def test_coroutines_run_on_the_consumers_thread_once_it_waits(
    app: Conveyor, executor: Executor
) -> None:
    ran: list[tuple[int, str]] = []

    @app.task(name="t.where")
    async def where(i: int) -> str:
        await asyncio.sleep(0)
        ran.append((i, threading.current_thread().name))
        return threading.current_thread().name

    results = [where.delay(i) for i in range(3)]
    for delivery in app.broker.reserve(["default"], 3, 30.0):
        executor.handle(delivery)
    assert ran == []  # handed over, not run: no thread of the loop's own
    runner = executor._runner
    assert runner is not None and runner.inline
    executor.finish_async()  # the consumer waits for them: the loop runs here
    here = threading.current_thread().name
    assert sorted(ran) == [(0, here), (1, here), (2, here)]
    assert [r.get(timeout=5) for r in results] == [here] * 3


def test_a_wait_ends_when_a_coroutine_ends_not_at_its_timeout(
    app: Conveyor, executor: Executor
) -> None:
    """The consumer's wait for messages runs the loop; a coroutine that ends cuts it short,
    so its outcome is stored then, not after the whole wait."""
    gate = threading.Event()

    @app.task(name="t.gated")
    async def gated() -> str:
        await asyncio.to_thread(gate.wait, 5)
        return "opened"

    result = gated.delay()
    [delivery] = app.broker.reserve(["default"], 1, 30.0)
    executor.handle(delivery)
    executor.between_batches()  # starts it; it waits on the gate
    assert executor.in_flight == 1
    threading.Timer(0.05, gate.set).start()
    runner = executor._runner
    assert runner is not None and runner.inline
    runner.wait_slot_freed(30.0, until=lambda: bool(executor.completed))
    assert gate.is_set() and executor.completed  # back long before the 30 s
    executor.collect()
    assert executor.in_flight == 0
    executor.outbox.flush_acks()
    assert result.get(timeout=5) == "opened"


def test_new_coroutines_start_between_batches_while_others_run(
    app: Conveyor, executor: Executor
) -> None:
    """Under a backlog the consumer does not wait for messages, yet the coroutines it
    hands over start at once (``run_ready``), not when the queue runs dry."""
    started: list[int] = []
    gate = asyncio.Event()

    @app.task(name="t.long")
    async def long(i: int) -> int:
        started.append(i)
        await gate.wait()
        return i

    first = long.delay(0)
    [delivery] = app.broker.reserve(["default"], 1, 30.0)
    executor.handle(delivery)
    executor.between_batches()  # waits QUICK_ASYNC for it; it does not end
    assert started == [0]
    later = [long.delay(i) for i in (1, 2)]
    for delivery in app.broker.reserve(["default"], 2, 30.0):
        executor.handle(delivery)
    executor.between_batches()  # not quick any more: one pass of the loop
    assert started == [0, 1, 2]
    runner = executor._runner
    assert runner is not None
    runner.loop.call_soon(gate.set)
    executor.finish_async()
    executor.outbox.flush_acks()
    assert [r.get(timeout=5) for r in [first, *later]] == [0, 1, 2]
