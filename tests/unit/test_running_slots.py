"""What a child's consumers run, shown in memory shared with the supervisor (slots.py): a
``def`` task's start costs no write on the pipe, and the supervisor still learns what runs,
across a fork, when it looks and after the child dies."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from conveyor import Conveyor
from conveyor.brokers.base import Delivery
from conveyor.testing import memory_app
from conveyor.worker.child import PipeTracker, describe_starts
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


@pytest.fixture
def app() -> Conveyor:
    return memory_app("running-slots")


def _notices(fd: int) -> list[list[str]]:
    try:
        data = os.read(fd, 1 << 16)
    except BlockingIOError:
        return []
    return [line.split("\t") for line in data.decode().splitlines()]


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
