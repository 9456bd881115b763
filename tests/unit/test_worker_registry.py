"""The registry and control with the in-process pool (memory broker, a worker thread)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from conveyor import Conveyor
from conveyor.control import COMMANDS, control_command
from conveyor.keys import WORKERS_GROUP
from conveyor.registry import read_workers, timing
from conveyor.testing import memory_app, worker_thread
from conveyor.worker.local import LocalPool

T = TypeVar("T")
NAME = "testing@localhost"


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def app() -> Iterator[Conveyor]:
    # a heartbeat every 0.2 s
    app = memory_app("registry", broker_lease=0.6, dashboard_token="s3cret-token")
    yield app
    app.close()


@pytest.fixture
def pool(app: Conveyor) -> Iterator[LocalPool]:
    with worker_thread(app, concurrency=2) as pool:
        yield pool


def test_timing_follows_the_lease() -> None:
    assert timing(30.0) == (1.0, 33.0)
    assert timing(0.6) == pytest.approx((0.2, 1.2))


def test_a_running_task_shows_in_inspect_active(app: Conveyor, pool: LocalPool) -> None:
    gate = threading.Event()

    @app.task(name="unit.wait")
    def wait(label: str) -> str:
        gate.wait(10)
        return label

    result = wait.delay("the-label")
    inspect = app.control.inspect()
    active = wait_for(lambda: (inspect.active() or {}).get(NAME), "the task in active()")
    [task] = active
    assert (task["id"], task["name"], task["args"]) == (result.id, "unit.wait", '["the-label"]')
    assert task["kwargs"] == "{}"
    stats = inspect.stats()
    assert stats is not None and stats[NAME]["pool"]["implementation"] == "threads"
    gate.set()
    assert result.get(timeout=10) == "the-label"
    wait_for(lambda: (inspect.stats() or {})[NAME]["total"].get("unit.wait"), "the count")


def test_stats_count_the_tasks_done_and_failed(app: Conveyor, pool: LocalPool) -> None:
    @app.task(name="unit.ok")
    def ok() -> int:
        return 1

    @app.task(name="unit.fail")
    def fail() -> None:
        raise ValueError("on purpose")

    @app.task(name="unit.afail")
    async def afail() -> None:
        raise ValueError("on purpose, async")

    ok.delay().get(timeout=10)
    for task in (fail, afail):
        with pytest.raises(ValueError, match="on purpose"):
            task.delay().get(timeout=10)
    inspect = app.control.inspect()
    counts = wait_for(
        lambda: next((s for s in (inspect.stats() or {}).values() if s["processed"] == 3), None),
        "the three tasks counted",
    )
    assert (counts["processed"], counts["failed"]) == (3, 2)
    assert counts["total"] == {"unit.ok": 1, "unit.fail": 1, "unit.afail": 1}


def test_reserved_shows_the_held_messages_as_celery_requests() -> None:
    app = memory_app("reserved", broker_lease=0.6, worker_prefetch_multiplier=3)
    gate = threading.Event()

    @app.task(name="unit.block")
    def block() -> None:
        gate.wait(10)

    @app.task(name="unit.add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    first = block.apply_async(priority=9)  # taken first, it runs while the others wait
    held = [add.delay(1, y=2), add.apply_async((3,), priority=5)]
    try:
        with worker_thread(app):
            inspect = app.control.inspect()
            reply = wait_for(
                lambda: len((inspect.reserved() or {}).get(NAME, [])) == 2 and inspect.reserved(),
                "two reserved messages",
            )
            assert reply is not None
            [one, two] = sorted(reply[NAME], key=lambda r: r["args"])
            assert one == {
                "id": held[0].id,
                "name": "unit.add",
                "args": "[1]",
                "kwargs": '{"y":2}',
                "type": "unit.add",
                "hostname": NAME,
                "time_start": None,
                "acknowledged": False,
                "delivery_info": {
                    "exchange": "",
                    "routing_key": "default",
                    "priority": 0,
                    "redelivered": False,
                },
                "worker_pid": None,
                "delivery_id": held[0].id,
            }
            assert (two["id"], two["name"], two["args"]) == (held[1].id, "unit.add", "[3]")
            assert two["delivery_info"]["priority"] == 5
            assert inspect.query_task(held[1].id) == {NAME: {held[1].id: ["reserved", two]}}
            [running] = (inspect.active() or {})[NAME]
            assert running["id"] == first.id
            gate.set()
            assert [r.get(timeout=10) for r in held] == [3, 3]
    finally:
        gate.set()
        app.close()


def test_scheduled_lists_delayed_messages_once_under_a_worker_of_their_queue(
    app: Conveyor,
) -> None:
    now = app.clock()
    records = [  # as workers keep them in the registry; b@ is checked before c@ by name
        ("c@test", {"heartbeat": now, "interval": 1.0, "queues": ["default", "mail"]}),
        ("b@test", {"heartbeat": now, "interval": 1.0, "queues": ["mail"]}),
        ("a@test", {"heartbeat": now, "interval": 1.0, "queues": ["other"]}),
        ("z@test", {"heartbeat": now - 60, "interval": 1.0, "queues": ["unwatched"]}),  # lost
    ]
    app.coordinator.put_members(
        WORKERS_GROUP, [(name, json.dumps(record)) for name, record in records], 60.0
    )

    @app.task(name="unit.later")
    def later(x: int) -> int:
        return x

    mail_eta = datetime(2099, 1, 1, tzinfo=UTC)
    later_mail = later.apply_async((2,), eta=mail_eta, queue="mail", priority=3)
    soon = later.apply_async((1,), countdown=10)
    last = later.apply_async((3,), eta=datetime(2100, 1, 1, tzinfo=UTC), queue="default")
    later.apply_async((4,), countdown=5, queue="unwatched")
    later.delay(5)  # ready, not delayed

    inspect = app.control.inspect()
    reply = inspect.scheduled()
    assert reply is not None
    assert reply["a@test"] == [] and "z@test" not in reply
    [mail] = reply["b@test"]
    assert mail == {
        "eta": "2099-01-01T00:00:00+00:00",
        "priority": 3,
        "request": {
            "id": later_mail.id,
            "name": "unit.later",
            "args": "[2]",
            "kwargs": "{}",
            "type": "unit.later",
            "hostname": "b@test",
            "time_start": None,
            "acknowledged": False,
            "delivery_info": {
                "exchange": "",
                "routing_key": "mail",
                "priority": 3,
                "redelivered": False,
            },
            "worker_pid": None,
            "delivery_id": later_mail.id,
        },
    }
    assert [s["request"]["id"] for s in reply["c@test"]] == [soon.id, last.id]
    assert reply["c@test"][1]["eta"] == "2100-01-01T00:00:00+00:00"
    assert [s["request"]["id"] for s in inspect.scheduled(limit=2)["c@test"]] == [soon.id]
    only = app.control.inspect(destination=["c@test"]).scheduled()
    assert only is not None
    assert [s["request"]["id"] for s in only["c@test"]] == [soon.id, later_mail.id, last.id]
    assert app.control.inspect(destination=["nobody"]).scheduled() is None


def test_control_reaches_the_in_process_pool(app: Conveyor, pool: LocalPool) -> None:
    wait_for(lambda: read_workers(app.coordinator, app.clock()), "the registry record")
    control = app.control
    assert control.add_consumer("extra", reply=True) == [{NAME: {"ok": "add consumer extra"}}]
    assert all(consumer.queues == ["default", "extra"] for consumer in pool.consumers)
    assert control.pool_grow(reply=True) == [
        {NAME: {"error": "a pool of threads in this process has a fixed size"}}
    ]

    @control_command(name="unit_echo")
    def echo(state: Any, value: int = 0) -> dict[str, Any]:
        return {"ok": value + 1, "queues": list(state.pool.queues)}

    try:
        assert control.broadcast("unit_echo", {"value": 41}, reply=True) == [
            {NAME: {"ok": 42, "queues": ["default", "extra"]}}
        ]
    finally:
        del COMMANDS["unit_echo"]

    assert control.shutdown(reply=True) == [{NAME: {"ok": "shutting down"}}]
    wait_for(lambda: not read_workers(app.coordinator, app.clock()), "the record removed")


def test_revoked_ids_are_listed_by_every_worker(app: Conveyor, pool: LocalPool) -> None:
    wait_for(lambda: read_workers(app.coordinator, app.clock()), "the registry record")
    app.control.revoke(["a", "b"])
    assert app.control.inspect().revoked() == {NAME: ["a", "b"]}
    assert app.control.inspect(destination=["nobody"]).revoked() is None


def test_conf_shows_settings_without_secrets(app: Conveyor, pool: LocalPool) -> None:
    conf = wait_for(lambda: app.control.inspect().conf(), "the registry record")[NAME]
    assert conf["broker_lease"] == 0.6
    assert conf["dashboard_token"] == "***"
    assert "s3cret" not in str(conf)
