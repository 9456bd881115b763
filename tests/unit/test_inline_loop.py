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
from conveyor.worker.aio import EagerLoop
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


def test_an_eager_task_runs_its_first_step_as_it_is_made() -> None:
    loop = EagerLoop()
    seen: list[tuple[str, str, bool]] = []

    async def body() -> None:
        task = asyncio.current_task()
        assert task is not None
        seen.append(("first", task.get_name(), asyncio.get_running_loop() is loop))
        await asyncio.sleep(0)
        seen.append(("second", task.get_name(), asyncio.get_running_loop() is loop))

    try:
        task = loop.create_eager_task(body(), "t.body[1]")
        assert seen == [("first", "t.body[1]", True)]
        assert not task.done() and not loop.is_running()
        assert asyncio._get_running_loop() is None  # the thread's own again
        loop.run_until_complete(task)
        assert seen[1] == ("second", "t.body[1]", True)
    finally:
        loop.close()


def test_an_eager_task_that_does_not_wait_is_done_when_made() -> None:
    loop = EagerLoop()

    async def quick() -> None:
        async with asyncio.timeout(1):  # needs the current task
            return None

    try:
        task = loop.create_eager_task(quick(), "t.quick[1]")
        assert task.done() and task.exception() is None
    finally:
        loop.close()


def test_an_eager_task_made_inside_a_running_loop_starts_on_its_next_pass() -> None:
    loop = EagerLoop()
    seen: list[str] = []

    async def inner() -> None:
        seen.append("inner")

    async def outer() -> None:
        task = loop.create_eager_task(inner(), "t.inner[1]")
        seen.append("made")
        await task

    try:
        loop.run_until_complete(outer())
        assert seen == ["made", "inner"]
    finally:
        loop.close()
