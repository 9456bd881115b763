"""An A/B of one worker feature: the same quick-task drain with it on and off, in
alternating rounds (on-off, then off-on), so drift in the machine's load hits both sides.

Each round fills a fresh queue with no-op tasks, starts one ``conveyor worker -c 1 -P
prefork`` and times it until the queue is empty and the last result stored (run.py's
``measure_drain``: the steady rate leaves interpreter start-up out). On a machine shared
with other work the rates swing by tens of percent between runs; the CPU the worker's
processes used per task (user + system, from the bench's reaped children) swings less, so
it is reported too. Used by events_bench.py and metrics_bench.py.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from run import (
    SIGNALS,
    ConveyorPeer,
    PrivateRedis,
    Processes,
    Results,
    measure_drain,
    workspace,
)

MakePeer = Callable[[Path, Processes, "PrivateRedis | None", str, bool], ConveyorPeer]
"""(workdir, processes, redis or None, name, on) -> the peer to drain with."""


@dataclass
class Side:
    steady: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    """Worker CPU in microseconds a task, start-up and shutdown included."""
    steady_cpu: list[float] = field(default_factory=list)
    """Worker CPU in microseconds a task between the first and the last result."""


def arguments(description: str, tasks: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--broker", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--tasks", type=int, default=tasks)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def alternate(
    label: str,
    args: argparse.Namespace,
    make_peer: MakePeer,
    after: Callable[[ConveyorPeer, bool], None] | None = None,
) -> dict[bool, Side]:
    """Drain ``args.tasks`` no-op tasks ``args.rounds`` times with ``label`` on and off;
    ``after(peer, on)`` runs after each drain, before the peer's database goes."""
    SIGNALS.install()
    procs = Processes()
    sides = {True: Side(), False: Side()}
    with workspace(keep=False) as workdir:
        try:
            redis = None
            if args.broker == "redis":
                redis = PrivateRedis(workdir, procs)
                redis.start()
            for round_ in range(args.rounds):
                for on in (True, False) if round_ % 2 == 0 else (False, True):
                    name = f"{label}-{'on' if on else 'off'}"
                    peer = make_peer(workdir, procs, redis, name, on)
                    res = Results()
                    with (workdir / f"{name}.log").open("ab") as log:
                        peer.open(f"drain-{round_}")
                        queued = peer.enqueue_batch(args.tasks, 1000)
                        before = resource.getrusage(resource.RUSAGE_CHILDREN)
                        measure_drain(peer, args.tasks, res, log, queued)
                        after_use = resource.getrusage(resource.RUSAGE_CHILDREN)
                    used = (after_use.ru_utime + after_use.ru_stime) - (
                        before.ru_utime + before.ru_stime
                    )
                    assert res.drain_steady is not None and res.drain_total is not None
                    side = sides[on]
                    side.steady.append(res.drain_steady)
                    side.total.append(res.drain_total)
                    side.cpu.append(used / args.tasks * 1e6)
                    assert res.drain_steady_cpu_us is not None
                    side.steady_cpu.append(res.drain_steady_cpu_us)
                    if after is not None:
                        after(peer, on)
                    print(
                        f"round {round_ + 1} {name:<12} steady {res.drain_steady:>9,.0f}/s"
                        f"   with start-up {res.drain_total:>9,.0f}/s"
                        f"   worker CPU {side.cpu[-1]:>6.1f} us/task"
                        f" ({side.steady_cpu[-1]:.1f} steady)",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            SIGNALS.quiet()
            procs.stop_all()
    return sides


def table(label: str, args: argparse.Namespace, sides: dict[bool, Side]) -> None:
    """Medians of each side, and on / off."""
    median = statistics.median
    rows = {
        on: (median(side.steady), median(side.total), median(side.cpu), median(side.steady_cpu))
        for on, side in sides.items()
    }
    print(f"\n{args.tasks:,} no-op tasks, worker -c 1 -P prefork, {args.broker}, "
          f"median of {args.rounds} rounds each")  # fmt: skip
    print(f"{'':<14}{'steady tasks/s':>16}{'with start-up':>16}{'worker CPU us/task':>20}"
          f"{'steady CPU us/task':>20}")  # fmt: skip
    for on in (False, True):
        steady, total, cpu, steady_cpu = rows[on]
        print(f"{label + (' on' if on else ' off'):<14}{steady:>16,.0f}{total:>16,.0f}{cpu:>20.1f}"
              f"{steady_cpu:>20.1f}")  # fmt: skip
    ratios = [a / b for a, b in zip(rows[True], rows[False], strict=True)]
    print(f"{'on / off':<14}{ratios[0]:>16.3f}{ratios[1]:>16.3f}{ratios[2]:>20.3f}"
          f"{ratios[3]:>20.3f}")  # fmt: skip
    pairs = sorted(a / b for a, b in zip(sides[True].steady, sides[False].steady, strict=True))
    print(
        f"steady on / off of each round's pair: {' '.join(f'{r:.3f}' for r in pairs)}; "
        f"their median {statistics.median(pairs):.3f}"
    )
