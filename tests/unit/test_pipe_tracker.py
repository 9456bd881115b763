"""What a prefork child tells its supervisor about the tasks it starts, and when."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator

import pytest

from conveyor import Conveyor
from conveyor.testing import memory_app
from conveyor.worker.child import Pipe, PipeTracker, describe_starts
from conveyor.worker.executor import Executor


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    os.set_blocking(read, False)
    yield read, write
    os.close(read)
    os.close(write)


def _notices(fd: int) -> list[list[str]]:
    """The lines written so far, each split in its fields."""
    try:
        data = os.read(fd, 1 << 16)
    except BlockingIOError:
        return []
    return [line.split("\t") for line in data.decode().splitlines()]


@pytest.fixture
def app() -> Conveyor:
    return memory_app("pipe-tracker")


def test_a_def_task_is_described_before_it_runs_async_starts_share_a_later_write(
    app: Conveyor, pipe: tuple[int, int]
) -> None:
    read, write = pipe
    seen_while_running: list[list[str]] = []

    @app.task(name="t.look")
    def look() -> None:
        seen_while_running.extend(_notices(read))

    @app.task(name="t.nap")
    async def nap(i: int) -> int:
        await asyncio.sleep(0)
        return i

    tracker = PipeTracker(write)
    describe_starts(app, [tracker])
    executor = Executor(app, "pipe@test", tracker)
    look.delay()
    [delivery] = app.broker.reserve(["default"], 1, 30.0)
    executor.handle(delivery)
    # the supervisor knows what runs while it runs (hard time limit, terminate, inspect)
    assert [n[:1] + n[5:6] for n in seen_while_running if n[0] == "S"] == [["S", "t.look"]]

    results = [nap.delay(i) for i in range(3)]
    deliveries = app.broker.reserve(["default"], 3, 30.0)
    for delivery in deliveries:
        executor.handle(delivery)
    executor.start_async()
    assert [n for n in _notices(read) if n[0] == "S"] == []  # not one write each
    tracker.flush()
    starts = [n for n in _notices(read) if n[0] == "S"]
    assert [(n[2], n[5]) for n in starts] == [(r.id, "t.nap") for r in results]
    executor.finish_async()
    assert [r.get(timeout=5) for r in results] == [0, 1, 2]


def test_start_notices_go_out_while_the_consumer_waits_for_a_free_slot(
    pipe: tuple[int, int],
) -> None:
    read, write = pipe
    app = memory_app("pipe-tracker-full", worker_async_concurrency=1)
    gate = threading.Event()

    @app.task(name="t.hold")
    async def hold() -> str:
        await asyncio.to_thread(gate.wait, 5)
        return "held"

    tracker = PipeTracker(write)
    describe_starts(app, [tracker])
    executor = Executor(app, "pipe@test", tracker)
    first, second = hold.delay(), hold.delay()
    deliveries = app.broker.reserve(["default"], 2, 30.0)
    executor.handle(deliveries[0])
    waiting = threading.Thread(target=executor.handle, args=(deliveries[1],))
    waiting.start()  # blocks: the one slot is taken until the first task ends
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 5
        while first.id not in seen and time.monotonic() < deadline:
            seen += [n[2] for n in _notices(read) if n[0] == "S"]
            time.sleep(0.01)
        assert first.id in seen  # the supervisor knows what runs while the consumer waits
    finally:
        gate.set()
        waiting.join(5)
    executor.finish_async()
    assert [first.get(timeout=5), second.get(timeout=5)] == ["held", "held"]


def test_a_thread_starting_a_task_tells_what_the_other_threads_finished(
    app: Conveyor, pipe: tuple[int, int]
) -> None:
    """The threads pool's consumers share one pipe: a start notice, which goes out at once,
    carries the "finished" notices another thread still held, so a task that kills the
    process next is not blamed on a task that had ended."""
    read, write = pipe

    @app.task(name="t.quick")
    def quick() -> None:
        return None

    shared = Pipe(write)
    first = Executor(app, "one@test", PipeTracker(shared))
    second = Executor(app, "other@test", PipeTracker(shared))
    ended, starting = quick.delay(), quick.delay()
    done, begun = app.broker.reserve(["default"], 2, 30.0)
    first.handle(done)
    assert [(n[0], n[1]) for n in _notices(read)] == [("S", done.id)]  # "finished" waits
    second.handle(begun)
    sent = [(n[0], n[1]) for n in _notices(read)]
    assert sent[:2] == [("D", done.id), ("S", begun.id)]
    assert [ended.get(timeout=5), starting.get(timeout=5)] == [None, None]
