"""At-least-once delivery on Redis with real processes: a SIGKILLed worker, a kill -9 of
redis-server itself, and a worker frozen past its lease. Each test has a private
redis-server (appendonly yes, appendfsync always) and real ``conveyor worker`` processes
on an app with ``broker_lease=2``.

The app module is written into the test's tmp_path (``sample_tasks`` is bound to SQLite).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis")

from conveyor import Conveyor, states
from redis_server import RedisServer

from .support import DEFAULT_TIMEOUT, children_of, group_members, read_jsonl, wait_until

APP_MODULE = "redis_fault_tasks"
APP_SOURCE = '''
"""Tasks for the Redis fault tests (written by tests/integration/test_redis_faults.py)."""

import json
import os
import time

from conveyor import Conveyor

app = Conveyor("redis-faults", broker=os.environ["REDIS_FAULTS_URL"], broker_lease=2)


def _record(path, **fields):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(fields) + "\\n")


@app.task(bind=True)
def hold(self, log_path, gate):
    """Log a start line, wait for the gate file, log a done line; return this pid."""
    info = {"pid": os.getpid(), "delivery_count": self.request.delivery_count,
            "hostname": self.request.hostname}
    _record(log_path, event="start", **info)
    deadline = time.monotonic() + 30
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("gate never opened")
        time.sleep(0.01)
    _record(log_path, event="done", **info)
    return info


@app.task
def work(i):
    time.sleep(0.004)
    return i
'''


class Worker:
    """``conveyor worker -A redis_fault_tasks:app`` in its own session, logging to a file."""

    def __init__(self, name: str, url: str, workdir: Path, *args: str) -> None:
        self.name = name
        self.hostname = f"{name}@redis-faults"
        self.log_path = workdir / f"worker-{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env["REDIS_FAULTS_URL"] = url
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "-A", f"{APP_MODULE}:app",
             "-l", "INFO", "-n", self.hostname, "-c", "1", *args],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> Worker:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited early:\n{self.log()}")
            return f"conveyor worker {self.hostname}" in self.log() and bool(children_of(self.pid))

        wait_until(ready, what=f"worker {self.name} to start")
        return self

    def signal_group(self, signum: int) -> None:
        os.killpg(self.pid, signum)

    def kill_group(self) -> None:
        self.signal_group(signal.SIGKILL)
        self.proc.wait(DEFAULT_TIMEOUT)
        wait_until(lambda: not group_members(self.pid), what=f"worker {self.name} gone")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.signal_group(signal.SIGCONT)
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if group_members(self.pid) or self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(DEFAULT_TIMEOUT)
        self._log.close()


@pytest.fixture
def server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / f"{APP_MODULE}.py").write_text(APP_SOURCE)
    return tmp_path


@pytest.fixture
def app(server: RedisServer) -> Iterator[Conveyor]:
    """The producer side: the same URL, and the task names of the module."""
    client = Conveyor("redis-faults-client", broker=server.url, set_as_current=False)
    yield client
    client.close()


@pytest.fixture
def start(request: pytest.FixtureRequest, server: RedisServer, workdir: Path) -> Iterator[Any]:
    started: list[Worker] = []

    def run(*args: str) -> Worker:
        worker = Worker(f"w{len(started) + 1}", server.url, workdir, *args)
        started.append(worker)
        return worker.wait_ready()

    yield run
    for worker in started:
        worker.stop()
    report = getattr(request.node, "_redis_failed", False)
    if report:  # pragma: no cover - diagnostics only
        for worker in started:
            print(f"--- worker {worker.name} log ---\n{worker.log()}")


def events(path: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_jsonl(path) if e["event"] == kind]


def test_sigkilled_worker_task_runs_again_on_another_worker(
    app: Conveyor, start: Any, workdir: Path
) -> None:
    log, gate = workdir / "hold.jsonl", workdir / "gate"
    first = start()
    result = app.send_task(f"{APP_MODULE}.hold", args=[str(log), str(gate)])
    (started,) = wait_until(lambda: events(log, "start"), what="the task to start")
    assert started["hostname"] == first.hostname
    wait_until(lambda: result.state == states.STARTED, what="STARTED (written 2 ms in)")

    first.kill_group()
    assert result.state == states.STARTED
    gate.touch()
    second = start()
    info = result.get(timeout=DEFAULT_TIMEOUT)

    assert info["hostname"] == second.hostname
    assert info["delivery_count"] == 2
    assert result.state == states.SUCCESS
    wait_until(lambda: app.broker.stats() == {}, what="the message to be acked")
    assert [e["hostname"] for e in events(log, "done")] == [second.hostname]  # one SUCCESS


def test_workers_reconnect_after_redis_is_killed_and_restarted(
    app: Conveyor, start: Any, server: RedisServer
) -> None:
    total = 500
    with app.batch():
        results = [app.send_task(f"{APP_MODULE}.work", args=[i]) for i in range(total)]
    ids = [r.id for r in results]

    def succeeded() -> int:
        return sum(
            1 for record in app.results.read_many(ids) if record and record.status == "SUCCESS"
        )

    workers = [start(), start()]
    wait_until(lambda: succeeded() >= 50, what="the workers to get going")
    server.kill()
    time.sleep(3)
    server.start()

    wait_until(lambda: succeeded() == total, timeout=30, what=f"all {total} tasks to succeed")
    records = app.results.read_many(ids)
    assert [r.result for r in records if r is not None] == list(range(total))
    wait_until(lambda: app.broker.stats() == {}, what="every message to be acked")
    for worker in workers:
        assert worker.proc.poll() is None, worker.log()
    # the workers kept consuming after the restart: new work still gets done
    assert app.send_task(f"{APP_MODULE}.work", args=[-1]).get(timeout=DEFAULT_TIMEOUT) == -1


def test_a_frozen_worker_late_ack_and_result_are_refused(
    app: Conveyor, start: Any, workdir: Path
) -> None:
    log, gate = workdir / "hold.jsonl", workdir / "gate"
    frozen = start()
    result = app.send_task(f"{APP_MODULE}.hold", args=[str(log), str(gate)])
    (first_run,) = wait_until(lambda: events(log, "start"), what="the task to start")
    frozen.signal_group(signal.SIGSTOP)  # supervisor too: no more lease heartbeats

    other = start()
    runs = wait_until(lambda: len(events(log, "start")) == 2 and events(log, "start"))
    second_run = runs[1]
    assert second_run["hostname"] == other.hostname and second_run["delivery_count"] == 2
    gate.touch()
    assert result.get(timeout=DEFAULT_TIMEOUT)["pid"] == second_run["pid"]

    frozen.signal_group(signal.SIGCONT)
    wait_until(lambda: len(events(log, "done")) == 2, what="the frozen run to finish too")
    wait_until(lambda: "ack refused" in frozen.log(), what="the frozen worker's ack to be refused")
    assert "result refused" in frozen.log()
    record = app.results.read(result.id)
    assert record is not None and record.status == states.SUCCESS
    assert record.result["pid"] == second_run["pid"] != first_run["pid"]
    assert app.broker.stats() == {}
    assert json.dumps(record.result)  # a plain, decodable value
