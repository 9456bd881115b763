#!/usr/bin/env python
"""A drain with four worker processes against one Redis and against a three-shard Redis
Cluster, with each Redis's CPU per task.

Three queues, chosen on the cluster so that each lives on its own shard (``{q:<queue>}``
tags, docs/brokers.md), get N no-op tasks between them, sent in batches of 1,000 while four
``conveyor worker -c 1 -P prefork -Q q1,q2,q3`` drain them (results stored, as by default).
The rate is N over the time from the first send until the last result is stored. Redis
CPU is ``used_cpu_user + used_cpu_sys`` from ``INFO cpu`` of every server, before and
after, less each server's idle rate measured first (as bench/redis_cpu.py does).

``--lean``: results ignored and task events off (``CONVEYOR_TASK_IGNORE_RESULT``,
``CONVEYOR_WORKER_SEND_TASK_EVENTS``), so Redis does only the queues' work, which spreads.

    python bench/cluster_bench.py [--tasks 20000] [--rounds 2] [--lean]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from durable_bench import start_redis  # noqa: E402
from run import SIGNALS, Processes, free_port, workspace  # noqa: E402

WORKERS = 4
LEAN = {"CONVEYOR_TASK_IGNORE_RESULT": "true", "CONVEYOR_WORKER_SEND_TASK_EVENTS": "false"}
TAGS = {"the results' listing": "r", "coordinator": "c", "the queue names and events": "q"}
BATCH = 1000


def node_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 >= 65536:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def cluster_ports(work: Path, processes: Processes) -> list[int]:
    """Three cluster-enabled redis-servers joined with ``redis-cli --cluster create``."""
    import redis

    binary = shutil.which("redis-server") or "redis-server"
    ports = [node_port() for _ in range(3)]
    for i, port in enumerate(ports):
        node = work / f"node{i}"
        node.mkdir(parents=True)
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(node), "--cluster-enabled", "yes",
                "--cluster-config-file", str(node / "nodes.conf"),
                "--logfile", str(node / "redis.log")]  # fmt: skip
        processes.spawn(argv, dict(os.environ), node, subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    for port in ports:
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node on {port} did not start") from None
                time.sleep(0.02)
    cli = shutil.which("redis-cli") or "redis-cli"
    addresses = [f"127.0.0.1:{port}" for port in ports]
    subprocess.run([cli, "--cluster", "create", *addresses, "--cluster-yes"], check=True,
                   stdout=subprocess.DEVNULL, timeout=60)  # fmt: skip
    for port in ports:
        client = redis.Redis(port=port)
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline + 30:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.05)
    return ports


def spread_queues(port: int, prefix: str) -> list[str]:
    """Three queue names whose slots are on three different primaries."""
    import redis

    client = redis.Redis(port=port)
    shards = client.execute_command("CLUSTER", "SLOTS")
    chosen: dict[int, str] = {}
    for n in range(1000):
        name = f"q{n}"
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", f"{prefix}{{q:{name}}}:"))
        owner = next(int(s[2][1]) for s in shards if s[0] <= slot <= s[1])
        chosen.setdefault(owner, name)
        if len(chosen) == 3:
            return sorted(chosen.values())
    raise RuntimeError("no queue names found for three shards")


def key_spread(ports: list[int], prefix: str) -> list[tuple[int, int]]:
    """Per server: (keys in all, result keys): after a drain, what each shard holds."""
    import redis

    spread = []
    for port in ports:
        client = redis.Redis(port=port)
        results = sum(1 for _ in client.scan_iter(f"{prefix}{{r[0-9]*", count=1000))
        spread.append((int(client.dbsize()), results))
        client.close()
    return spread


def owner(port: int, key: str) -> int:
    """The port of the primary that owns ``key``'s slot."""
    import redis

    client = redis.Redis(port=port)
    slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
    shards = client.execute_command("CLUSTER", "SLOTS")
    return next(int(s[2][1]) for s in shards if s[0] <= slot <= s[1])


class Cpu:
    """Redis CPU seconds of each server, less its idle rate."""

    def __init__(self, ports: list[int]) -> None:
        import redis

        self.clients = [redis.Redis(port=port) for port in ports]
        self.idle = [0.0] * len(ports)
        start = self.read()
        time.sleep(1.0)
        self.idle = [after - before for before, after in zip(start, self.read(), strict=True)]

    def read(self) -> list[float]:
        infos = [client.info("cpu") for client in self.clients]
        return [float(i["used_cpu_user"]) + float(i["used_cpu_sys"]) for i in infos]


def drain(url: str, ports: list[int], queues: list[str], count: int, work: Path,
          processes: Processes) -> tuple[float, list[float]]:  # fmt: skip
    """Tasks per second, and Redis µs per task of each server."""
    sys.path.insert(0, str(BENCH_DIR))
    from tasks_conveyor import ENV_DB, make_app

    app, noop = make_app(url)
    env = {**os.environ, ENV_DB: url, "PYTHONPATH": str(BENCH_DIR)}
    argv = [sys.executable, "-m", "conveyor", "worker", "-A", "tasks_conveyor:app", "-c", "1",
            "-P", "prefork", "-l", "WARNING", "-Q", ",".join(queues)]  # fmt: skip
    handles = [
        processes.spawn(argv, env, work, (work / f"worker{i}.log").open("wb"))
        for i in range(WORKERS)
    ]
    time.sleep(3.0)  # the workers start and go idle
    cpu = Cpu(ports)
    before = cpu.read()
    start = time.perf_counter()
    last = None
    for first in range(0, count, BATCH):
        with app.batch():
            for n in range(first, min(count, first + BATCH)):
                last = noop.apply_async(queue=queues[n % len(queues)])
    while sum(s.total for s in app.broker.stats().values()):
        time.sleep(0.05)
    assert last is not None
    if "CONVEYOR_TASK_IGNORE_RESULT" not in os.environ:
        last.get(timeout=60)
    elapsed = time.perf_counter() - start
    after = cpu.read()
    for handle in handles:
        processes.stop(handle, grace=10.0)
    app.close()
    per_task = [
        (b - a - idle * elapsed) / count * 1e6
        for a, b, idle in zip(before, after, cpu.idle, strict=True)
    ]
    return count / elapsed, per_task


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lean", action="store_true", help="no results, no task events")
    parser.add_argument("--result-shards", type=int, default=None, help="the cluster URL's")
    args = parser.parse_args()
    if args.lean:
        os.environ.update(LEAN)
    else:
        for name in LEAN:
            os.environ.pop(name, None)
    SIGNALS.install()
    processes = Processes()
    rows: dict[str, list[tuple[float, list[float]]]] = {"one Redis": [], "cluster": []}
    spread: list[tuple[int, int]] = []
    with workspace(False) as work:
        try:
            single = start_redis(work / "single", processes)
            ports = cluster_ports(work, processes)
            queues = spread_queues(ports[0], "bench:")
            homes = {name: owner(ports[0], f"bench:{{{tag}}}:") for name, tag in TAGS.items()}
            for r in range(args.rounds):
                rows["one Redis"].append(drain(
                    f"redis://127.0.0.1:{single}/0?prefix=bench{r}:", [single], queues,
                    args.tasks, work, processes))  # fmt: skip
                shards = f"&result_shards={args.result_shards}" if args.result_shards else ""
                rows["cluster"].append(drain(
                    f"redis+cluster://127.0.0.1:{ports[0]}?prefix=bench:{shards}", ports, queues,
                    args.tasks, work, processes))  # fmt: skip
                spread = key_spread(ports, "bench:")
                for port in [single, *ports]:
                    import redis

                    redis.Redis(port=port).flushall()  # private servers of this bench
        finally:
            processes.stop_all()
    lean = ", results ignored and task events off" if args.lean else ""
    print(
        f"\nDrain of {args.tasks:,} no-op tasks{lean} over 3 queues, {WORKERS} workers (-c 1 -P "
        f"prefork), median of {args.rounds} rounds; Redis CPU µs per task\n"
    )
    where = ", ".join(f"{name} on shard {ports.index(port) + 1}" for name, port in homes.items())
    print(f"Cluster shards 1-3 each hold one queue; {where}.\n")
    print("| target | tasks/s | Redis µs/task, per server | total µs/task |")
    print("|---|---:|---|---:|")
    for name, values in rows.items():
        rate = statistics.median(v[0] for v in values)
        servers = [statistics.median(v[1][i] for v in values) for i in range(len(values[0][1]))]
        shown = " / ".join(f"{s:.1f}" for s in servers)
        print(f"| {name} | {rate:,.0f} | {shown} | {sum(servers):.1f} |")
    if spread:
        shown = " / ".join(f"{keys:,} ({results:,} results)" for keys, results in spread)
        print(f"\nKeys on shards 1-3 after the last cluster drain (DBSIZE): {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
