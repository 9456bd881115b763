"""``async def`` tasks (issue 18), beside a few ``def`` ones: a worker process runs the
coroutines on its event loop while its consumer runs the def tasks.

The app takes its broker from CONVEYOR_BROKER_URL (a SQLite file or a private Redis with a
prefix of the test's own). Tasks that must prove they ran, or when, append a JSON line to a
file the test names.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from conveyor import Conveyor, SoftTimeLimitExceeded, Task, shared_task

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError(
        f"async_tasks needs CONVEYOR_BROKER_URL set by the test (got {BROKER_URL!r})"
    )

app = Conveyor("async_tasks", broker=BROKER_URL, broker_lease=2)


def note(path: str, **fields: Any) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"pid": os.getpid(), "at": time.time(), **fields}) + "\n")


@dataclass
class Page:
    url: str
    size: int


@app.task(bind=True)
async def nap(self: Any, seconds: float) -> list[Any]:
    """Sleeps without blocking the loop; answers with the request it saw after the sleep."""
    await asyncio.sleep(seconds)
    return [self.request.id, os.getpid()]


@app.task
async def fetch(url: str) -> Page:
    await asyncio.sleep(0.01)
    return Page(url=url, size=len(url))


@app.task
async def measure(page: Page) -> int:
    assert isinstance(page, Page), type(page)
    return page.size * 10


@app.task(bind=True, autoretry_for=(ConnectionError,), retry_backoff=False, default_retry_delay=0)
async def flaky(self: Any, until: int) -> int:
    await asyncio.sleep(0)
    if self.request.retries < until:
        raise ConnectionError(f"attempt {self.request.retries}")
    return self.request.retries


@app.task(bind=True, max_retries=3)
async def retry_once(self: Any) -> str:
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return f"retried {self.request.retries}"


@app.task(soft_time_limit=0.5)
async def soft_limited(path: str) -> str:
    try:
        await asyncio.sleep(30)
    except SoftTimeLimitExceeded:
        note(path, event="cleanup")
        return "cleaned up"
    return "slept"


@app.task(time_limit=0.5)
async def hard_limited(path: str) -> str:
    try:
        await asyncio.sleep(30)
    finally:
        note(path, event="cancelled")
    return "slept"


@app.task(time_limit=0.5)
async def blocks_loop(seconds: float) -> str:
    time.sleep(seconds)  # a blocking call inside a coroutine: the whole loop stops
    return "blocked"


@app.task(bind=True)
async def long_wait(self: Any, path: str) -> str:
    note(path, event="start", id=self.request.id)
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        note(path, event="cancelled", id=self.request.id)
        raise
    return "finished"


@app.task(bind=True)
async def slow_to_cancel(self: Any, path: str) -> str:
    """Takes a second and a half to end once cancelled (it cleans up), so its worker's
    supervisor sees it running after its revoke."""
    note(path, event="start", id=self.request.id)
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        note(path, event="cancelled", id=self.request.id)
        await asyncio.sleep(1.5)
        raise
    return "finished"


@app.task
async def span(path: str, seconds: float) -> None:
    note(path, event="start")
    await asyncio.sleep(seconds)
    note(path, event="end")


@app.task(bind=True)
async def progress(self: Any, steps: int) -> int:
    for step in range(steps):
        self.update_state(state="PROGRESS", meta={"current": step + 1, "total": steps})
        await asyncio.sleep(0.05)
    return steps


@app.task(bind=True)
async def quick_parent(self: Any) -> str:
    """Ends without waiting: alone on its worker, its success is stored by the loop thread
    while the consumer waits for it (``aio_executor._write_early``). It sends a child."""
    measure.delay(Page(url="child", size=1))
    return str(self.request.id)


_last_seen: contextvars.ContextVar[str] = contextvars.ContextVar("last_seen", default="")


@app.task(bind=True)
async def first_steps(self: Any) -> dict[str, Any]:
    """What a coroutine sees before and after its first wait: its own task (named after
    it), a running loop, a timeout that works, and context variables of its own."""
    leaked = _last_seen.get()
    _last_seen.set(str(self.request.id))
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):  # needs the current task
        running = loop.is_running()
    await asyncio.sleep(0)
    return {
        "leaked": leaked,
        "name": task.get_name() if task is not None else None,
        "running": running,
        "same_task": asyncio.current_task() is task,
        "same_loop": asyncio.get_running_loop() is loop,
        "kept": _last_seen.get() == self.request.id,
    }


@app.task
async def wrong_type() -> int:
    return "not a number"  # type: ignore[return-value]


@app.task
async def loop_thread() -> str:
    """Which thread the worker process runs its coroutines on."""
    await asyncio.sleep(0)
    return threading.current_thread().name


@app.task
def sync_with_its_own_loop(x: int) -> int:
    """A def task that runs async code the way sync code does, with ``asyncio.run``."""

    async def double() -> int:
        await asyncio.sleep(0)
        return 2 * x

    return asyncio.run(double())


@app.task(time_limit=0.5)
async def limited_quick() -> str:
    """Ends at once, well within its hard limit (the supervisor's deadline: 3.5 s)."""
    return "in time"


@app.task
def sync_sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


class Poll(Task):
    """A class-based async task."""

    name = "async_tasks.Poll"

    async def run(self, times: int) -> int:
        for _ in range(times):
            await asyncio.sleep(0.01)
        return times


poll = app.register_task(Poll())


@shared_task
async def shared_double(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2
