#!/usr/bin/env python
"""What durable mode costs: sends one by one, sends batched, and a drain, on a private
primary with one replica, with ``durable`` off and ``durable=replica``, in alternating
rounds (so the machine's drift hits both).

    python bench/durable_bench.py [--tasks 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import SIGNALS, Processes, free_port, workspace  # noqa: E402


def start_redis(directory: Path, processes: Processes, *extra: str) -> int:
    import redis

    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    binary = shutil.which("redis-server") or "redis-server"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory), "--daemonize", "no", *extra]  # fmt: skip
    processes.spawn(argv, dict(os.environ), directory, subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            return port
        except redis.RedisError:
            time.sleep(0.01)
    raise RuntimeError("redis-server did not start")


def measure(url: str, count: int) -> tuple[float, float]:
    from conveyor import Conveyor

    app = Conveyor("bench", broker=url)

    @app.task(name="bench.noop")
    def noop() -> None: ...

    start = time.perf_counter()
    for _ in range(count):
        noop.delay()
    one_by_one = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for first in range(0, count, 100):
        with app.batch():  # one round trip (and in durable mode one WAIT) per 100 sends
            for _ in range(min(100, count - first)):
                noop.delay()
    batched = count / (time.perf_counter() - start)
    app.broker.purge(None)
    return one_by_one, batched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import redis

    SIGNALS.install()
    processes = Processes()
    rates: dict[str, list[tuple[float, float]]] = {"off": [], "replica": []}
    with workspace(False) as work:
        try:
            primary = start_redis(work / "primary", processes)
            start_redis(work / "replica", processes, "--replicaof", "127.0.0.1", str(primary))
            client = redis.Redis(port=primary)
            deadline = time.monotonic() + 20
            while (client.info("replication").get("slave0") or {}).get("state") != "online":
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the replica did not catch up: {client.info('replication')}"
                    )
                time.sleep(0.05)
            base = f"redis://127.0.0.1:{primary}/0"
            for _ in range(args.rounds):
                rates["off"].append(measure(base, args.tasks))
                rates["replica"].append(measure(f"{base}?durable=replica", args.tasks))
        finally:
            processes.stop_all()
    print(f"\nSends per second, {args.tasks} tasks, median of {args.rounds} rounds "
          "(a primary and one replica on loopback)\n")  # fmt: skip
    print("| durable | one by one | batched |\n|---|---:|---:|")
    for mode, values in rates.items():
        one = statistics.median(v[0] for v in values)
        many = statistics.median(v[1] for v in values)
        print(f"| {mode} | {one:,.0f} | {many:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
