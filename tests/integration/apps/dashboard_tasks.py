"""Tasks the dashboard's browser tests watch and steer, on CONVEYOR_BROKER_URL.

``DASHBOARD_WITHOUT_FIX=1`` leaves ``report`` unregistered, as a worker deployed before a
task existed: its messages go to the dead letters, and a worker with the fix can then run
them when an operator re-sends them from the dashboard.
"""

from __future__ import annotations

import os
import time

from conveyor import Conveyor

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError("dashboard_tasks needs CONVEYOR_BROKER_URL (the tests set it)")

app = Conveyor("dashboard", broker=BROKER_URL, broker_lease=2)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


@app.task(dashboard_mask=["password", "token"])
def sign_in(user: str, password: str) -> dict[str, str]:
    return {"user": user, "token": f"tok-{password}"}


if os.environ.get("DASHBOARD_WITHOUT_FIX") != "1":

    @app.task
    def report(day: str) -> str:
        return f"report for {day}"


@app.task
def import_feed(path: str) -> int:
    """Fails until the feed file exists: an operator fixes it, then retries from the page."""
    with open(path) as feed:
        return len(feed.read().split())


@app.task
def double(x: int) -> int:
    return 2 * x
