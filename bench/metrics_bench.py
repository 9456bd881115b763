#!/usr/bin/env python
"""What Prometheus metrics cost the quick-task drain: the same drain with ``conveyor worker
--metrics-port`` and without, side by side, in alternating rounds (so drift in the
machine's load hits both).

Each round fills a fresh queue with no-op tasks, starts one ``conveyor worker -c 1 -P
prefork`` and times it until the queue is empty and the last result stored (bench/run.py's
``measure_drain``). With metrics on, the child counts every task (a counter and two
histograms in prometheus_client's multiprocess files) and the supervisor serves them.

    python bench/metrics_bench.py [--broker sqlite|redis] [--tasks 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import (  # noqa: E402 - bench/ is put on the path first
    SIGNALS,
    ConveyorPeer,
    PrivateRedis,
    Processes,
    Results,
    measure_drain,
    workspace,
)


class MetricsPeer(ConveyorPeer):
    """Conveyor with ``--metrics-port 0`` (any free port) or without."""

    def __init__(self, *args: object, metrics: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.metrics = metrics

    def worker_argv(self) -> list[str]:
        argv = super().worker_argv()
        return [*argv, "--metrics-port", "0"] if self.metrics else argv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    SIGNALS.install()
    procs = Processes()
    steady: dict[bool, list[float]] = {True: [], False: []}
    with workspace(keep=False) as workdir:
        try:
            redis = None
            if args.broker == "redis":
                redis = PrivateRedis(workdir, procs)
                redis.start()
            for round_ in range(args.rounds):
                for metrics in (True, False) if round_ % 2 == 0 else (False, True):
                    name = f"metrics-{'on' if metrics else 'off'}"
                    peer = MetricsPeer(workdir, procs, redis, name=name, metrics=metrics)
                    res = Results()
                    with (workdir / f"{name}.log").open("ab") as log:
                        if redis is not None:  # measure_drain fills SQLite itself
                            peer.open(f"drain-{round_}")
                            queued = peer.enqueue_batch(args.tasks, 1000)
                            measure_drain(peer, args.tasks, res, log, queued)
                        else:
                            measure_drain(peer, args.tasks, res, log)
                    assert res.drain_steady is not None
                    steady[metrics].append(res.drain_steady)
                    print(
                        f"round {round_ + 1} {name:<12} steady {res.drain_steady:>9,.0f}/s",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            SIGNALS.quiet()
            procs.stop_all()
    on, off = statistics.median(steady[True]), statistics.median(steady[False])
    print(f"\n{args.tasks:,} no-op tasks, worker -c 1 -P prefork, {args.broker}, "
          f"median of {args.rounds} rounds each")  # fmt: skip
    print(f"{'':<14}{'steady tasks/s':>16}")
    print(f"{'metrics off':<14}{off:>16,.0f}")
    print(f"{'metrics on':<14}{on:>16,.0f}")
    print(f"{'on / off':<14}{on / off:>16.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
