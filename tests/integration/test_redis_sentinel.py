"""Redis behind Sentinel: workers, producers and result readers find the master through
three Sentinels, and follow it when it fails over; in durable mode no send that returned
is lost with the old primary."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

from conveyor.exceptions import BrokerError, ImproperlyConfigured

from .sentinel_support import SentinelGroup, sentinel_group
from .support import Workers, project_afresh, wait_until

pytest.importorskip("redis")
APP = "sentinel_tasks:app"


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with sentinel_group(tmp_path / "redis") as started:
        yield started


@contextmanager
def app_on(url: str, runs: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    monkeypatch.setenv("SENTINEL_RUNS", str(runs))
    with project_afresh("sentinel_tasks") as module:
        yield module


def runs_of(runs: Path) -> Counter[int]:
    seen: Counter[int] = Counter()
    for log in runs.glob("*.log"):
        seen.update(int(line) for line in log.read_text().split())
    return seen


def test_a_sentinel_url_reaches_the_master(
    group: SentinelGroup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    url = group.url()
    with app_on(url, runs, monkeypatch) as tasks:
        workers = Workers(tmp_path, url)
        try:
            workers.start("-P", "threads", "-c", "2", env={"SENTINEL_RUNS": str(runs)}, app=APP)
            results = [tasks.note.delay(n) for n in range(20)]
            assert [r.get(timeout=20) for r in results] == list(range(20))
        finally:
            workers.stop_all()
            import redis

            master = redis.Redis(port=group.master_port())
            stored = master.keys("*")
            assert stored, "nothing on the master the Sentinels name"
            assert all(
                not redis.Redis(port=r.port).keys("*") or r.port != group.master_port()
                for r in group.replicas
            )


def test_a_sentinel_url_without_a_master_name_says_how_to_fix_it(group: SentinelGroup) -> None:
    from conveyor import Conveyor

    url = group.url().split("?")[0]
    with pytest.raises(ImproperlyConfigured, match=r"\?master=NAME"):
        Conveyor("x", broker=url).broker.stats()


def test_failover_loses_no_confirmed_send_in_durable_mode(
    group: SentinelGroup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    url = group.url(durable="replica", durable_timeout="2")
    with app_on(url, runs, monkeypatch) as tasks:
        workers = Workers(tmp_path, url)
        try:
            env = {"SENTINEL_RUNS": str(runs)}
            backlog = {}
            with tasks.app.batch():  # 2,000 tasks waiting when the workers start
                for n in range(10_000, 12_000):
                    backlog[n] = tasks.note.delay(n)
            workers.start("-P", "threads", "-c", "4", env=env, app=APP)
            workers.start("-P", "threads", "-c", "4", env=env, app=APP)
            confirmed: dict[int, object] = {}
            failed_sends: list[str] = []
            killed_at: list[float] = []
            resumed_at: list[float] = []

            def produce() -> None:
                for n in range(1200):
                    time.sleep(0.002)  # a steady stream, so sends are in flight at the kill
                    try:
                        confirmed[n] = tasks.note.delay(n)
                    except BrokerError as exc:
                        failed_sends.append(str(exc))
                        continue
                    if killed_at and not resumed_at:
                        resumed_at.append(time.monotonic())

            producer = threading.Thread(target=produce)
            producer.start()
            wait_until(lambda: len(confirmed) >= 300, timeout=30, what="300 sends")
            old = group.primary.process
            assert old is not None
            os.kill(old.pid, signal.SIGKILL)
            old.wait(10)
            killed_at.append(time.monotonic())
            sent_before = len(confirmed)
            producer.join(120)
            assert not producer.is_alive()
            confirmed.update(backlog)
            wait_until(
                lambda: set(confirmed) <= set(runs_of(runs)),
                timeout=90,
                what="every confirmed task to run",
            )
            assert group.master_port() != group.primary.port
            states = Counter(r.state for r in confirmed.values())  # type: ignore[attr-defined]
            assert states == {"SUCCESS": len(confirmed)}, states
            seen = runs_of(runs)
            twice = sum(1 for n in confirmed if seen[n] > 1)
            resume = resumed_at[0] - killed_at[0] if resumed_at else float("nan")
            print(
                f"\nfailover: {len(confirmed)} sends confirmed, {len(failed_sends)} refused, "
                f"0 lost; {twice} ran twice (at-least-once); sends resumed {resume:.1f} s "
                f"after the primary was killed ({sent_before} sent before)"
            )
            assert len(confirmed) + len(failed_sends) == 1200 + 2000
            assert sent_before < 1000, "the primary died after nearly every send: no test"
            assert resumed_at, "no send succeeded after the failover"
        finally:
            workers.stop_all()


def test_durable_mode_refuses_a_write_no_replica_confirms(
    redis_url: str, redis_prefix: str
) -> None:
    """With no replica to confirm it, a durable send fails (after its retries) with an
    error that names the mode, instead of returning as if it were safe."""
    from conveyor import Conveyor

    url = f"{redis_url}?prefix={redis_prefix}&durable=replica&durable_timeout=0.05"
    app = Conveyor("durable", broker=url, broker_publish_retries=1)

    @app.task
    def noop() -> None: ...

    with pytest.raises(BrokerError, match=r"0 of 1 replica\(s\).*durable=replica"):
        noop.delay()
    plain = Conveyor("plain", broker=f"{redis_url}?prefix={redis_prefix}")
    assert plain.broker.stats()["default"].ready >= 1  # the write happened; unconfirmed


def test_durable_aof_needs_waitaof(tmp_path: Path) -> None:
    """durable=aof waits on WAITAOF: on a Redis before 7.2 it says so and what to use."""
    import redis as redis_py

    from conveyor import Conveyor
    from redis_server import RedisServer

    server = RedisServer(tmp_path / "aof", appendonly=True).start()
    try:
        version = tuple(
            int(x) for x in redis_py.Redis(port=server.port).info()["redis_version"].split(".")[:2]
        )
        app = Conveyor("aof", broker=f"{server.url}?durable=aof")

        @app.task
        def noop() -> int:
            return 1

        if version < (7, 2):
            with pytest.raises(ImproperlyConfigured, match="WAITAOF came in Redis 7.2"):
                noop.delay()
        else:
            noop.delay()
            assert app.broker.stats()["default"].ready == 1
    finally:
        server.stop()


def test_bad_durable_options_are_named() -> None:
    from conveyor import Conveyor

    with pytest.raises(ImproperlyConfigured, match="durable=replica.*durable=aof"):
        Conveyor("x", broker="redis://127.0.0.1:1/0?durable=yes").broker.stats()
