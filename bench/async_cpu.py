#!/usr/bin/env python
"""What an async no-op costs the worker's processes and Redis, per pool, in one run.

For each pool (``conveyor worker -c 1 -P prefork`` and ``-P asyncio``), in alternating
pairs on one private redis-server: ``--roundtrips`` one-by-one ``await adelay()`` +
``await aget()`` from a uvloop client (p50, and the CPU the client, the worker's process
tree and Redis spent per round trip: the client's process time, /proc's utime+stime of the
worker's process group, INFO cpu),
then ``3 x --roundtrips`` async no-ops sent in batches and drained (tasks/s and the
worker's CPU per task). CPU time moves less than latency on a shared machine, which is why
this exists beside bench/async_peers.py.

    python bench/async_cpu.py [--roundtrips 3000] [--pairs 2] [--pool asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
POOLS = ("prefork", "asyncio")


def worker_cpu(group: int) -> float:
    """Seconds of CPU the processes of a process group have used."""
    listed = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True)
    total = 0
    for pid in listed.stdout.split():
        with suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"] + info["used_cpu_sys"])


async def measure(app: Any, client: Any, group: int, count: int) -> dict[str, float]:
    noop = app.tasks["bench.anoop"]
    for _ in range(20):
        await (await noop.adelay()).aget(timeout=30)
    cpu, rcpu, own, times = worker_cpu(group), redis_cpu(client), time.process_time(), []
    for _ in range(count):
        began = time.perf_counter()
        await (await noop.adelay()).aget(timeout=30)
        times.append(time.perf_counter() - began)
    row = {
        "client_us_rt": (time.process_time() - own) / count * 1e6,
        "rt_p50_ms": statistics.median(times) * 1000,
        "worker_us_rt": (worker_cpu(group) - cpu) / count * 1e6,
        "redis_us_rt": (redis_cpu(client) - rcpu) / count * 1e6,
    }
    drained = 3 * count
    with app.batch():
        last = [noop.delay() for _ in range(drained)][-1]
    cpu, began = worker_cpu(group), time.perf_counter()
    await last.aget(timeout=300)
    while sum(s.total for s in app.broker.stats().values()):
        await asyncio.sleep(0.01)
    row["drain_per_s"] = drained / (time.perf_counter() - began)
    row["worker_us_task"] = (worker_cpu(group) - cpu) / drained * 1e6
    return row


def one(url: str, pool: str, count: int, workdir: Path) -> dict[str, float]:
    import redis
    import uvloop
    from async_bench import make_app, start_worker, stop_worker

    proc = start_worker(url, workdir, 100, pool)  # 100: the default --async-concurrency
    app, client = make_app(url), redis.Redis.from_url(url)
    try:
        return uvloop.run(measure(app, client, proc.pid, count))
    finally:
        stop_worker(proc)
        app.close()
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roundtrips", type=int, default=3000)
    parser.add_argument("--pairs", type=int, default=2, help="alternating runs of each pool")
    parser.add_argument("--pool", choices=POOLS, action="append", help="only these pools")
    args = parser.parse_args()
    pools = args.pool or POOLS
    sys.path.insert(0, str(BENCH_DIR))
    import run as harness  # bench/run.py: its private redis-server and process groups

    rows: dict[str, list[dict[str, float]]] = {pool: [] for pool in pools}
    with harness.private_redis("conveyor-async-cpu-") as (redis_server, workdir):
        for n in range(args.pairs):
            for pool in pools:
                print(f"{pool}: run {n + 1} of {args.pairs} ...", file=sys.stderr, flush=True)
                url = redis_server.fresh_url()
                rows[pool].append(one(url, pool, args.roundtrips, workdir))
    print()
    print(f"async no-ops, one worker process (-c 1), {args.roundtrips} round trips then "
          f"{3 * args.roundtrips:,} drained, {args.pairs} alternating run(s) per pool")  # fmt: skip
    print()
    header = (f"{'pool':<9}{'rt p50 ms':>10}{'client us/rt':>14}{'worker us/rt':>14}"
              f"{'redis us/rt':>13}{'drain/s':>10}{'worker us/task':>16}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for pool, runs in rows.items():
        for row in runs:
            print(f"{pool:<9}{row['rt_p50_ms']:>10.3f}{row['client_us_rt']:>14.0f}"
                  f"{row['worker_us_rt']:>14.0f}"
                  f"{row['redis_us_rt']:>13.0f}{row['drain_per_s']:>10,.0f}"
                  f"{row['worker_us_task']:>16.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
