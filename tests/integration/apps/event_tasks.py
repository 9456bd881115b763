"""Tasks whose events the event tests read: one that retries once then succeeds, one that
fails, a quick one. The app takes its broker from CONVEYOR_BROKER_URL (set by the test)."""

from __future__ import annotations

import os
from typing import Any

from conveyor import Conveyor

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError(
        f"event_tasks needs CONVEYOR_BROKER_URL set by the test (got {BROKER_URL!r})"
    )

app = Conveyor("events", broker=BROKER_URL, broker_lease=1.5)


class Flaky(Exception):
    """What a partner API raises while it is down."""


@app.task(bind=True, max_retries=2)
def flaky(self: Any, x: int) -> int:
    if self.request.retries == 0:
        raise self.retry(exc=Flaky("partner API down"), countdown=0.3)
    return x * 2


@app.task
def boom(text: str) -> None:
    raise ValueError(f"bad input: {text}")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True)
def spawn(self: Any) -> str:
    """Sends a child task; returns its id."""
    return str(add.delay(1, 1).id)


@app.task(time_limit=1.5)
def sleepy() -> None:
    """Killed at its hard time limit: 1.5 s, so the worker's background write (of what
    waited 0.5 s, looked at every 0.25 s) has written its task-received and task-started
    before the kill (a killed process loses the events it had not written)."""
    import time

    time.sleep(30)
