#!/usr/bin/env python
"""The async client's polling for quick replies (``LoopSpin``), on and off, in one run: an
interleaved A/B of the client, where ``bench/async_ab.py`` is one of the worker.

For each round a fresh ``conveyor worker -c 1`` (``--pool``) on one private redis-server,
and one uvloop client (this process) sending ``await noop.adelay()`` then ``await
result.aget()``, one after another, in ``--blocks`` alternating blocks of ``--block``:
in "off" blocks the client's async links poll for nothing (``reply_spin`` and
``result_spin`` of 0, as ``?reply_spin=0&result_spin=0`` sets them), in "on" blocks they
poll for the URL's defaults (500 and 1000 us). Per side: the round trip's p50 and p90, and
the client's CPU per round trip (its process time; polling spends CPU to save latency).

    python bench/async_spin_ab.py [--rounds 3] [--blocks 20] [--block 150]
        [--pool asyncio|prefork]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
WARMUP = 300
SETTLE = 10
"""Round trips at the start of each block not counted: the first after a switch pays it."""


def links(app: Any) -> list[Any]:
    """The async Redis links of ``app``'s broker and result backend."""
    from conveyor.async_stores import async_backend, async_broker

    return [async_broker(app.broker).link, async_backend(app.backend).link]


async def measure(app: Any, blocks: int, block: int) -> dict[str, dict[str, list[float]]]:
    noop = app.tasks["bench.anoop"]
    sides: dict[str, dict[str, list[float]]] = {
        side: {"times": [], "cpu": []} for side in ("off", "on")
    }
    for _ in range(WARMUP):
        await (await noop.adelay()).aget(timeout=30)
    defaults = [(link.replies.limit, link.results.limit) for link in links(app)]
    for n in range(blocks):
        side = "on" if n % 2 else "off"
        for link, (replies, results) in zip(links(app), defaults, strict=True):
            link.replies.limit = replies if side == "on" else 0
            link.results.limit = results if side == "on" else 0
        for _ in range(SETTLE):
            await (await noop.adelay()).aget(timeout=30)
        cpu = time.process_time()
        for _ in range(block):
            began = time.perf_counter()
            await (await noop.adelay()).aget(timeout=30)
            sides[side]["times"].append(time.perf_counter() - began)
        sides[side]["cpu"].append((time.process_time() - cpu) / block)
    return sides


def one_round(url: str, pool: str, blocks: int, block: int, workdir: Path) -> dict[str, Any]:
    import uvloop
    from async_bench import make_app, start_worker, stop_worker

    proc = start_worker(url, workdir, 100, pool)  # 100: the default --async-concurrency
    app = make_app(url)
    try:
        return uvloop.run(measure(app, blocks, block))
    finally:
        stop_worker(proc)
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh workers, one by one")
    parser.add_argument("--blocks", type=int, default=20, help="alternating blocks per round")
    parser.add_argument("--block", type=int, default=150, help="round trips per block")
    parser.add_argument("--pool", choices=("asyncio", "prefork"), default="asyncio")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH_DIR))
    import run as harness  # bench/run.py: its private redis-server and process groups

    rounds: list[dict[str, Any]] = []
    with harness.private_redis("conveyor-spin-ab-") as (redis_server, workdir):
        for n in range(args.rounds):
            print(f"round {n + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
            url = redis_server.fresh_url()
            rounds.append(one_round(url, args.pool, args.blocks, args.block, workdir))
    print()
    print(f"async no-op round trips against `worker -c 1 -P {args.pool}`, the client's "
          f"polling off and on in alternating blocks of {args.block}; {args.rounds} round(s) "
          f"of {args.blocks} blocks")  # fmt: skip
    print()
    header = (f"{'round':<7}{'off p50 us':>12}{'on p50 us':>11}{'on - off':>10}{'off p90 us':>12}"
              f"{'on p90 us':>11}{'off cpu us/rt':>15}{'on cpu us/rt':>14}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for n, sides in enumerate(rounds, 1):
        row = {}
        for side in ("off", "on"):
            times = sorted(sides[side]["times"])
            row[side] = (
                statistics.median(times) * 1e6,
                times[int(len(times) * 0.9)] * 1e6,
                statistics.median(sides[side]["cpu"]) * 1e6,
            )
        (off50, off90, offcpu), (on50, on90, oncpu) = row["off"], row["on"]
        print(f"{n:<7}{off50:>12.1f}{on50:>11.1f}{on50 - off50:>+10.1f}"
              f"{off90:>12.1f}{on90:>11.1f}{offcpu:>15.0f}{oncpu:>14.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
