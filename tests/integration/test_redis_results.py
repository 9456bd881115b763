"""Waiting for a result on Redis: a task sent on its own registers for its result in the
publish script, so the get() after it blocks at once (one round trip instead of two), and a
blocked get() polls its socket for a moment before it sleeps (``result_spin``)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from conveyor import Conveyor  # noqa: E402
from conveyor.backends.redis import RedisBackend  # noqa: E402
from conveyor.records import TaskRecord  # noqa: E402


@pytest.fixture
def app(redis_url: str, redis_prefix: str) -> Iterator[Conveyor]:
    app = Conveyor("results", broker=f"{redis_url}?prefix={redis_prefix}", set_as_current=False)

    @app.task(name="results.add")
    def add(x: int, y: int) -> int:
        return x + y

    yield app
    app.broker.close()
    app.backend.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def finish(app: Conveyor, task_id: str, status: str = "SUCCESS", result: Any = 5) -> None:
    """What a worker does at the end of a task: store its record."""
    app.results.write(task_id, TaskRecord(status=status, result=result, task="results.add"))


def commands(raw: Any) -> int:
    return int(raw.info("stats")["total_commands_processed"])


def test_a_sent_task_registers_for_its_result_in_the_publish(app: Conveyor, raw: Any) -> None:
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    result = app.tasks["results.add"].delay(2, 3)
    registry = f"{backend.prefix}n:{app.results.key(result.id)}"
    (inbox,) = raw.smembers(registry)
    assert inbox.startswith(f"{backend.prefix}wt:".encode())
    assert 9000 < raw.pttl(registry) <= 10000
    finish(app, result.id)
    assert not raw.exists(registry)  # the write used the registration up
    assert 1000 <= raw.pttl(inbox) <= 10000  # the pushed value lives as the registration did
    before = commands(raw)
    assert result.get(timeout=5) == 5
    assert commands(raw) - before == 2  # the BLPOP (and INFO itself): no registering call
    assert not raw.exists(inbox)


def test_get_blocks_on_the_registration_until_the_write(app: Conveyor) -> None:
    result = app.tasks["results.add"].delay(2, 3)
    threading.Timer(0.3, finish, (app, result.id)).start()
    started = time.monotonic()
    assert result.get(timeout=5) == 5
    assert 0.25 <= time.monotonic() - started < 2


def test_a_state_before_the_outcome_uses_the_registration_up_and_get_still_waits(
    app: Conveyor,
) -> None:
    result = app.tasks["results.add"].delay(2, 3)
    finish(app, result.id, status="STARTED", result=None)
    threading.Timer(0.3, finish, (app, result.id)).start()
    assert result.get(timeout=5) == 5


def test_a_task_sent_another_way_registers_nothing(
    app: Conveyor, raw: Any, redis_prefix: str
) -> None:
    add = app.tasks["results.add"]
    with app.batch():
        batched = add.delay(1, 1)
    ignored = add.apply_async((1, 2), ignore_result=True)
    keyed = add.apply_async((1, 3), idempotency_key="once")
    for task_id in (batched.id, ignored.id, keyed.id):
        assert not raw.exists(f"{redis_prefix}n:{app.results.key(task_id)}")
    finish(app, batched.id, result=2)
    assert batched.get(timeout=5) == 2  # registers itself, as for a task sent elsewhere


def test_get_after_the_window_registers_itself(app: Conveyor, raw: Any) -> None:
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    backend.early_window = 0.8  # the client trusts it for 0.3 s (a 0.5 s margin)
    result = app.tasks["results.add"].delay(2, 3)
    raw.delete(f"{backend.prefix}n:{app.results.key(result.id)}")  # as if it had expired
    threading.Timer(0.5, finish, (app, result.id)).start()
    started = time.monotonic()
    assert result.get(timeout=5) == 5
    assert time.monotonic() - started < 2


def test_get_from_another_thread_and_a_second_get(app: Conveyor) -> None:
    result = app.tasks["results.add"].delay(2, 3)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(result.get(timeout=5)))
    waiter.start()
    time.sleep(0.1)
    finish(app, result.id)
    waiter.join()
    assert got == [5]
    assert result.get(timeout=1) == 5  # the registration is gone: read, as any get does


def test_another_waiter_never_cuts_a_registration_short(app: Conveyor, raw: Any) -> None:
    """A get() elsewhere registers for less time; the publish's registration keeps its TTL."""
    result = app.tasks["results.add"].delay(2, 3)
    registry = f"{app.backend.prefix}n:{app.results.key(result.id)}"  # type: ignore[attr-defined]
    other = RedisBackend(app.backend.url, prefix=app.backend.prefix)  # type: ignore[attr-defined]
    assert other.wait(app.results.key(result.id), bool, timeout=0.01) is None
    assert raw.scard(registry) == 2 and raw.pttl(registry) > 9000
    other.close()


def test_a_result_wait_polls_before_it_sleeps_and_result_spin_sets_the_limit(
    redis_url: str, redis_prefix: str
) -> None:
    """In a fresh process (polling needs a thread alone in its process; pytest's may not be).
    The result is written by another process within the limit, so the poll sees it."""
    writer = f"""
import time
from conveyor.backends.redis import RedisBackend
time.sleep(0.2)
RedisBackend({redis_url!r}, prefix={redis_prefix!r}).set("k", b"done", 60)
"""
    script = f"""
import subprocess, sys, threading
from conveyor.backends.redis import RedisBackend
spinning = RedisBackend({redis_url + "?result_spin=3000000"!r}, prefix={redis_prefix!r})
quiet = RedisBackend({redis_url + "?result_spin=0"!r}, prefix={redis_prefix!r})
assert (spinning.link.result_spin, quiet.link.result_spin) == (3.0, 0.0)
assert "result_spin" not in spinning.link.pool.connection_kwargs
writer = subprocess.Popen([sys.executable, "-c", {writer!r}])
assert threading.active_count() == 1
assert spinning.wait("k", bool, timeout=10) == b"done"
polls = spinning.link._own.results
assert polls.count == 1 and polls.poller is not None and polls.misses == 0.0
writer.wait()
assert quiet.wait("k", bool, timeout=10) == b"done"  # already there: no blocking at all
quiet.set("j", b"x", 60)
assert quiet.wait("j", lambda v: v == b"y", timeout=0.2) == b"x"
assert quiet.link._own.results.poller is None
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
