"""Tasks that send others while they run, for test_lineage.py: a report that fans out one
task per region, a nightly job that sends a group and a chain, one that sends nothing, and
one that hangs past its hard time limit.

Registered on the sample app; workers load it with ``CONVEYOR_INCLUDE=lineage_tasks``.
"""

from __future__ import annotations

import time
from typing import Any

from sample_tasks import app

from conveyor import chain, group


@app.task(name="lineage.count_region")
def count_region(region: str) -> int:
    return len(region)


@app.task(name="lineage.total")
def total(counts: list[int]) -> int:
    return sum(counts)


@app.task(name="lineage.report", bind=True)
def report(self: Any, regions: list[str]) -> str:
    """Sends one count per region, the way a Celery project fans work out from a task."""
    for region in regions:
        count_region.delay(region)
    return "sent"


@app.task(name="lineage.nightly", bind=True)
def nightly(self: Any) -> str:
    """Sends a group of counts, then a chain that totals two of them."""
    group(count_region.s(r) for r in ("north", "south")).apply_async()
    chain(count_region.s("east"), count_region.si("west")).apply_async()
    return "scheduled"


@app.task(name="lineage.quiet")
def quiet() -> str:
    return "nothing sent"


@app.task(name="lineage.notify_all")
async def notify_all(regions: list[str]) -> int:
    """An ``async def`` task that sends without blocking its event loop."""
    for region in regions:
        await count_region.adelay(region)
    return len(regions)


@app.task(name="lineage.hang", time_limit=1)
def hang() -> None:
    """Hangs past its hard time limit: its process is killed, the supervisor stores why."""
    time.sleep(60)
