"""What a prefork child tells its supervisor about the tasks it starts, and when: on the
pipe, and (a ``def`` task) in its consumer's slot of memory shared with the supervisor
(slots.py), which the supervisor reads when it looks and after the child dies."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.brokers.base import Delivery
from conveyor.exceptions import Terminated
from conveyor.testing import memory_app
from conveyor.worker.child import Pipe, PipeTracker, describe_starts, interrupt
from conveyor.worker.executor import Executor
from conveyor.worker.leases import LeaseKeeper
from conveyor.worker.slots import SLOT_SIZE, SlotTable


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
    assert [n for n in _notices(read) if n[0] == "S"] == []  # not one write each
    executor.start_async()  # all three, before their coroutines run (a crash is charged)
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


def test_a_def_task_shows_in_its_slot_while_it_runs_and_no_start_line_is_written(
    app: Conveyor, pipe: tuple[int, int]
) -> None:
    read, write = pipe
    table = SlotTable(1)
    seen: list[object] = []

    @app.task(name="t.look", time_limit=30)
    def look(x: int, label: str = "") -> int:
        seen.extend(table.read())
        seen.append(_notices(read))
        return x

    tracker = PipeTracker(write, table.slot(0))
    describe_starts(app, [tracker])
    executor = Executor(app, "slots@test", tracker)
    result = look.delay(7, label="seven")
    [delivery] = app.broker.reserve(["default"], 1, 30.0)
    before = time.time()
    executor.handle(delivery)

    running, written = seen
    assert written == []  # nothing on the pipe while it ran
    assert (running.delivery_id, running.task_id, running.name) == (  # type: ignore[attr-defined]
        delivery.id,
        result.id,
        "t.look",
    )
    assert "7" in running.args and "seven" in running.kwargs  # type: ignore[attr-defined]
    assert running.deadline is not None and running.deadline >= before + 29  # type: ignore[attr-defined]
    assert table.read() == []  # ended: the slot is empty
    tracker.flush()
    assert ["D", delivery.id, "", "t.look"] in _notices(read)  # its name, for the tally
    assert result.get(timeout=5) == 7


def test_the_supervisor_reads_a_forked_childs_slot_after_the_child_is_killed() -> None:
    """What a crash charges: the task the child ran when it died, read after its death."""
    table = SlotTable(2)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        table.slot(1).set("d-1", "task-1", None, 3, time.time(), ("t.poison", "()", "{}"), ("", ""))
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    [running] = table.read()
    assert (running.delivery_id, running.task_id, running.fence, running.name) == (
        "d-1",
        "task-1",
        3,
        "t.poison",
    )
    table.close()


def test_a_slot_left_in_the_middle_of_a_write_shows_nothing_running() -> None:
    table = SlotTable(1)
    table.slot(0).set("d-1", "task-1", None, 0, 0.0, ("t", "", ""), ("", ""))
    memory = table._memory  # a child killed between the two halves of its write
    memory[0:8] = (int.from_bytes(memory[0:8], "little") + 1).to_bytes(8, "little")
    assert table.read() == []


def test_long_previews_are_cut_and_the_ids_kept() -> None:
    table = SlotTable(1)
    huge = "x" * (SLOT_SIZE * 2)
    table.slot(0).set("d-1", "task-1", None, 0, 0.0, ("t", huge, huge), ("parent", "root"))
    [running] = table.read()
    assert (running.delivery_id, running.parent_id, running.root_id) == ("d-1", "parent", "root")
    assert running.args.startswith("xxx") and len(running.args) < SLOT_SIZE

    table.slot(0).set("d-2", "task-2", 9.5, 1, 0.0, ("t", "a\tb", "{}"), ("", ""))
    [running] = table.read()
    assert (running.task_id, running.deadline, running.args) == ("task-2", 9.5, "a b")


def test_the_keeper_marks_slot_tasks_started_then_ended(app: Conveyor) -> None:
    keeper = LeaseKeeper(app.broker, 30.0)
    table = SlotTable(1)
    slot = table.slot(0)
    first, second = (Delivery(f"d-{i}", "default", b"", 0, "tok", 1) for i in (1, 2))
    keeper.reserved(42, [first, second])

    slot.set("d-1", "task-1", 123.0, 1, 5.0, ("t.a", "()", "{}"), ("p", "r"))
    keeper.sync_slots(42, table.read())
    [running] = keeper.running()
    assert (running.task_id, running.deadline, running.name, running.parent_id) == (
        "task-1",
        123.0,
        "t.a",
        "p",
    )
    assert keeper.past_deadline(200.0) == [running]

    slot.clear()  # it ended; its "finished" notice has not come yet
    slot.set("d-2", "task-2", None, 1, 6.0, ("t.b", "()", "{}"), ("", ""))
    keeper.sync_slots(42, table.read())
    assert [h.task_id for h in keeper.running()] == ["task-2"]
    assert keeper.past_deadline(200.0) == []
    ran = {h.delivery.id: h.ran for h in keeper.drop_owner(42)}
    assert ran == {"d-1": True, "d-2": True}  # both count if the child died now


def test_a_slot_read_while_its_child_writes_is_never_torn() -> None:
    """The supervisor reads while the child writes: every read is one whole write (a task
    and its own deadline and fence) or an empty slot, never a mix of two."""
    table = SlotTable(1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: writes until it is killed
        slot = table.slot(0)
        n = 0
        while True:
            n += 1
            slot.set(f"d-{n}", f"t-{n}", float(n), n, float(n), ("t.x", "()", "{}"), ("", ""))
            slot.clear()
    try:
        reads = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for running in table.read():
                n = running.fence
                assert (running.delivery_id, running.task_id, running.deadline) == (
                    f"d-{n}",
                    f"t-{n}",
                    float(n),
                )
                reads += 1
        assert reads > 100  # the test saw the child's writes, not only empty slots
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        table.close()


def test_a_terminate_signal_stops_only_the_def_task_it_was_aimed_at() -> None:
    """The signal names no task: by the time it lands, the task it was meant for may have
    ended and the consumer begun another, which must go on."""
    table = SlotTable(1)
    consumer: Any = SimpleNamespace(executor=SimpleNamespace(running=True, running_id="d-2"))
    with pytest.raises(Terminated):
        interrupt(consumer, table)  # aimed at nothing in particular
    table.aim("d-1")  # the task that ended
    interrupt(consumer, table)
    table.aim("d-2")
    with pytest.raises(Terminated):
        interrupt(consumer, table)
    consumer.executor.running = False  # coroutines in flight beside it: it stops all the same
    with pytest.raises(Terminated):
        interrupt(consumer, table)
    consumer.executor.running, consumer.executor.running_id = False, ""  # between tasks
    interrupt(consumer, table)
    table.close()


def test_a_forked_child_reads_the_target_its_supervisor_aimed_after_the_fork() -> None:
    table = SlotTable(1)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        signal.signal(signal.SIGUSR1, lambda *_: os.write(write, table.aimed().encode()))
        os.write(write, b"ready")
        time.sleep(10)
        os._exit(0)
    os.close(write)
    assert os.read(read, 5) == b"ready"
    table.aim("d-" + "7" * 300)  # cut to what the target holds
    os.kill(pid, signal.SIGUSR1)
    aimed = os.read(read, 1024).decode()
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read)
    assert aimed.startswith("d-777") and len(aimed) < 300
    table.close()
