#!/usr/bin/env python
"""Redis's own CPU per task, split by phase, for Conveyor and its peers in one run.

Why Redis CPU: one Redis core carries every worker and producer of a deployment, so its
microseconds per task bound the whole system's rate. ``INFO commandstats`` misleads for
script-heavy clients (a command inside a Lua script is counted both inside and as the
script), so this reads ``INFO cpu`` (``used_cpu_user + used_cpu_sys``) before and after
each phase, on a private redis-server nobody else talks to, and subtracts the server's
idle rate (measured first) times the phase's duration.

Phases, each on a fresh database (the peers of ``run.py``; a missing library reads n/a):

- send, one by one: N sends, one call each.
- send, batched: N sends through the library's batch API (n/a where there is none).
- worker (reserve, ack, result write): one single-process worker drains the N tasks sent
  one by one, from its start until the queue is empty and the last result is stored.
- round trip: R sequential send-and-wait calls against an idle worker: the send, the
  worker's side, and the result's wait and read.
- rest: the round trip less the one-by-one send and the worker rows (derived): what a
  round trip costs beyond a send and a drained task, that is an idle worker's sleep and
  wake-up and the result's wait and read.

The ceiling row: a bare redis-py ``INCR`` loop in one process, the fastest one process can
talk to Redis at one round trip per task; drain / ceiling says how close a worker process
gets to that (a no-op task here does no Redis call of its own).

    python bench/redis_cpu.py [--tasks 20000] [--roundtrips 2000] [--only NAME]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # the bench's peers, private Redis and process handling

IDLE_SECONDS = 2.0
POLL = 0.05
"""Seconds between queue polls while draining (each poll costs Redis a few µs)."""


@dataclass
class Costs:
    """Microseconds of Redis CPU per task for each phase; None where not measured."""

    send: float | None = None
    batch: float | None = None
    worker: float | None = None
    roundtrip: float | None = None
    drain_rate: float | None = None
    why: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def read(self) -> float | None:
        if self.roundtrip is None or self.send is None or self.worker is None:
            return None
        return self.roundtrip - self.send - self.worker


class Meter:
    """Redis's CPU seconds (user + sys) from INFO cpu, less its idle rate."""

    def __init__(self, redis: run.PrivateRedis) -> None:
        self.client = redis.client(redis.url(0))
        self.idle = 0.0
        """Idle CPU seconds per second (the server's cron at ``hz``)."""

    def cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def calibrate(self, seconds: float = IDLE_SECONDS) -> None:
        start, cpu = time.perf_counter(), self.cpu()
        time.sleep(seconds)
        self.idle = (self.cpu() - cpu) / (time.perf_counter() - start)

    def measure(self, action: Callable[[], Any], count: int) -> float:
        """Microseconds of Redis CPU per unit of ``count`` that ``action`` made it spend."""
        start, cpu = time.perf_counter(), self.cpu()
        action()
        spent = self.cpu() - cpu - self.idle * (time.perf_counter() - start)
        return max(spent, 0.0) / count * 1e6


def drain(peer: run.Peer, handles: tuple[Any, Any], count: int, log: Any) -> float:
    """Start one worker and wait until it has emptied the queue; its rate from start."""
    first, last = handles
    start = time.perf_counter()
    proc = peer.start_worker(log)
    deadline = start + max(120.0, count / 100)
    try:
        while not (peer.queue_size() == 0 and peer.is_done(last) and peer.is_done(first)):
            if proc.poll() is not None:
                raise RuntimeError(f"{peer.name} worker exited with {proc.returncode}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{peer.name} did not drain {count} tasks in time")
            time.sleep(POLL)
        return count / (time.perf_counter() - start)
    finally:
        peer.processes.stop(proc)


def measure_peer(peer: run.Peer, meter: Meter, args: argparse.Namespace, workdir: Path) -> Costs:
    costs = Costs()
    n = args.tasks
    log_path = workdir / f"{peer.name}-cpu-worker.log"

    def send_and_drain(log: Any) -> None:
        peer.open("cpu-send")
        peer.enqueue(1)
        peer.purge()
        sent: list[tuple[Any, Any]] = []
        costs.send = meter.measure(lambda: sent.append(peer.enqueue(n)), n)
        rates: list[float] = []
        costs.worker = meter.measure(lambda: rates.append(drain(peer, sent[0], n, log)), n)
        costs.drain_rate = rates[0]
        peer.close()

    def batch(log: Any) -> None:
        peer.open("cpu-batch")
        peer.enqueue(1)
        peer.purge()
        result: list[Any] = []
        cost = meter.measure(lambda: result.append(peer.enqueue_batch(n, run.BATCH_SIZE)), n)
        if result[0] is None:
            costs.why["batch"] = peer.batch_note
        else:
            costs.batch = cost
        peer.close()

    def roundtrip(log: Any) -> None:
        peer.open("cpu-roundtrip")
        proc = peer.start_worker(log)
        try:
            run.wait_until_serving(peer, proc)
            for _ in range(run.WARMUP_ROUNDTRIPS):
                peer.roundtrip(10)

            def calls() -> None:
                for _ in range(args.roundtrips):
                    peer.roundtrip(10)

            costs.roundtrip = meter.measure(calls, args.roundtrips)
        finally:
            peer.processes.stop(proc)
            peer.close()

    steps = [("send", send_and_drain), ("batch", batch), ("roundtrip", roundtrip)]
    with log_path.open("ab") as log:
        for what, step in steps:
            print(f"{peer.name}: {what} ...", end=" ", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                with run.SIGNALS.time_limit(args.timeout, f"{peer.name} {what}"):
                    step(log)
            except Exception as exc:
                reason = "timed out" if isinstance(exc, run.StepTimeout) else "failed"
                print(f"{reason}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                costs.why.setdefault(what, reason)
                costs.problems.append(f"{what} {reason}: {type(exc).__name__}: {exc}")
                peer.close()
                run.kill_leftovers(peer)
                continue
            print(f"{time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)
    return costs


def ceiling(redis: run.PrivateRedis, meter: Meter, count: int) -> tuple[float, float]:
    """A bare redis-py INCR loop in this process: (calls per second, µs of Redis CPU each)."""
    client = redis.client(redis.fresh_url())
    try:
        client.ping()
        incr = client.incr
        rates: list[float] = []

        def loop() -> None:
            start = time.perf_counter()
            for _ in range(count):
                incr("ceiling")
            rates.append(count / (time.perf_counter() - start))

        cost = meter.measure(loop, count)
        return rates[0], cost
    finally:
        client.close()


ROWS: list[tuple[str, str, Callable[[Costs], float | None]]] = [
    ("send, one by one (us/task)", "send", lambda c: c.send),
    (f"send, batches of {run.BATCH_SIZE:,} (us/task)", "batch", lambda c: c.batch),
    ("worker: reserve, ack, result write (us/task)", "send", lambda c: c.worker),
    ("round trip: send, worker, wait and read (us)", "roundtrip", lambda c: c.roundtrip),
    ("  rest: wake-up, result wait and read (rt - 1, 3)", "roundtrip", lambda c: c.read),
]


def render(costs: dict[str, Costs]) -> str:
    names = list(costs)
    others = [n for n in names if n != "conveyor"] if "conveyor" in costs else []
    header = ["Redis CPU", *names, *[f"conveyor vs {n}" for n in others]]
    lines = [header]
    for label, step, get in ROWS:
        cells = [label]
        for name in names:
            value = get(costs[name])
            reason = costs[name].why.get(step)
            cells.append(f"{value:.1f}" if value is not None else f"n/a ({reason})" if reason
                         else "n/a")  # fmt: skip
        for name in others:
            mine, theirs = get(costs["conveyor"]), get(costs[name])
            cells.append(f"{theirs / mine:.2f}x" if mine and theirs else "n/a")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        rest = [cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True)]
        out.append("  ".join([line[0].ljust(widths[0]), *rest]).rstrip())
        if i == 0:
            out.append("-" * len(out[0]))
    if others:
        out.append("conveyor vs X: X's cost / Conveyor's (>1: Conveyor costs Redis less).")
    for name, c in costs.items():
        out.extend(f"{name}: {problem}" for problem in c.problems)
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else "")
    parser.add_argument("--tasks", type=int, default=20000, help="tasks per phase [20000]")
    parser.add_argument("--roundtrips", type=int, default=2000, help="round trips [2000]")
    parser.add_argument("--only", help="one library (conveyor, celery, dramatiq, huey)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per step [240]")
    parser.add_argument("--dramatiq-threads", type=int, default=1, help="as in run.py [1]")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)
    args.huey_synchronous = "normal"
    choices = [n for n in run.PEERS["redis"]]
    if args.only and args.only not in choices:
        parser.error(f"--only: choose from {', '.join(choices)}")
    if args.tasks < 2 or args.roundtrips < 2:
        parser.error("--tasks and --roundtrips must be at least 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run.SIGNALS.install()
    names = [args.only] if args.only else list(run.PEERS["redis"])
    procs = run.Processes()
    costs: dict[str, Costs] = {}
    with run.workspace(args.keep) as workdir:
        try:
            redis = run.PrivateRedis(workdir, procs)
            try:
                redis.start()
            except (RuntimeError, ImportError) as exc:
                print(f"cannot start a private redis-server: {exc}", file=sys.stderr)
                return 2
            meter = Meter(redis)
            peers = [run.PEERS["redis"][name](workdir, procs, args, redis) for name in names]
            print(run.machine(peers, redis))
            meter.calibrate()
            print(
                f"tasks: {args.tasks:,} per phase, round trips: {args.roundtrips:,}; "
                f"Redis idle: {meter.idle * 1e6:,.0f} us of CPU per second, subtracted"
            )
            rate, incr_cost = ceiling(redis, meter, args.tasks)
            for peer in peers:
                try:
                    peer.check()
                except Exception as exc:
                    short = "not installed" if isinstance(exc, ImportError) else "unavailable"
                    costs[peer.name] = Costs(why=dict.fromkeys(("send", "batch", "roundtrip"),
                                                               short))  # fmt: skip
                    continue
                for note in peer.notes():
                    print(note)
                costs[peer.name] = measure_peer(peer, meter, args, workdir)
                redis.flushall()
            print(flush=True)
        finally:
            run.SIGNALS.quiet()
            procs.stop_all()
    print(render(costs))
    print()
    print(
        f"ceiling: a redis-py INCR loop in one process: {rate:,.0f}/s, "
        f"{incr_cost:.1f} us of Redis CPU each"
    )
    cells = [f"{name} {c.drain_rate:,.0f}/s ({c.drain_rate / rate:.0%} of the ceiling)"
             for name, c in costs.items() if c.drain_rate is not None]  # fmt: skip
    print("drain by one worker process, from its start: " + (", ".join(cells) or "n/a"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: every worker was stopped", file=sys.stderr)
        sys.exit(130)
