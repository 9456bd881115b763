"""Tasks for the Redis Cluster tests: each run is written down (pid and number), so a test
counts how often every task ran."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor import Conveyor

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if "+cluster://" not in BROKER_URL:
    raise RuntimeError("cluster_tasks needs CONVEYOR_BROKER_URL=redis+cluster://... (tests set it)")

app = Conveyor("cluster", broker=BROKER_URL)
RUNS = Path(os.environ.get("CLUSTER_RUNS", "/nonexistent"))


@app.task
def note(n: int) -> int:
    with (RUNS / f"{os.getpid()}.log").open("a") as log:
        log.write(f"{n}\n")
    return n


@app.task
def slow_note(n: int) -> int:
    time.sleep(0.01)
    return note(n)


@app.task
def total(values: list[int]) -> int:
    return sum(values)
