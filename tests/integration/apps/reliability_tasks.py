"""Tasks that try to trip the worker: results it cannot store, retries it cannot send,
poison tasks that kill their process, keys that cannot be formed.

The app takes its broker from CONVEYOR_BROKER_URL (a SQLite file or a private Redis with a
prefix of the test's own); each task appends a line to a file per run, so a test counts
how often the task really ran.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor import Conveyor

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError(
        f"reliability_tasks needs CONVEYOR_BROKER_URL set by the test (got {BROKER_URL!r})"
    )

app = Conveyor("reliability", broker=BROKER_URL, broker_lease=2)


def ran(path: str, **fields: Any) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"pid": os.getpid(), **fields}) + "\n")


def runs(path: str | Path) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line]


class Connection:
    """What a careless task returns: a live object, not data."""


@app.task
def returns_connection(log: str) -> Any:
    ran(log)
    return {"conn": Connection()}


@app.task
def promises_int(log: str) -> int:
    ran(log)
    return "twelve"  # type: ignore[return-value]


@app.task(bind=True, max_retries=3)
def retries_with_a_lambda(self: Any, log: str) -> None:
    ran(log, retries=self.request.retries)
    raise self.retry(args=[lambda: None], countdown=0)


@app.task(bind=True, max_retries=3)
def retries_too_big(self: Any, log: str) -> None:
    ran(log, retries=self.request.retries)
    raise self.retry(args=[log, "x" * (2 * 1024 * 1024)], countdown=0)


@app.task(lock="report-{day}")
def locked_on_a_missing_argument(log: str) -> None:
    ran(log)


@app.task
def record(log: str, label: str) -> str:
    ran(log, label=label)
    return label


@app.task
def crash(log: str) -> None:
    """Kill the process that runs it, as a segfault or os._exit in a C library would."""
    ran(log)
    os._exit(13)


@app.task
async def acrash(log: str) -> None:
    """The same from a coroutine: its process dies on the event loop."""
    ran(log)
    os._exit(13)


@app.task
def hold(log: str, gate: str, label: str = "") -> str:
    ran(log, label=label, started=time.time())
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return label


@app.task
def trips_the_worker(log: str) -> None:
    ran(log)


def _trip(task: Any, context: Any) -> None:
    """A worker-side hook that fails for one task, as a bug in the worker would."""
    if task.name == trips_the_worker.name:
        raise RuntimeError("a bug in the worker's own code")


app.on_task_start.append(_trip)


def logged(fun: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fun(*args, **kwargs)

    return wrapper


@app.task(bind=True)
@logged
def decorated_bound(self: Any, log: str, value: int) -> dict[str, Any]:
    ran(log)
    return {"task": self.name, "id": self.request.id, "value": value}


@app.task
def square(x: int) -> int:
    return x * x


class Unavailable(Exception):
    """What a partner API raises while it is down."""


@app.task(bind=True, max_retries=1)
def retries_later(self: Any, log: str) -> str:
    ran(log, retries=self.request.retries)
    if self.request.retries == 0:
        raise self.retry(exc=Unavailable("partner API down"), countdown=60)
    return "done"
