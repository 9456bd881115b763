#!/usr/bin/env python
"""What events cost the quick-task drain: the same drain with ``worker_send_task_events``
on and off, side by side, in alternating rounds (so drift in the machine's load hits both).

Each round fills a fresh queue with no-op tasks, starts one ``conveyor worker -c 1 -P
prefork`` and times it until the queue is empty and the last result stored (bench/run.py's
``measure_drain``: the steady rate leaves interpreter start-up out). With events on, the
worker writes task-received, task-started and task-succeeded for every task.

On a machine shared with other work the rates swing by tens of percent from run to run;
the CPU the worker's processes used per task (user + system, read from the bench's reaped
children) swings much less, so it is reported too.

    python bench/events_bench.py [--broker sqlite|redis] [--tasks 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import resource
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


class EventsPeer(ConveyorPeer):
    """Conveyor with events on or off in the worker (CONVEYOR_WORKER_SEND_TASK_EVENTS)."""

    def __init__(self, *args: object, events: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.events = events

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env["CONVEYOR_WORKER_SEND_TASK_EVENTS"] = "true" if self.events else "false"
        return env


def count_events(peer: EventsPeer) -> int:
    """Events the last drain left in the stream (read before its database is dropped)."""
    from tasks_conveyor import make_app

    app, _ = make_app(peer.url)
    try:
        return sum(1 for _ in app.events.tail())
    finally:
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    SIGNALS.install()
    procs = Processes()
    steady: dict[bool, list[float]] = {True: [], False: []}
    total: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    written: list[int] = []
    with workspace(keep=False) as workdir:
        try:
            redis = None
            if args.broker == "redis":
                redis = PrivateRedis(workdir, procs)
                redis.start()
            for round_ in range(args.rounds):
                for events in (True, False) if round_ % 2 == 0 else (False, True):
                    name = f"events-{'on' if events else 'off'}"
                    peer = EventsPeer(workdir, procs, redis, name=name, events=events)
                    res = Results()
                    with (workdir / f"{name}.log").open("ab") as log:
                        peer.open(f"drain-{round_}")
                        queued = peer.enqueue_batch(args.tasks, 1000)
                        before = resource.getrusage(resource.RUSAGE_CHILDREN)
                        measure_drain(peer, args.tasks, res, log, queued)
                        after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                    cpu[events].append(used / args.tasks * 1e6)
                    assert res.drain_steady is not None and res.drain_total is not None
                    steady[events].append(res.drain_steady)
                    total[events].append(res.drain_total)
                    if events:
                        written.append(count_events(peer))
                    print(
                        f"round {round_ + 1} {name:<11} steady {res.drain_steady:>9,.0f}/s"
                        f"   with start-up {res.drain_total:>9,.0f}/s"
                        f"   worker CPU {cpu[events][-1]:>6.1f} us/task",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            SIGNALS.quiet()
            procs.stop_all()
    on, off = statistics.median(steady[True]), statistics.median(steady[False])
    on_total, off_total = statistics.median(total[True]), statistics.median(total[False])
    on_cpu, off_cpu = statistics.median(cpu[True]), statistics.median(cpu[False])
    print(f"\n{args.tasks:,} no-op tasks, worker -c 1 -P prefork, {args.broker}, "
          f"median of {args.rounds} rounds each")  # fmt: skip
    print(f"{'':<14}{'steady tasks/s':>16}{'with start-up':>16}{'worker CPU us/task':>20}")
    print(f"{'events off':<14}{off:>16,.0f}{off_total:>16,.0f}{off_cpu:>20.1f}")
    print(f"{'events on':<14}{on:>16,.0f}{on_total:>16,.0f}{on_cpu:>20.1f}")
    ratios = (on / off, on_total / off_total, on_cpu / off_cpu)
    print(f"{'on / off':<14}{ratios[0]:>16.3f}{ratios[1]:>16.3f}{ratios[2]:>20.3f}")
    print(f"events in the stream after a drain with events on: {min(written):,} to "
          f"{max(written):,}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
