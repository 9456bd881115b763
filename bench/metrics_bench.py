#!/usr/bin/env python
"""What Prometheus metrics cost the quick-task drain: the same drain with ``conveyor worker
--metrics-port`` and without, side by side, in alternating rounds (so drift in the
machine's load hits both).

The rounds and the table are onoff.py's. With metrics on, the child counts every task (a
counter and two histograms in prometheus_client's multiprocess files) and the supervisor
serves them.

    python bench/metrics_bench.py [--broker sqlite|redis] [--tasks 10000] [--rounds 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from onoff import alternate, arguments, table  # noqa: E402 - bench/ is put on the path first
from run import ConveyorPeer, PrivateRedis, Processes  # noqa: E402


class MetricsPeer(ConveyorPeer):
    """Conveyor with ``--metrics-port 0`` (any free port) or without."""

    def __init__(self, *args: object, metrics: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.metrics = metrics

    def worker_argv(self) -> list[str]:
        argv = super().worker_argv()
        return [*argv, "--metrics-port", "0"] if self.metrics else argv


def main() -> int:
    args = arguments(__doc__.split("\n")[0], tasks=10_000)

    def make(
        workdir: Path, procs: Processes, redis: PrivateRedis | None, name: str, on: bool
    ) -> ConveyorPeer:
        return MetricsPeer(workdir, procs, redis, name=name, metrics=on)

    table("metrics", args, alternate("metrics", args, make))
    return 0


if __name__ == "__main__":
    sys.exit(main())
