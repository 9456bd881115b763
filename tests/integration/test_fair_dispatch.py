"""Fair dispatch at default settings: a process busy with a long task does not sit on
reserved messages that an idle process, of its worker or another, could start; priorities
still hold, and handing a message back does not count as a delivery.

Every test runs on SQLite and Redis (``url``), under the prefork and threads pools. The
tasks (apps/fair_tasks.py) log when each run starts and ends, so the assertions are about
who waited behind whom; the bounds are generous against the tasks' lengths.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .support import DEFAULT_TIMEOUT, WorkerProcess, Workers, project_on, wait_until

APP = "fair_tasks:app"
LONG = 1.0
"""Seconds of a long task: far above the bounds below, so a task that waited behind one
cannot pass them."""

pytestmark = pytest.mark.parametrize("kind", ["prefork", "threads"])


@pytest.fixture
def ft(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The fair tasks module, imported afresh on ``url``."""
    with project_on(url, "fair_tasks", monkeypatch) as module:
        yield module


@pytest.fixture
def fair(request: pytest.FixtureRequest, tmp_path: Path, url: str, ft: ModuleType) -> Iterator[Any]:
    """``fair.start(concurrency, *args)``: a worker of the fair tasks app in the test's pool;
    ``fair.log``: the tasks' log; ``fair.send(*(name, seconds, priority))``: one batch."""
    workers = Workers(tmp_path, url)
    request.node._conveyor_workers = workers
    kind = request.node.callspec.params["kind"]
    log = str(tmp_path / "runs.jsonl")

    class Fair:
        def __init__(self) -> None:
            self.log = log

        def start(self, concurrency: int, *args: str, ready: bool = True) -> WorkerProcess:
            argv = ("-c", str(concurrency), "-P", kind, *args)
            return workers.start(*argv, app=APP, ready=ready)

        def send(self, *specs: tuple[str, float, int]) -> tuple[float, dict[str, Any]]:
            sent_at = time.time()
            with ft.app.batch():
                results = {
                    name: ft.nap.apply_async((log, name, seconds), priority=priority)
                    for name, seconds, priority in specs
                }
            return sent_at, results

        def runs(self, event: str, count: int) -> dict[str, dict[str, Any]]:
            """By task name, once at least ``count`` tasks logged ``event``."""

            def logged() -> list[dict[str, Any]]:
                found = [run for run in ft.runs(log) if run["event"] == event]
                return found if len(found) >= count else []

            return {run["name"]: run for run in wait_until(logged, what=f"{count} {event}s")}

    try:
        yield Fair()
    finally:
        workers.stop_all()


def test_four_long_tasks_on_four_processes_all_start_at_once(fair, kind):
    fair.start(4)

    sent_at, _ = fair.send(*[(f"long{i}", LONG, 0) for i in range(4)])

    started = fair.runs("start", 4)
    assert max(run["at"] for run in started.values()) - sent_at < 1.0, started


def test_a_quick_task_does_not_wait_behind_a_long_one_while_a_process_is_idle(fair, kind):
    # Sent before the worker starts: the first consumer to reserve takes both in one batch.
    _, results = fair.send(("long", LONG, 5), ("quick", 0.001, 0))
    fair.start(2)

    started = fair.runs("start", 2)
    ended = fair.runs("end", 1)
    assert "quick" in ended, "the quick task waited for the long one to end"
    assert ended["quick"]["at"] - started["long"]["at"] < 0.2
    assert results["quick"].get(timeout=DEFAULT_TIMEOUT) == 1  # handing back is no delivery


def test_two_workers_share_long_tasks_none_waits_while_the_other_is_idle(fair, kind):
    fair.start(1)
    fair.start(1)

    sent_at, _ = fair.send(*[(f"long{i}", LONG, 0) for i in range(4)])

    started = sorted(fair.runs("start", 4).values(), key=lambda run: run["at"])
    ended = sorted(fair.runs("end", 4).values(), key=lambda run: run["at"])
    first, second = started[:2]
    # Two at once, one on each worker, as soon as they are sent ...
    assert second["at"] - sent_at < 1.0, started
    assert first["worker"] != second["worker"]
    # ... and each of the other two as soon as a worker is free again.
    for waited, freed in zip(started[2:], ended[:2], strict=True):
        assert waited["at"] - freed["at"] < 0.5, (started, ended)


def test_a_higher_priority_task_sent_while_all_are_busy_starts_next(fair, kind):
    fair.start(2)
    # Of different lengths, so one process is free first and takes the next message alone.
    fair.send(("long0", LONG / 2, 5), ("long1", LONG, 5), ("low0", 0.001, 0), ("low1", 0.001, 0))
    fair.runs("start", 2)

    fair.send(("high", 0.001, 9))

    started = fair.runs("start", 5)
    assert started["high"]["at"] < min(started["low0"]["at"], started["low1"]["at"]), started


def test_a_message_handed_back_many_times_never_counts_as_delivered(fair, kind, ft):
    """task_max_deliveries is 2: counted hand-backs would dead-letter the quick task."""
    _, results = fair.send(
        ("long0", LONG / 3, 5), ("long1", LONG / 3, 5), ("long2", LONG / 3, 5), ("q", 0.001, 0)
    )
    worker = fair.start(3, "-l", "DEBUG")

    assert results["q"].get(timeout=DEFAULT_TIMEOUT) == 1
    handed_back = [line for line in worker.log().splitlines() if "handed back" in line]
    assert any(results["q"].id in line for line in handed_back), worker.log()
    assert ft.app.broker.dead_letters() == []


def test_a_prefetch_multiplier_set_by_the_user_keeps_celerys_meaning(fair, kind):
    """``--prefetch-multiplier 2``: a consumer reserves two and keeps them until it runs them,
    even behind a long task while the other process is idle."""
    fair.send(("long", LONG / 3, 5), ("quick", 0.001, 0))
    fair.start(2, "--prefetch-multiplier", "2")

    ended = fair.runs("end", 2)
    assert ended["quick"]["at"] >= ended["long"]["at"]
    assert ended["quick"]["pid"] == ended["long"]["pid"]
