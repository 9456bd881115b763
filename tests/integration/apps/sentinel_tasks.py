"""Tasks for the Sentinel tests: each run is written down, so a test counts how often
every task ran, and on which connection to Redis it ended."""

from __future__ import annotations

import os
from pathlib import Path

from conveyor import Conveyor

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith("sentinel://"):
    raise RuntimeError("sentinel_tasks needs CONVEYOR_BROKER_URL=sentinel://... (tests set it)")

app = Conveyor("sentinel", broker=BROKER_URL, broker_lease=3)
RUNS = Path(os.environ.get("SENTINEL_RUNS", "/nonexistent"))


@app.task
def note(n: int) -> int:
    with (RUNS / f"{os.getpid()}.log").open("a") as log:
        log.write(f"{n}\n")
    return n
