"""``async def`` tasks in this process (issue 18): eagerly with asyncio.run, refused inside a
running loop, and through a threads-pool worker on the memory broker (signals, hooks,
limits, locks). Real worker processes: tests/integration/test_async_tasks.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from conveyor import Conveyor, Task, shared_task, signals, states
from conveyor.exceptions import ImproperlyConfigured
from conveyor.request import current_request
from conveyor.testing import memory_app, run_until_empty, worker_thread


@dataclass
class Page:
    url: str
    size: int


@pytest.fixture
def app() -> Iterator[Conveyor]:
    app = memory_app()
    yield app
    app.close()


def test_apply_runs_the_coroutine_with_its_request_and_typed_values(app: Conveyor) -> None:
    @app.task(bind=True)
    async def fetch(self: Any, page: Page) -> Page:
        await asyncio.sleep(0)
        assert current_request() is self.request
        return Page(page.url, self.request.retries)

    result = fetch.apply((Page("a", 0),), task_id="t-1")
    assert result.state == states.SUCCESS
    assert result.get() == Page("a", 0)


def test_eager_send_retries_the_coroutine(app: Conveyor) -> None:
    app.conf.task_always_eager = True

    @app.task(bind=True, autoretry_for=(ConnectionError,), default_retry_delay=0)
    async def flaky(self: Any) -> int:
        if self.request.retries < 2:
            raise ConnectionError("down")
        return self.request.retries

    assert flaky.delay().get() == 2


def test_apply_inside_a_running_loop_names_the_fix(app: Conveyor) -> None:
    @app.task
    async def fetch() -> int:
        return 1

    async def caller() -> None:
        with pytest.raises(RuntimeError, match=r"asyncio.to_thread\(task.apply"):
            fetch.apply()
        assert await fetch() == 1  # the direct call is the coroutine, awaited here

    asyncio.run(caller())


def test_class_based_and_shared_async_tasks(app: Conveyor) -> None:
    class Poll(Task):
        name = "unit.Poll"

        async def run(self, times: int) -> int:
            return times

    poll = app.register_task(Poll())

    @shared_task
    async def doubled(x: int) -> int:
        return 2 * x

    app.set_current()
    assert poll.apply((3,)).get() == 3
    assert doubled.apply((4,)).get() == 8


def test_a_worker_sends_the_signals_and_runs_the_hooks(app: Conveyor) -> None:
    seen: list[tuple[str, str]] = []

    def record(kind: str) -> Any:
        def receiver(sender: Any = None, task_id: str | None = None, **kw: Any) -> None:
            seen.append((kind, task_id or sender.request.id))  # as Celery's receivers read it

        return receiver

    receivers = {
        "prerun": (signals.task_prerun, record("prerun")),
        "postrun": (signals.task_postrun, record("postrun")),
        "success": (signals.task_success, record("success")),
        "failure": (signals.task_failure, record("failure")),
    }
    for sig, receiver in receivers.values():
        sig.connect(receiver, weak=False)

    class Hooked(Task):
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            seen.append(("on_success", task_id))

    @app.task(base=Hooked)
    async def fine() -> int:
        await asyncio.sleep(0.01)
        return 1

    @app.task
    async def broken() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("no")

    try:
        with worker_thread(app):
            ok, bad = fine.delay(), broken.delay()
            assert ok.get(timeout=5) == 1
            with pytest.raises(ValueError):
                bad.get(timeout=5)
    finally:
        for sig, receiver in receivers.values():
            sig.disconnect(receiver)
    assert {
        ("prerun", ok.id),
        ("on_success", ok.id),
        ("success", ok.id),
        ("postrun", ok.id),
    } <= set(seen)
    assert {("prerun", bad.id), ("failure", bad.id), ("postrun", bad.id)} <= set(seen)
    assert ("success", bad.id) not in seen


def test_run_until_empty_runs_async_tasks_to_their_end(app: Conveyor) -> None:
    @app.task
    async def later(x: int) -> int:
        await asyncio.sleep(0.01)
        return x + 1

    result = later.delay(1)
    assert run_until_empty(app) == 1
    assert result.get(timeout=1) == 2


def test_a_lock_holds_across_interleaved_coroutines(app: Conveyor) -> None:
    @app.task(lock="resource-{key}", on_locked="skip")
    async def exclusive(key: str) -> str:
        await asyncio.sleep(0.3)
        return key

    with worker_thread(app):
        first, second = exclusive.delay("a"), exclusive.delay("a")
        assert first.get(timeout=5) == "a"
        second.get(timeout=5, propagate=False)
    assert second.state == states.IGNORED  # the first coroutine held the lock


def test_an_unknown_pool_names_asyncio(app: Conveyor) -> None:
    from conveyor.worker import POOLS, Worker

    assert "asyncio" in POOLS
    with pytest.raises(ImproperlyConfigured, match="asyncio"):
        Worker(app, pool="gevent")


def test_concurrency_limit_holds_for_interleaved_coroutines(app: Conveyor) -> None:
    running: list[int] = []
    peak: list[int] = []

    @app.task(concurrency_limit=2)
    async def limited(i: int) -> int:
        running.append(i)
        peak.append(len(running))
        await asyncio.sleep(0.1)
        running.remove(i)
        return i

    with worker_thread(app):
        results = [limited.delay(i) for i in range(6)]
        assert [r.get(timeout=20) for r in results] == list(range(6))
    assert max(peak) == 2  # two at once, though the loop could run all six
