"""Tasks and a custom control command for the operations tests (registry, inspect, control).

The app takes its broker from CONVEYOR_BROKER_URL (a SQLite file or a private Redis with a
prefix of the test's own). Its broker lease is two seconds, so a worker's heartbeat comes
every 0.67 s and a killed worker reads as lost after 2 s and leaves the registry after 4 s.
"""

from __future__ import annotations

import os
import time
from typing import Any

from conveyor import Conveyor
from conveyor.control import control_command

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError(f"ops_tasks needs CONVEYOR_BROKER_URL set by the test (got {BROKER_URL!r})")

app = Conveyor("ops", broker=BROKER_URL, broker_lease=2)


@app.task
def hold(gate: str, label: str = "") -> int:
    """Run until the gate file exists; the pid of the process that ran it."""
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


@app.task
def pid() -> int:
    return os.getpid()


@app.task
def fail() -> None:
    raise ValueError("fails on purpose")


@control_command
def shout(state: Any, word: str = "hello") -> dict[str, Any]:
    """A custom command: answers with the word, the worker's name and its queues."""
    return {"ok": word.upper(), "hostname": state.hostname, "queues": list(state.pool.queues)}
