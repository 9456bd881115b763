"""Events from real workers on SQLite and Redis: every kind in order, failures with their
exception, the worker's own events, the CLI that shows them, and events turned off."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conveyor.events import TaskFailed, TaskRetried, TaskSucceeded

from .support import Workers, base_env, project_on, run_cli, wait_until, workers_for

APP = "event_tasks:app"


@pytest.fixture
def ev(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with project_on(url, "event_tasks", monkeypatch) as module:
        yield module


@pytest.fixture
def pool(
    request: pytest.FixtureRequest, tmp_path: Path, url: str, ev: ModuleType
) -> Iterator[Workers]:
    with workers_for(request, tmp_path, url) as workers:
        yield workers


def kinds(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def test_every_kind_in_order_failures_worker_events_and_the_cli(ev, pool, url, tmp_path):
    worker = pool.start("-c", "2", app=APP)
    result = ev.flaky.delay(21)
    assert result.get(timeout=20) == 42
    boom = ev.boom.delay("oops")
    boom.get(timeout=20, propagate=False)
    wait_until(lambda: len(ev.app.events.of_task(result.id)) >= 6, timeout=10)
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
    # a failing task's event carries its exception
    wait_until(lambda: any(isinstance(e, TaskFailed) for e in ev.app.events.of_task(boom.id)))
    [failed] = [e for e in ev.app.events.of_task(boom.id) if isinstance(e, TaskFailed)]
    assert failed.exception == "ValueError: bad input: oops" and failed.name == "event_tasks.boom"
    assert failed.traceback and "raise ValueError" in failed.traceback
    beats = lambda: [e for e in ev.app.events.tail() if e.type == "worker-heartbeat"]  # noqa: E731
    assert wait_until(beats)[0].hostname == "w1@integration"  # every broker_lease / 3 = 0.5 s
    worker.stop()
    every = list(ev.app.events.tail())
    workers_seen = [e.type for e in every if e.type.startswith("worker-")]
    assert workers_seen[0] == "worker-online" and workers_seen[-1] == "worker-offline"
    assert "worker-heartbeat" in workers_seen
    assert every[-1].type == "worker-offline"  # after every task event of the worker

    # conveyor events prints them, one line each, and as JSON
    shown = run_cli(url, tmp_path, "-A", APP, "events", "--no-follow")
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"task-succeeded +{result.id}  event_tasks\.flaky", shown.stdout)
    assert "worker-online" in shown.stdout
    as_json = run_cli(url, tmp_path, "-A", APP, "events", "--no-follow", "--json")
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [d["type"] for d in lines] == [e.type for e in every]


def test_a_task_killed_at_its_hard_time_limit_has_its_failed_event(ev, pool):
    pool.start(app=APP)
    result = ev.sleepy.delay()
    result.get(timeout=20, propagate=False)
    assert result.state == "FAILURE"

    def failed() -> list[Any]:
        return [e for e in ev.app.events.of_task(result.id) if isinstance(e, TaskFailed)]

    [event] = wait_until(failed)
    assert event.exception.startswith("TimeLimitExceeded")
    assert [e.type for e in ev.app.events.of_task(result.id)][:2] == [
        "task-received",
        "task-started",
    ]


def test_a_task_that_never_starts_has_its_received_then_its_outcome(ev, pool):
    pool.start(app=APP)
    expired = ev.add.apply_async((1, 2), expires=datetime.now(UTC) - timedelta(minutes=1))
    unknown = ev.app.send_task("event_tasks.not_a_task", args=(1,))
    expired.get(timeout=20, propagate=False)
    assert expired.state == "REVOKED"
    wait_until(lambda: len(ev.app.events.of_task(unknown.id)) >= 2, timeout=20)
    wait_until(lambda: len(ev.app.events.of_task(expired.id)) >= 2, timeout=20)
    assert kinds(ev.app.events.of_task(expired.id)) == ["task-received", "task-revoked"]
    assert kinds(ev.app.events.of_task(unknown.id)) == ["task-received", "task-failed"]
    received, failed = ev.app.events.of_task(unknown.id)
    assert "not_a_task" in failed.exception  # type: ignore[union-attr]
    assert received.args == "(1,)" and received.hostname == "w1@integration"  # type: ignore[union-attr]


def test_events_off_means_none_written(ev, pool):
    worker = pool.start(app=APP, env={"CONVEYOR_WORKER_SEND_TASK_EVENTS": "false"})
    assert ev.add.delay(1, 2).get(timeout=20) == 3
    worker.stop()
    assert list(ev.app.events.tail()) == []


def follow_events(url: str, tmp_path: Path) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """``conveyor events --json`` running (following the stream), its lines in a queue."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "-A", APP, "events", "--json"],
        cwd=tmp_path,
        env=base_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def test_tasks_list_and_show_and_top(ev, pool, url, tmp_path):
    pool.start("-c", "2", app=APP)
    follower, followed = follow_events(url, tmp_path)
    followed.get(timeout=20)  # it follows: the worker's next heartbeat shows up
    added = [ev.add.delay(n, n) for n in range(5)]
    failed = [ev.boom.delay(str(n)) for n in range(3)]
    flaky = ev.flaky.delay(5)
    parent = ev.spawn.delay()
    for r in [*added, *failed, flaky, parent]:
        r.get(timeout=20, propagate=False)
    child_id = parent.get(timeout=20)

    def cli(*args: str) -> Any:
        done = run_cli(url, tmp_path, "-A", APP, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    rows = [
        json.loads(line)
        for line in cli("tasks", "list", "--state", "FAILURE", "--json").splitlines()
    ]
    assert sorted(r["id"] for r in rows) == sorted(r.id for r in failed)
    assert {r["status"] for r in rows} == {"FAILURE"} and {r["task"] for r in rows} == {
        "event_tasks.boom"
    }
    pages = [
        [json.loads(line)["id"] for line in cli("tasks", "list", "--name", "event_tasks.add",
                                               "--limit", "2", "--page", str(p), "--json").splitlines()]
        for p in (1, 2, 3, 4)
    ]  # fmt: skip
    assert [len(p) for p in pages] == [2, 2, 2, 0]  # five adds and the spawned child
    assert sorted(i for page in pages for i in page) == sorted([r.id for r in added] + [child_id])
    assert len(cli("tasks", "list", "--since", "1h", "--json").splitlines()) == 11
    assert cli("tasks", "list", "--since", "0s", "--json") == ""
    table = cli("tasks", "list", "--state", "FAILURE")
    assert table.splitlines()[0].split() == [
        "id",
        "state",
        "name",
        "done",
        "worker",
        "retries",
        "info",
    ]
    assert "ValueError: bad input" in table

    wait_until(lambda: any(e.type == "task-succeeded" for e in ev.app.events.of_task(flaky.id)))
    shown = cli("tasks", "show", flaky.id)
    for label, value in (("args", "(5,)"), ("retries", "1"), ("result", "10")):
        assert re.search(rf"^{label} +{re.escape(value)}$", shown, re.M), shown
    timeline = shown.split("timeline:")[1]
    assert timeline.index("task-retried") < timeline.index("task-succeeded")
    family = json.loads(cli("tasks", "show", parent.id, "--json"))
    assert family["children"] == [child_id]
    assert json.loads(cli("tasks", "show", child_id, "--json"))["parent_id"] == parent.id
    missing = run_cli(url, tmp_path, "-A", APP, "tasks", "show", "no-such-id")
    assert missing.returncode == 1 and "no task no-such-id" in missing.stderr

    # conveyor events, started before the tasks were sent, printed them as they happened
    try:
        seen: set[tuple[str, str]] = set()
        wanted = {("task-succeeded", parent.id), ("task-failed", failed[0].id)}
        deadline = time.monotonic() + 20
        while not wanted <= seen:
            assert time.monotonic() < deadline, f"conveyor events printed only {seen}"
            event = json.loads(followed.get(timeout=15))
            seen.add((event["type"], event.get("uuid", "")))
    finally:
        follower.terminate()
        follower.wait(10)

    view = cli("top")  # piped: one view, no escape codes
    assert "\x1b" not in view
    assert "w1@integration" in view and "online" in view
    assert "recent failures:" in view and "bad input" in view


def test_dead_letters_show_prints_the_body(ev, url, tmp_path):
    unknown = ev.app.send_task("event_tasks.not_a_task", args=[1, "two"])
    worker = Workers(tmp_path, url)
    try:
        worker.start(app=APP)
        wait_until(lambda: ev.app.broker.dead_letters())
    finally:
        worker.stop_all()
    shown = run_cli(url, tmp_path, "-A", APP, "dead-letters", "show", unknown.id)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^task +event_tasks\.not_a_task$", shown.stdout, re.M), shown.stdout
    assert re.search(r"^args +\(1, 'two'\)$", shown.stdout, re.M)
    assert re.search(
        r"^reason +no task named 'event_tasks.not_a_task' is registered", shown.stdout, re.M
    )
    as_json = json.loads(
        run_cli(url, tmp_path, "-A", APP, "dead-letters", "show", unknown.id, "--json").stdout
    )
    assert as_json["message"]["task"] == "event_tasks.not_a_task"
    assert as_json["message"]["args"] == [1, "two"]
