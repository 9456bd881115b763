#!/usr/bin/env python
"""How fast the dashboard's task list answers with many stored tasks.

Stores N task records (default 100,000: mostly SUCCESS, every 50th a FAILURE, ten task
names, two workers) in a fresh result store, then times requests to the task list through
the dashboard's ASGI app in this process (Starlette's test client: the server-side work,
no network): the newest page, a filtered page, a page deep in the list, a task's page and
the overview. The store filters and pages, so the newest page should cost about the same
at 1,000 and at 100,000 records; the table shows both.

    python bench/dashboard_bench.py [--broker sqlite|redis] [--tasks 100000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import SIGNALS, PrivateRedis, Processes, workspace  # noqa: E402

PAGES = {
    "task list, newest page": "/tasks",
    "task list, FAILURE only": "/tasks?state=FAILURE",
    "task list, one name, 1 h": "/tasks?name=bench.task3&since=1h",
    "task list, page 100": "/tasks?page=100",
    "one task's page": "/tasks/{some_id}",
}


def fill(app: object, count: int) -> str:
    from conveyor import states
    from conveyor.records import TaskRecord

    results = app.results  # type: ignore[attr-defined]
    now = time.time()
    some_id = ""
    batch = []
    for n in range(count):
        failed = n % 50 == 0
        record = TaskRecord(
            status=states.FAILURE if failed else states.SUCCESS,
            result="ValueError: bench" if failed else n,
            task=f"bench.task{n % 10}",
            worker=f"w{n % 2}@bench",
            date_done=now - (count - n) * 0.01,
        )
        task_id = f"bench-{n:08d}"
        batch.append((task_id, record))
        if len(batch) == 1000:
            for tid, rec in batch:
                results.write(tid, rec)
            batch.clear()
        some_id = task_id
    for tid, rec in batch:
        results.write(tid, rec)
    return some_id


def time_pages(client: object, some_id: str, repeat: int) -> dict[str, tuple[float, float]]:
    timings: dict[str, tuple[float, float]] = {}
    for label, path in PAGES.items():
        url = path.format(some_id=some_id)
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            response = client.get(url)  # type: ignore[attr-defined]
            samples.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        samples.sort()
        timings[label] = (statistics.median(samples), samples[int(len(samples) * 0.95) - 1])
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    from starlette.testclient import TestClient

    from conveyor import Conveyor
    from conveyor.dashboard import create_app

    processes = Processes()
    SIGNALS.install()
    rows = []
    with workspace(False) as work:
        redis = None
        if args.broker == "redis":
            redis = PrivateRedis(work, processes)
            redis.start()
        try:
            for count in (1000, args.tasks):
                url = (
                    redis.fresh_url()
                    if redis is not None
                    else f"sqlite:///{work / f'dash-{count}.db'}"
                )
                app = Conveyor("bench", broker=url, result_expires=7 * 86400)
                started = time.perf_counter()
                some_id = fill(app, count)
                filled = time.perf_counter() - started
                with TestClient(create_app(app)) as client:
                    for label, (p50, p95) in time_pages(client, some_id, args.repeat).items():
                        rows.append((count, label, p50, p95))
                print(f"stored {count:,} records in {filled:.1f} s", file=sys.stderr)
        finally:
            processes.stop_all()
    print(f"\nDashboard pages on {args.broker} ({args.repeat} requests each, server side)\n")
    print("| stored tasks | page | p50 ms | p95 ms |\n|---:|---|---:|---:|")
    for count, label, p50, p95 in rows:
        print(f"| {count:,} | {label} | {p50:.1f} | {p95:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
