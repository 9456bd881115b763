"""The async client on Redis polls for a quick result before its loop sleeps (``LoopSpin``,
the URL's ``result_spin`` and ``reply_spin``), against a real ``conveyor worker``: the loop
keeps running other coroutines while a wait polls, and a wait polls only as long as the
URL says (``?result_spin=0&reply_spin=0``: not at all, tests/unit/test_loop_spin.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .support import Ticker, project_on, workers_for

APP = "aio_client_tasks:app"


@contextlib.contextmanager
def client_and_worker(
    request: pytest.FixtureRequest, tmp_path: Path, query: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """The tasks module on the test's Redis with ``query`` in its URL, and a worker."""
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    url = f"{redis_url}?prefix={prefix}&{query}"
    with (
        project_on(url, "aio_client_tasks", monkeypatch) as tasks,
        workers_for(request, tmp_path, url) as workers,
    ):
        workers.start("-c", "1", app=APP)
        yield tasks


def test_a_wait_that_polls_for_a_minute_lets_the_other_coroutines_run(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task ends only once a ticker coroutine on the client's loop has ticked 20
    times: a poll that held the loop would never see it end (the test's 30 s run out)."""
    gate = tmp_path / "gate"
    with client_and_worker(request, tmp_path, "result_spin=60000000", monkeypatch) as tasks:
        ticker = Ticker(gate)

        async def main() -> Any:
            ticking = asyncio.create_task(ticker.run())
            try:
                result = await tasks.wait_for.adelay(str(gate))
                return await result.aget(timeout=25)
            finally:
                ticking.cancel()

        value = asyncio.run(asyncio.wait_for(main(), 30))
    assert value == "opened" and ticker.ticks >= 20


def waiting_cpu(tasks: ModuleType, gate: Path) -> float:
    """Seconds of CPU the client spends awaiting a task that ends 0.6 s after it starts."""

    async def main() -> float:
        result = await tasks.wait_for.adelay(str(gate))
        while await result.astate() != "PROGRESS":
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        loop.call_later(0.6, gate.touch)
        began = time.process_time()
        assert await result.aget(timeout=20) == "opened"
        return time.process_time() - began

    return asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize(
    ("query", "polls"),
    [("", False), ("result_spin=500000", True)],
    ids=["default", "half-a-second"],
)
def test_the_url_says_how_long_a_wait_polls(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    query: str,
    polls: bool,
) -> None:
    """By default a wait polls for a millisecond, so a client awaiting a result for 0.6 s
    is idle; told to poll for half a second, it spends most of it running its loop."""
    with client_and_worker(request, tmp_path, query, monkeypatch) as tasks:
        cpu = waiting_cpu(tasks, tmp_path / "gate")
    if polls:
        assert cpu > 0.15, f"{cpu:.3f} s of CPU: the wait did not poll"
    else:
        assert cpu < 0.1, f"{cpu:.3f} s of CPU while waiting with polling off"
