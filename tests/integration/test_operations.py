"""The worker registry, inspect and control, with real workers on SQLite and Redis.

Workers run apps/ops_tasks.py (broker lease 2 s: a heartbeat every 0.67 s, lost after
2 s of silence, gone from the registry 2 s later).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conveyor.exceptions import TimeLimitExceeded
from conveyor.registry import WorkerEntry, read_workers

from .support import Workers, children_of, project_on, run_cli, wait_until, workers_for

APP = "ops_tasks:app"


@pytest.fixture
def ops(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with project_on(url, "ops_tasks", monkeypatch) as module:
        yield module


@pytest.fixture
def fleet(
    request: pytest.FixtureRequest, tmp_path: Path, url: str, ops: ModuleType
) -> Iterator[Workers]:
    with workers_for(request, tmp_path, url) as workers:
        yield workers


def registry(ops: ModuleType) -> dict[str, WorkerEntry]:
    app = ops.app
    return {entry.name: entry for entry in read_workers(app.coordinator, app.clock())}


def test_a_worker_is_registered_while_it_runs_and_leaves_when_it_stops(
    fleet: Workers, ops: ModuleType
) -> None:
    worker = fleet.start("-c", "2", "-Q", "default,extra", app=APP)
    entry = wait_until(lambda: registry(ops).get(worker.hostname), what="the registry record")
    record = entry.record
    assert not entry.lost
    assert record["pid"] == worker.pid
    assert record["pool"] == "prefork" and record["concurrency"] == 2
    assert record["queues"] == ["default", "extra"]
    assert sorted(record["children"]) == sorted(worker.children())
    assert "ops_tasks.hold" in record["registered"]
    assert record["version"]

    assert ops.pid.delay().get(timeout=10) in record["children"]
    done = wait_until(
        lambda: registry(ops)[worker.hostname].record["total"].get("ops_tasks.pid"),
        what="the finished task counted",
    )
    assert done == 1

    assert worker.stop() == 0
    assert worker.hostname not in registry(ops)  # gone at once, not when it expires


def test_a_killed_worker_reads_as_lost_then_leaves_the_registry(
    fleet: Workers, ops: ModuleType
) -> None:
    worker = fleet.start(app=APP)
    wait_until(lambda: worker.hostname in registry(ops), what="the registry record")
    worker.kill_group()
    lost = wait_until(lambda: registry(ops).get(worker.hostname, None) or None, what="the record")
    wait_until(lambda: registry(ops)[worker.hostname].lost, what="the worker to read as lost")
    assert lost.record["pid"] == worker.pid
    assert ops.app.control.inspect().ping() is None  # lost workers do not answer
    wait_until(lambda: worker.hostname not in registry(ops), what="the record to expire")


def test_inspect_shows_a_running_task_on_the_worker_that_runs_it(
    fleet: Workers, ops: ModuleType, tmp_path: Path
) -> None:
    first, second = fleet.start(app=APP), fleet.start(app=APP)
    gate = tmp_path / "gate"
    result = ops.hold.delay(str(gate), label="the-label")
    inspect = ops.app.control.inspect()

    def running() -> dict[str, Any] | None:
        """Both workers registered (the idle one's first record may come a moment later)
        and one of them running the task."""
        active = inspect.active() or {}
        listed = {first.hostname, second.hostname} <= set(active)
        return active if listed and any(active[w.hostname] for w in (first, second)) else None

    active = wait_until(running, what="both workers, one running the task, in inspect().active()")
    assert set(active) == {first.hostname, second.hostname}
    busy = first if active[first.hostname] else second
    idle = second if busy is first else first
    assert active[idle.hostname] == []
    [task] = active[busy.hostname]
    assert task["id"] == result.id
    assert task["name"] == "ops_tasks.hold"
    assert "the-label" in task["kwargs"] and str(gate) in task["args"]
    assert task["worker_pid"] in busy.children()
    assert task["hostname"] == busy.hostname
    assert task["delivery_info"]["routing_key"] == "default"

    assert inspect.query_task(result.id) == {
        busy.hostname: {result.id: ["active", task]},
        idle.hostname: {},
    }
    only = ops.app.control.inspect(destination=[idle.hostname])
    assert only.active() == {idle.hostname: []}
    stats = inspect.stats()
    assert stats is not None
    assert stats[busy.hostname]["pool"]["processes"] == busy.children()

    gate.touch()
    assert result.get(timeout=10) == task["worker_pid"]
    wait_until(lambda: (inspect.active() or {}).get(busy.hostname) == [], what="no active task")


def test_control_commands_change_a_running_worker(
    fleet: Workers, ops: ModuleType, tmp_path: Path
) -> None:
    worker = fleet.start(app=APP)
    control = ops.app.control
    name = worker.hostname
    wait_until(lambda: name in registry(ops), what="the registry record")

    assert control.ping() == [{name: {"ok": "pong"}}]
    assert control.add_consumer("extra", reply=True) == [{name: {"ok": "add consumer extra"}}]
    assert ops.pid.apply_async(queue="extra").get(timeout=15) in worker.children()
    queues = ops.app.control.inspect().active_queues()
    assert queues is not None
    assert [q["name"] for q in queues[name]] == ["default", "extra"]
    reply = control.cancel_consumer("extra", reply=True)
    assert reply == [{name: {"ok": "no longer consuming from extra"}}]
    assert registry(ops)[name].record["queues"] == ["default"]
    assert control.cancel_consumer("default", reply=True) == [
        {name: {"error": "'default' is the only queue left: stop the worker instead"}}
    ]

    assert control.pool_grow(2, reply=True) == [{name: {"ok": "pool will grow by 2"}}]
    wait_until(lambda: len(children_of(worker.pid)) == 3, what="three children")
    assert control.pool_shrink(1, reply=True) == [{name: {"ok": "pool will shrink by 1"}}]
    wait_until(lambda: len(children_of(worker.pid)) == 2, what="two children")
    wait_until(lambda: registry(ops)[name].record["concurrency"] == 2, what="the new size")

    assert control.broadcast("shout", {"word": "hi"}, reply=True) == [
        {name: {"ok": "HI", "hostname": name, "queues": ["default"]}}
    ]
    assert control.broadcast("nonesuch", reply=True) == [
        {name: {"error": "unknown command 'nonesuch'"}}
    ]

    assert control.shutdown(reply=True) == [{name: {"ok": "shutting down"}}]
    assert worker.wait() == 0
    assert "warm shutdown" in worker.log()
    assert name not in registry(ops)


def test_the_cli_prints_status_inspect_and_control_as_tables_and_json(
    fleet: Workers, ops: ModuleType, tmp_path: Path, url: str
) -> None:
    if not url.startswith("sqlite"):
        pytest.skip("the output does not depend on the broker")
    worker = fleet.start(app=APP)
    gate = tmp_path / "gate"
    result = ops.hold.delay(str(gate), label="cli")
    wait_until(
        lambda: (ops.app.control.inspect().active() or {}).get(worker.hostname),
        what="the task running",
    )

    def cli(*args: str) -> Any:
        run = run_cli(url, tmp_path, *args, "-A", APP)
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    status = cli("status").splitlines()
    assert status[0].split()[:4] == ["WORKER", "STATUS", "POOL", "ACTIVE"]
    assert status[1].split()[:4] == [worker.hostname, "online", "prefork", "x1"]
    as_json = json.loads(cli("status", "--json"))
    assert as_json[worker.hostname]["status"] == "online"

    active = cli("inspect", "active").splitlines()
    assert active[0].split()[:3] == ["WORKER", "ID", "NAME"]
    assert active[1].split()[:3] == [worker.hostname, result.id, "ops_tasks.hold"]
    header = active[0]
    assert active[1][header.index("NAME") :].startswith("ops_tasks.hold")  # aligned
    pool = cli("control", "pool-grow", "1").splitlines()
    assert pool[1].split() == [worker.hostname, "ok", "pool", "will", "grow", "by", "1"]
    assert json.loads(cli("control", "add-consumer", "more", "--json")) == {
        worker.hostname: {"ok": "add consumer more"}
    }
    gate.touch()
    result.get(timeout=10)

    ops.pid.delay().get(timeout=10)
    with pytest.raises(ValueError, match="on purpose"):
        ops.fail.delay().get(timeout=10)
    wait_until(
        lambda: registry(ops)[worker.hostname].record.get("failed"), what="the failure counted"
    )
    stats = ops.app.control.inspect().stats()
    assert stats is not None
    counts = stats[worker.hostname]
    assert (counts["processed"], counts["failed"]) == (3, 1)
    assert counts["total"] == {"ops_tasks.hold": 1, "ops_tasks.pid": 1, "ops_tasks.fail": 1}
    for command in ("status", "inspect stats"):
        header, row = cli(*command.split()).splitlines()
        counts = [row[header.index(column) :].split()[0] for column in ("PROCESSED", "FAILED")]
        assert counts == ["3", "1"], command

    later = ops.pid.apply_async(countdown=600, priority=2)
    header, row = cli("inspect", "scheduled").splitlines()
    assert header.split()[:4] == ["WORKER", "ETA", "ID", "NAME"]
    shown_worker, eta, shown_id = row.split()[:3]
    assert (shown_worker, shown_id) == (worker.hostname, later.id)
    assert datetime.fromisoformat(eta).timestamp() == pytest.approx(time.time() + 600, abs=60)
    assert row[header.index("NAME") :].split()[:3] == ["ops_tasks.pid", "default", "2"]
    [scheduled] = json.loads(cli("inspect", "scheduled", "--json"))[worker.hostname]
    assert (scheduled["request"]["id"], scheduled["priority"]) == (later.id, 2)

    failed = run_cli(url, tmp_path, "inspect", "active", "-d", "nobody", "-A", APP)
    assert failed.returncode == 1 and "no workers online among nobody" in failed.stderr


def test_time_limit_reaches_the_children_of_a_running_worker(
    fleet: Workers, ops: ModuleType, tmp_path: Path, url: str
) -> None:
    if not url.startswith("sqlite"):
        pytest.skip("replacing children does not depend on the broker")
    worker = fleet.start(app=APP)
    wait_until(lambda: worker.hostname in registry(ops), what="the registry record")
    before = worker.children()
    reply = ops.app.control.time_limit("ops_tasks.hold", hard=1, reply=True)
    assert reply == [{worker.hostname: {"ok": "time limits set successfully"}}]
    assert ops.app.control.time_limit("nonesuch", hard=1, reply=True) == [
        {worker.hostname: {"error": "unknown task 'nonesuch'"}}
    ]
    wait_until(lambda: worker.children() and worker.children() != before, what="a new child")
    result = ops.hold.delay(str(tmp_path / "never"))  # would wait 30 s for its gate
    with pytest.raises(TimeLimitExceeded, match="hard time limit"):
        result.get(timeout=15)
