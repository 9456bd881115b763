"""Events from real workers on SQLite and Redis: every kind in order, failures with their
exception, the worker's own events, the CLI that shows them, and events turned off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conveyor.events import TaskFailed, TaskRetried, TaskSucceeded

from .support import Workers, project_afresh, run_cli, wait_until

APP = "event_tasks:app"


@pytest.fixture
def ev(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    with project_afresh("event_tasks") as module:
        yield module


@pytest.fixture
def pool(
    request: pytest.FixtureRequest, tmp_path: Path, url: str, ev: ModuleType
) -> Iterator[Workers]:
    workers = Workers(tmp_path, url)
    request.node._conveyor_workers = workers
    try:
        yield workers
    finally:
        workers.stop_all()


def kinds(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def test_a_task_that_retries_then_succeeds_shows_every_kind_in_order(ev, pool, url, tmp_path):
    worker = pool.start("-c", "2", app=APP)
    result = ev.flaky.delay(21)
    assert result.get(timeout=20) == 42
    ev.boom.delay("x").get(timeout=20, propagate=False)
    wait_until(lambda: len(ev.app.events.of_task(result.id)) >= 5, timeout=10)
    timeline = ev.app.events.of_task(result.id)
    assert kinds(timeline) == [
        "task-received",
        "task-started",
        "task-retried",
        "task-received",
        "task-started",
        "task-succeeded",
    ]
    retried, succeeded = timeline[2], timeline[-1]
    assert isinstance(retried, TaskRetried) and "partner API down" in retried.exception
    assert isinstance(succeeded, TaskSucceeded) and succeeded.result == "42"
    assert succeeded.runtime >= 0 and succeeded.hostname == "w1@integration"
    assert timeline[0].args == "(21,)"  # type: ignore[union-attr]
    worker.stop()
    every = list(ev.app.events.tail())
    workers_seen = [e.type for e in every if e.type.startswith("worker-")]
    assert workers_seen[0] == "worker-online" and workers_seen[-1] == "worker-offline"
    assert every[-1].type == "worker-offline"  # after every task event of the worker

    # conveyor events prints them, one line each, and as JSON
    shown = run_cli(url, tmp_path, "-A", APP, "events", "--no-follow")
    assert shown.returncode == 0, shown.stderr
    assert f"task-succeeded  {result.id}" in shown.stdout and "event_tasks.flaky" in shown.stdout
    assert "worker-online" in shown.stdout
    as_json = run_cli(url, tmp_path, "-A", APP, "events", "--no-follow", "--json")
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [d["type"] for d in lines] == [e.type for e in every]


def test_a_failing_task_event_carries_its_exception(ev, pool):
    pool.start(app=APP)
    result = ev.boom.delay("oops")
    result.get(timeout=20, propagate=False)
    wait_until(lambda: any(e.type == "task-failed" for e in ev.app.events.of_task(result.id)))
    [failed] = [e for e in ev.app.events.of_task(result.id) if isinstance(e, TaskFailed)]
    assert failed.exception == "ValueError: bad input: oops"
    assert failed.traceback and "raise ValueError" in failed.traceback
    assert failed.name == "event_tasks.boom"


def test_events_off_means_none_written(ev, pool):
    worker = pool.start(app=APP, env={"CONVEYOR_WORKER_SEND_TASK_EVENTS": "false"})
    assert ev.add.delay(1, 2).get(timeout=20) == 3
    worker.stop()
    assert list(ev.app.events.tail()) == []
