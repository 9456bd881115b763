"""Tasks for the async client's tests (tests/integration/test_async_client.py), run by real
``conveyor worker`` processes on the broker CONVEYOR_BROKER_URL names (SQLite or Redis).

Tasks that must stay unfinished while a test awaits them wait for a gate file, so no test
depends on how long something takes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor import Conveyor

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError(
        "aio_client_tasks needs CONVEYOR_BROKER_URL (an absolute SQLite file or Redis)"
    )

app = Conveyor("aio_client", broker=BROKER_URL)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def tsum(values: list[int]) -> int:
    return sum(values)


@app.task
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(bind=True)
def wait_for(self, gate: str) -> str:
    """Report PROGRESS, then wait for the gate file (at most 30 s)."""
    self.update_state(state="PROGRESS", meta={"waiting": gate})
    deadline = time.monotonic() + 30
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.005)
    return "opened"


@app.task(ignore_result=True)
def forget_me() -> int:
    return 1


@app.task
async def amul(x: int, y: int) -> int:
    """An ``async def`` task (docs/async.md), sent and awaited with the async client."""
    import asyncio

    await asyncio.sleep(0)
    return x * y
