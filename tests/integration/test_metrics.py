"""Prometheus metrics from real workers and from ``conveyor metrics``, scraped over HTTP and
read with prometheus_client's parser, on SQLite and on Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conveyor.keys import WORKERS_GROUP
from redis_server import free_port

from .support import Workers, base_env, project_on, wait_until, workers_for

parser = pytest.importorskip("prometheus_client.parser")

APP = "observed_tasks:app"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def observed(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with project_on(url, "observed_tasks", monkeypatch, "OBSERVED_SPANS") as module:
        yield module


@pytest.fixture
def pool(
    request: pytest.FixtureRequest, tmp_path: Path, url: str, observed: ModuleType
) -> Iterator[Workers]:
    with workers_for(request, tmp_path, url) as workers:
        yield workers


def scrape(port: int) -> Samples:
    """Every sample of http://127.0.0.1:PORT/metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_a_prefork_worker_serves_the_counts_of_all_its_children(
    pool: Workers, observed: ModuleType, tmp_path: Path
) -> None:
    port = free_port()
    worker = pool.start("-c", "2", "--metrics-port", str(port), app=APP)
    worker.wait_for_log(f"metrics on http://0.0.0.0:{port}/metrics")
    first = [observed.pid_of.delay(i) for i in range(20)]
    ran_in = {result.get(timeout=20) for result in first}
    assert ran_in <= set(worker.children())
    pid_of = {"task": "observed_tasks.pid_of", "outcome": "success"}
    wait_until(  # children write their counts every second
        lambda: value(scrape(port), "conveyor_tasks_total", **pid_of) == 20,
        what="the first 20 to be counted",
    )
    for pid in ran_in:  # the children that counted die; what they counted must stay
        os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: len(worker.children()) == 2 and not ran_in & set(worker.children()),
        what="the killed children to be replaced",
    )
    second = [observed.add.delay(i, i) for i in range(20)]
    assert [result.get(timeout=20) for result in second] == [2 * i for i in range(20)]
    with pytest.raises(ValueError):
        observed.fail.delay("boom").get(timeout=20)
    observed.scarce.delay(1).get(timeout=20)
    observed.scarce.delay(2)  # over its rate limit: put back for later

    total = "conveyor_tasks_total"
    expected = {  # children write their counts every second: wait until all are in
        (total, frozenset(pid_of.items())): 20,
        (total, frozenset({"task": "observed_tasks.add", "outcome": "success"}.items())): 20,
        (total, frozenset({"task": "observed_tasks.fail", "outcome": "failure"}.items())): 1,
        (total, frozenset({"task": "observed_tasks.scarce", "outcome": "success"}.items())): 1,
    }

    waits = ("conveyor_task_queue_wait_seconds_count", frozenset({"queue": "default"}.items()))
    expected[waits] = 20 + 20 + 1 + 1
    runtime = "conveyor_task_runtime_seconds"
    expected[(f"{runtime}_count", frozenset({"task": "observed_tasks.add"}.items()))] = 20

    def counted() -> Samples | None:
        # a child's flush writes its histograms before its counters, but a scrape reads the
        # processes' counter and histogram files one after another: wait for both to agree
        samples = scrape(port)
        postponed = value(
            samples, "conveyor_task_postponements_total", task="observed_tasks.scarce"
        )
        counts = {key: samples.get(key) for key in expected}
        return samples if postponed and counts == expected else None

    samples = wait_until(counted, what=f"the counts {expected}")
    assert value(samples, f"{runtime}_bucket", task="observed_tasks.add", le="+Inf") == 20
    assert (value(samples, f"{runtime}_sum", task="observed_tasks.add") or 0) > 0
    assert value(samples, "conveyor_tasks_running") == 0
    assert value(samples, "conveyor_worker_messages_reserved") == 0

    gate = tmp_path / "gate"
    held = observed.hold.delay(str(gate))
    wait_until(lambda: value(scrape(port), "conveyor_tasks_running") == 1, what="1 running")
    gate.touch()
    assert held.get(timeout=20) == str(gate)
    wait_until(lambda: value(scrape(port), "conveyor_tasks_running") == 0, what="0 running")


def test_conveyor_metrics_serves_queue_depths_dead_letters_and_workers(
    tmp_path: Path, url: str, observed: ModuleType
) -> None:
    now = time.time()
    records = [  # as workers keep them in the registry: one beating, one silent for a minute
        (
            "busy@test",
            {
                "heartbeat": now + 60,
                "interval": 1.0,
                "active": [{"id": "a"}],
                "processed": 7,
                "failed": 2,
            },
        ),
        ("gone@test", {"heartbeat": now - 60, "interval": 1.0, "active": []}),
    ]
    observed.app.coordinator.put_members(
        WORKERS_GROUP, [(name, json.dumps(record)) for name, record in records], 300.0
    )
    for i in range(4):
        observed.add.delay(i, i)
    observed.add.apply_async((9, 9), countdown=3600)
    broker = observed.app.broker
    held = broker.reserve(["default"], 1, 60.0)
    failed = broker.reserve(["default"], 1, 60.0)
    assert len(held) == len(failed) == 1
    broker.dead_letter(failed[0], "failed for the test")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "metrics", "-A", APP, "--port", str(port)],
        cwd=tmp_path,
        env=base_env(url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def answered() -> Samples | None:
            try:
                samples = scrape(port)
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                return None
            return samples if value(samples, "conveyor_workers", status="online") else None

        samples = wait_until(answered, what="conveyor metrics to answer")
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
    depth = "conveyor_queue_messages"
    assert value(samples, depth, queue="default", state="ready") == 2
    assert value(samples, depth, queue="default", state="delayed") == 1
    assert value(samples, depth, queue="default", state="reserved") == 1
    assert value(samples, "conveyor_dead_letters", queue="default") == 1
    assert value(samples, "conveyor_broker_up") == 1
    assert value(samples, "conveyor_workers", status="online") == 1
    assert value(samples, "conveyor_workers", status="lost") == 1
    assert value(samples, "conveyor_worker_tasks_running", worker="busy@test") == 1
    assert value(samples, "conveyor_worker_tasks_running", worker="gone@test") is None
    assert value(samples, "conveyor_worker_tasks_processed_total", worker="busy@test") == 7
    assert value(samples, "conveyor_worker_tasks_failed_total", worker="busy@test") == 2
