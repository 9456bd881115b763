#!/usr/bin/env python
"""An interleaved A/B of two workers' source trees: the async round trip of each, measured
in alternating blocks from one client, so the host's drift falls on both alike.

Runs done one after another (``async_cpu.py``, ``async_peers.py``) move by 50-100 us of
round trip p50 on a shared 2-core machine, more than most single changes to the worker's
path are worth. Here both workers run at once, each ``conveyor worker -c 1`` on its own
database of one private redis-server, started with ``PYTHONPATH`` set to its tree; the
client (this process, the caller's tree) sends ``await noop.adelay()`` then ``await
result.aget()`` to one worker for a block of ``--block`` round trips, then to the other,
the order flipping every block. One worker process also differs from the next of the same
tree (hash seeds, addresses, which core it lands on: an A/A pair of single workers read
-32 us here), so this is repeated for ``--rounds`` pairs of fresh workers, started in
alternating order, and the median of the rounds' differences is the figure. The same tree
on both sides (an A/A run) shows the method's own noise.

    git worktree add /tmp/before HEAD
    python bench/async_ab.py /tmp/before/src src [--rounds 6] [--blocks 20]
        [--block 100] [--pool asyncio|prefork] [--task async|def]

Only the worker's tree changes between A and B: a change to the client is measured with
``async_cpu.py`` (its client CPU column) instead. A tree may list several directories
(``src:/tmp/whatif``): one holding a ``sitecustomize.py`` that patches the worker tries an
idea before it is written properly.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
TASKS = {"async": "bench.anoop", "def": "bench.ping"}
WARMUP = 300
SETTLE = 10
"""Round trips sent to a worker at the start of each of its blocks and not counted: the
first after a pause finds it asleep in its broker wait, not in the cycle being measured."""


async def measure(
    apps: dict[str, Any], task: str, blocks: int, block: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {side: [] for side in apps}
    for app in apps.values():
        for _ in range(WARMUP):
            await (await app.tasks[task].adelay()).aget(timeout=30)
    sides = list(apps)
    for n in range(blocks):
        for side in sides if n % 2 == 0 else reversed(sides):
            noop = apps[side].tasks[task]
            for _ in range(SETTLE):
                await (await noop.adelay()).aget(timeout=30)
            for _ in range(block):
                began = time.perf_counter()
                await (await noop.adelay()).aget(timeout=30)
                times[side].append(time.perf_counter() - began)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree_a", help="the src directory of the first tree")
    parser.add_argument("tree_b", help="the src directory of the second tree")
    parser.add_argument("--rounds", type=int, default=6, help="pairs of fresh workers")
    parser.add_argument("--blocks", type=int, default=20, help="blocks per worker and round")
    parser.add_argument("--block", type=int, default=100, help="round trips per block")
    parser.add_argument("--pool", choices=("asyncio", "prefork"), default="asyncio")
    parser.add_argument("--task", choices=tuple(TASKS), default="async")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH_DIR))
    import run as harness  # its private redis-server and process groups

    trees = {"A": args.tree_a, "B": args.tree_b}
    rounds: list[dict[str, list[float]]] = []
    with harness.private_redis("conveyor-async-ab-") as (redis_server, workdir):
        for n in range(args.rounds):
            print(f"round {n + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
            order = list(trees) if n % 2 == 0 else list(reversed(trees))
            rounds.append(one_round(trees, order, redis_server, args, workdir))
    print()
    print(f"{args.task} no-op round trips against `worker -c 1 -P {args.pool}`: "
          f"{args.rounds} rounds of two fresh workers, each round {args.blocks} alternating "
          f"blocks of {args.block} per tree")  # fmt: skip
    print()
    header = f"{'round':<7}{'A p50 us':>10}{'B p50 us':>10}{'B - A us':>10}"
    print(header)
    print("-" * len(header))
    for n, times in enumerate(rounds, 1):
        a, b = (statistics.median(times[side]) * 1e6 for side in trees)
        print(f"{n:<7}{a:>10.1f}{b:>10.1f}{b - a:>+10.1f}")
    print()
    for side, tree in trees.items():
        samples = [t for times in rounds for t in times[side]]
        cuts = statistics.quantiles(samples, n=10, method="inclusive")
        p50 = statistics.median(samples)
        print(f"{side} {tree}: p10 {cuts[0] * 1e6:.1f}, p50 {p50 * 1e6:.1f}, "
              f"p90 {cuts[8] * 1e6:.1f} us")  # fmt: skip
    diffs = [statistics.median(t["B"]) - statistics.median(t["A"]) for t in rounds]
    print(f"B - A at p50, median of the rounds: {statistics.median(diffs) * 1e6:+.1f} us "
          f"(from {min(diffs) * 1e6:+.1f} to {max(diffs) * 1e6:+.1f})")  # fmt: skip
    return 0


def one_round(
    trees: dict[str, str], order: list[str], redis_server: Any, args: Any, workdir: Path
) -> dict[str, list[float]]:
    """Start a worker of each tree (in ``order``), measure them interleaved, stop them."""
    import uvloop
    from async_bench import make_app, start_worker, stop_worker

    workers: list[subprocess.Popen[bytes]] = []
    apps: dict[str, Any] = {}
    try:
        for side in order:
            url = redis_server.fresh_url()
            logs = workdir / f"worker-{len(list(workdir.glob('worker-*')))}"
            logs.mkdir()
            parts = trees[side].split(os.pathsep)
            tree = os.pathsep.join(str(Path(part).resolve()) for part in parts)
            workers.append(start_worker(url, logs, 100, args.pool, tree))  # 100: the default
            apps[side] = make_app(url)
        return uvloop.run(measure(apps, TASKS[args.task], args.blocks, args.block))
    finally:
        for worker in workers:
            stop_worker(worker)
        for app in apps.values():
            app.close()


if __name__ == "__main__":
    sys.exit(main())
