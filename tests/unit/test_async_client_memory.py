"""The async client on the in-memory broker and backend, with a worker thread beside the
test: the stores that have no asyncio client of their own are called in a worker thread,
and a wait polls from the loop without holding a thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from conveyor.async_stores import ThreadedBackend, ThreadedBroker, async_backend, async_broker
from conveyor.exceptions import BlockingCallError, TimeoutError
from conveyor.testing import memory_app, worker_thread

GATE = threading.Event()
"""What ``aio.hold`` waits for (the worker thread runs it in this process)."""


@pytest.fixture
def app() -> Any:
    app = memory_app("aio-memory")
    GATE.clear()

    @app.task(name="aio.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="aio.hold")
    def hold() -> str:
        GATE.wait(10)
        return "released"

    return app


def test_memory_stores_are_called_in_a_thread(app: Any) -> None:
    assert isinstance(async_broker(app.broker), ThreadedBroker)
    assert isinstance(async_backend(app.backend), ThreadedBackend)
    assert async_backend(app.backend) is async_backend(app.backend)  # made once per store


def test_adelay_and_aget_through_a_worker_thread(app: Any) -> None:
    add = app.tasks["aio.add"]

    async def main() -> list[Any]:
        results = [await add.adelay(i, i) for i in range(5)]
        return [await result.aget(timeout=10) for result in results]

    with worker_thread(app):
        assert asyncio.run(main()) == [0, 2, 4, 6, 8]


def test_a_waiting_coroutine_holds_no_thread(app: Any) -> None:
    """Fifty coroutines await unfinished tasks, more than the loop's default executor has
    threads; a call to ``asyncio.to_thread`` still gets a thread at once (were the waits
    blocking threads, it would queue behind them until the tasks end, which they only do
    after it returned)."""
    hold = app.tasks["aio.hold"]

    async def main() -> tuple[str, list[Any]]:
        results = [await hold.adelay() for _ in range(50)]

        async def then_release() -> str:
            await asyncio.sleep(0.1)  # the waits are polling by now
            free = await asyncio.wait_for(asyncio.to_thread(str, "a thread was free"), 5)
            GATE.set()
            return free

        waits = asyncio.gather(*(r.aget(timeout=20) for r in results))
        free, values = await asyncio.gather(then_release(), waits)
        return free, values

    with worker_thread(app, concurrency=4):
        free, values = asyncio.run(main())
    assert free == "a thread was free" and values == ["released"] * 50


def test_timeouts_and_the_refused_get(app: Any) -> None:
    add = app.tasks["aio.add"]

    async def main() -> str:
        result = await add.adelay(1, 1)  # no worker runs: it stays PENDING
        with pytest.raises(BlockingCallError):
            result.get(timeout=1)
        with pytest.raises(TimeoutError) as raised:
            await result.aget(timeout=0.05)
        return str(raised.value)

    assert "(state PENDING)" in asyncio.run(main())
