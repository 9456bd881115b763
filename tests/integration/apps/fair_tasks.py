"""Tasks for the fair-dispatch tests: each run appends its start and end to a JSON-lines
file, with the worker and process that ran it, so a test sees who waited behind whom.

The app takes its broker from CONVEYOR_BROKER_URL (a SQLite file or a private Redis with a
prefix of the test's own). ``task_max_deliveries`` is 2, so a message counted twice more
than it ran would end in the dead letters.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError(f"fair_tasks needs CONVEYOR_BROKER_URL set by the test (got {BROKER_URL!r})")

app = Conveyor("fair", broker=BROKER_URL, task_max_deliveries=2)


def _log(path: str, **fields: Any) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"pid": os.getpid(), "at": time.time(), **fields}) + "\n")


def runs(path: str | Path) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line]


@app.task(bind=True)
def nap(self: Any, log: str, name: str, seconds: float) -> int:
    """Sleep ``seconds``; its delivery count is the result."""
    fields = {"name": name, "worker": self.request.hostname}
    _log(log, event="start", delivery=self.request.delivery_count, **fields)
    time.sleep(seconds)
    _log(log, event="end", **fields)
    return int(self.request.delivery_count)
