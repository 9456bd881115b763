#!/usr/bin/env python
"""The async client's speed beside the sync client's, in one run on one machine.

Rows, for each broker asked for (a private redis-server that this script starts and
stops, and/or a SQLite file in a temp dir):

- round trip p50/p90/p99: one no-op sent and its result awaited, one after another,
  against an idle single-process worker: ``await (await noop.adelay()).aget()`` beside
  ``noop.delay().get()``. The two are measured in alternating blocks, so a neighbour's
  load on the machine falls on both alike.
- send, one by one: N sends awaited one after another (``await noop.adelay()``) beside N
  ``noop.delay()`` calls; no worker runs, the queue just fills.
- send, concurrent: the same N sends from ``--in-flight`` coroutines at once
  (``asyncio.gather``), the way a busy web server sends.
- round trips, concurrent: ``--in-flight`` coroutines each sending and awaiting in turn
  (``--roundtrips`` in all) against the same single-process worker: a web server whose
  requests each wait for a task.

The client runs on uvloop when it is installed, as a uvicorn app does (``--asyncio-client``:
on asyncio's loop); the worker picks its own loop (uvloop's when installed).

Target (issue 18): the async round trip p50 under 0.5 ms on Redis.

    python bench/async_client_bench.py [--broker redis|sqlite|both] [--roundtrips 1000]
        [--sends 5000] [--in-flight 50] [--keep] [--asyncio-client]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import floor  # the host's floor for a round trip through Redis
import run  # the bench's private Redis, process handling and the Conveyor peer

BLOCK = 50
"""Round trips per alternating block."""
TARGET_P50_MS = 0.5


def quantiles(samples: Sequence[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98]}


async def roundtrips(peer: Any, count: int) -> tuple[dict[str, float], dict[str, float]]:
    """(sync, async) round-trip quantiles in ms, measured in alternating blocks."""
    noop = peer.noop
    sync_ms: list[float] = []
    async_ms: list[float] = []
    for _ in range(run.WARMUP_ROUNDTRIPS):
        await (await noop.adelay()).aget(timeout=10)
    done = 0
    while done < count:
        block = min(BLOCK, count - done)
        # the sync client blocks on purpose here: nothing else runs on this loop
        sync_ms += await asyncio.to_thread(_sync_block, noop, block)
        for _ in range(block):
            start = time.perf_counter()
            await (await noop.adelay()).aget(timeout=10)
            async_ms.append((time.perf_counter() - start) * 1000)
        done += block
    return quantiles(sync_ms), quantiles(async_ms)


async def concurrent_roundtrips(peer: Any, count: int, in_flight: int) -> float:
    """Round trips per second with ``in_flight`` coroutines each sending and awaiting."""
    noop = peer.noop
    per = max(1, count // in_flight)

    async def client() -> None:
        for _ in range(per):
            await (await noop.adelay()).aget(timeout=30)

    return (
        per * in_flight / await timed(lambda: asyncio.gather(*(client() for _ in range(in_flight))))
    )


def _sync_block(noop: Any, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        noop.delay().get(timeout=10)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def timed(work: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def send_rates(peer: Any, count: int, in_flight: int) -> dict[str, float]:
    """Sends per second: sync one by one, async one by one, async concurrent."""
    noop = peer.noop

    def sync_sends() -> None:
        delay = noop.delay
        for _ in range(count):
            delay()

    async def async_sends() -> None:
        adelay = noop.adelay
        for _ in range(count):
            await adelay()

    async def concurrent_sends() -> None:
        per = count // in_flight

        async def sender() -> None:
            adelay = noop.adelay
            for _ in range(per):
                await adelay()

        await asyncio.gather(*(sender() for _ in range(in_flight)))

    rates = {}
    start = time.perf_counter()
    await asyncio.to_thread(sync_sends)
    rates["sync"] = count / (time.perf_counter() - start)
    peer.purge()
    rates["async"] = count / await timed(async_sends)
    peer.purge()
    rates["concurrent"] = (count // in_flight * in_flight) / await timed(concurrent_sends)
    peer.purge()
    return rates


def measure(broker: str, args: argparse.Namespace, workdir: Path, processes: Any) -> dict[str, Any]:
    redis = None
    if broker == "redis":
        redis = run.PrivateRedis(workdir, processes)
        redis.start()
    peer = run.ConveyorPeer(workdir, processes, redis)
    out: dict[str, Any] = {}
    if redis is not None:  # first, with nothing else running
        out["floor"] = floor.measure(redis.fresh_url(), args.roundtrips)
    try:
        peer.open("sends")
        out["sends"] = asyncio.run(send_rates(peer, args.sends, args.in_flight))
        peer.open("roundtrips")
        log = open(workdir / f"worker-{broker}.log", "wb")  # noqa: SIM115 - closed below
        proc = peer.start_worker(log)
        try:
            run.wait_until_serving(peer, proc)
            out["sync_rt"], out["async_rt"] = asyncio.run(roundtrips(peer, args.roundtrips))
            out["concurrent_rt"] = asyncio.run(
                concurrent_roundtrips(peer, args.roundtrips, args.in_flight)
            )
        finally:
            processes.stop(proc)
            log.close()
    finally:
        peer.close()
    return out


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"async client bench: {args.roundtrips} round trips, {args.sends} sends, "
        f"{args.in_flight} coroutines for the concurrent sends; one worker process (-c 1); "
        f"client loop: {args.loop}",
        "",
        f"{'':34}" + "".join(f"{name:>18}" for name in results),
    ]

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"{label:34}" + "".join(f"{cell(r):>18}" for r in results.values()))

    for q in ("p50", "p90", "p99"):
        row(f"round trip {q}, await (ms)", lambda r, q=q: f"{r['async_rt'][q]:.3f}")
        row(f"round trip {q}, sync get() (ms)", lambda r, q=q: f"{r['sync_rt'][q]:.3f}")
    row("send one by one, await (/s)", lambda r: f"{r['sends']['async']:,.0f}")
    row("send one by one, sync (/s)", lambda r: f"{r['sends']['sync']:,.0f}")
    row("send concurrent, await (/s)", lambda r: f"{r['sends']['concurrent']:,.0f}")
    row("round trips concurrent, await (/s)", lambda r: f"{r['concurrent_rt']:,.0f}")
    if "redis" in results:
        p50 = results["redis"]["async_rt"]["p50"]
        verdict = "ok" if p50 < TARGET_P50_MS else "MISSED"
        host = results["redis"]["floor"]
        times = p50 / host["echo_p50_ms"]
        lines += ["", floor.describe(host),
                  f"target: async round trip p50 on Redis < {TARGET_P50_MS} ms: "
                  f"{p50:.3f} ms {verdict} ({times:.2f}x the floor)"]  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=("redis", "sqlite", "both"), default="redis")
    parser.add_argument("--roundtrips", type=int, default=1000)
    parser.add_argument("--sends", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument(
        "--asyncio-client",
        action="store_true",
        help="the client on asyncio's loop (default: uvloop's when installed, as uvicorn does)",
    )
    args = parser.parse_args(argv)
    args.loop = "asyncio"
    if not args.asyncio_client:
        with suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            args.loop = "uvloop"
    brokers = ("redis", "sqlite") if args.broker == "both" else (args.broker,)
    processes = run.Processes()
    results: dict[str, dict[str, Any]] = {}
    try:
        with run.workspace(args.keep) as workdir:
            for broker in brokers:
                print(f"measuring on {broker} ...", file=sys.stderr)
                results[broker] = measure(broker, args, workdir, processes)
    finally:
        processes.stop_all()
    print(render(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
