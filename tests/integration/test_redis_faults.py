"""At-least-once delivery on Redis with real processes: a SIGKILLed worker, a kill -9 of
redis-server itself, and a worker frozen past its lease. Each test has a private
redis-server (appendonly yes, appendfsync always) and real ``conveyor worker`` processes
on an app with ``broker_lease=2``.

The app module is written into the test's tmp_path (``sample_tasks`` is bound to SQLite).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis")

from conveyor import Conveyor, states
from redis_server import RedisServer, free_port

from .redis_support import APP_MODULE, Worker, cli, write_app
from .support import DEFAULT_TIMEOUT, read_jsonl, wait_until


@pytest.fixture
def server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return write_app(tmp_path)


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


def outage_lines(log: str) -> list[str]:
    """The lines that report a broker outage (a BrokerError names the URL "unreachable")."""
    marks = ("is unreachable", "still failing", "answers again")
    return [line for line in log.splitlines() if any(mark in line for mark in marks)]


def test_a_redis_outage_is_logged_in_a_few_lines_without_tracebacks(
    app: Conveyor, start: Any, server: RedisServer, workdir: Path
) -> None:
    """While Redis is down a worker running a task keeps trying to extend its lease, recover
    expired ones and check revocations: each failure used to log a line, some a traceback,
    several times a second."""
    log, gate = workdir / "hold.jsonl", workdir / "gate"
    worker = start()
    held = app.send_task(f"{APP_MODULE}.hold", args=[str(log), str(gate)])
    wait_until(lambda: events(log, "start"), what="the task to start")

    server.kill()
    time.sleep(4)
    server.start()
    gate.touch()

    assert held.get(timeout=DEFAULT_TIMEOUT)["hostname"] == worker.hostname
    after = [app.send_task(f"{APP_MODULE}.work", args=[i]) for i in range(5)]
    assert [r.get(timeout=DEFAULT_TIMEOUT) for r in after] == list(range(5))
    wait_until(lambda: "answers again" in worker.log(), what="the end of the outage logged")
    text = worker.log()
    assert "Traceback" not in text
    lines = outage_lines(text)
    assert 2 <= len(lines) <= 4, "\n".join(lines)
    assert "127.0.0.1" in lines[0] and "Connection refused" in lines[0]


def test_cli_commands_on_an_unreachable_broker_print_one_line(workdir: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0?publish_retries=1&publish_retry_delay=0.01"
    commands = [
        ["queues"],
        ["call", f"{APP_MODULE}.work", "--args", "[1]"],
        ["result", "4f1c"],
        ["dead-letters", "list"],
        ["purge", "-f"],
    ]
    for command in commands:
        run = cli(url, workdir, *command)
        output = run.stdout + run.stderr
        assert run.returncode == 1, output
        assert "Traceback" not in output
        (line,) = output.strip().splitlines()
        assert line.startswith(f"Error: Redis at {url} is unreachable"), line
        assert "Connection refused" in line


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
