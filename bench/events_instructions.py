#!/usr/bin/env python
"""What events cost a no-op task, in instructions: a consumer drains a queue in-process
under valgrind's callgrind, with ``worker_send_task_events`` on and off.

Instruction counts do not swing with the machine's load as rates do. Each side is drained
twice (``--small`` and ``--large`` tasks); the difference of the two counts, divided by the
difference of the task counts, is the instructions a task costs, interpreter start-up and
the fill left out (the queue is filled by a process valgrind does not watch).

Under callgrind a consumer runs about 50 times slower, so a time-based events write (every
``FLUSH_EVERY`` seconds) would cover a few dozen tasks instead of thousands, and the
per-write costs would be exaggerated. So the drain writes events every ``--flush-tasks``
tasks instead (the default: what 0.2 s holds at about 15,000 tasks/s).

    python bench/events_instructions.py [--broker redis|sqlite] [--small 1000]
                                        [--large 7000] [--flush-tasks 3000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import PrivateRedis, Processes  # noqa: E402 - bench/ is put on the path first
from tasks_conveyor import make_app  # noqa: E402


class _Tracker:
    """The Tracker protocol (worker/outbox.py), doing nothing: no supervisor here."""

    def reserved(self, deliveries: Any) -> None: ...
    def started(self, *args: Any) -> None: ...
    def finished(self, *args: Any, **kwargs: Any) -> None: ...
    def released(self, deliveries: Any) -> None: ...
    def flush(self) -> None: ...


def fill(url: str, tasks: int) -> None:
    app, noop = make_app(url)
    for start in range(0, tasks, 1000):
        with app.batch():
            for _ in range(min(1000, tasks - start)):
                noop.delay()
    app.close()


def drain(url: str, tasks: int, events: bool, flush_tasks: int) -> None:
    from conveyor.worker import events as worker_events
    from conveyor.worker.consumer import Consumer

    worker_events.STALE = 1e9  # the background writer stays asleep

    def flush_due(buffer: worker_events.EventBuffer) -> None:
        if len(buffer._pending) >= flush_tasks:
            buffer.flush()

    worker_events.EventBuffer.flush_due = flush_due  # type: ignore[method-assign]
    app, _ = make_app(url)
    app.conf.worker_send_task_events = events
    Consumer(app, ["default"], "host", _Tracker(), None, max_tasks=tasks).run()
    left = sum(stats.total for stats in app.broker.stats().values())
    app.close()
    if left:
        raise SystemExit(f"{left} messages left in the queue: the drain did not finish")


def instructions(url: str, tasks: int, events: bool, flush_tasks: int, workdir: Path) -> int:
    fill(url, tasks)
    out = workdir / f"callgrind.{'on' if events else 'off'}.{tasks}"
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--drain", url, "--tasks", str(tasks),
            "--events", "on" if events else "off", "--flush-tasks", str(flush_tasks)]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(argv, check=True, env=env, stderr=subprocess.DEVNULL)
    found = re.search(rb"^summary: (\d+)", out.read_bytes(), re.MULTILINE)
    assert found is not None, f"no summary in {out}"
    return int(found[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=("sqlite", "redis"), default="redis")
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=7000)
    parser.add_argument("--flush-tasks", type=int, default=3000)
    parser.add_argument("--keep", help="a directory to keep the callgrind files in")
    parser.add_argument("--drain", help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--events", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drain:
        drain(args.drain, args.tasks, args.events == "on", args.flush_tasks)
        return 0
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="events-instr-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        redis = PrivateRedis(Path(tmp), procs) if args.broker == "redis" else None
        try:
            if redis is not None:
                redis.start()
            per_task: dict[bool, float] = {}
            for events in (False, True):
                counts = []
                for tasks in (args.small, args.large):
                    if redis is not None:
                        url = redis.fresh_url()
                    else:
                        url = str(Path(tmp) / f"{'on' if events else 'off'}-{tasks}.db")
                    counts.append(instructions(url, tasks, events, args.flush_tasks, workdir))
                per_task[events] = (counts[1] - counts[0]) / (args.large - args.small)
                print(f"events {'on' if events else 'off':<4}{counts[0]:>16,}{counts[1]:>16,}"
                      f"   {per_task[events]:>10,.0f} instructions a task", flush=True)  # fmt: skip
        finally:
            procs.stop_all()
    cost = per_task[True] - per_task[False]
    share, base = cost / per_task[False], per_task[False]
    print(f"{args.broker}: events cost {cost:,.0f} instructions a task, "
          f"{share:.1%} of the consumer's {base:,.0f} without them")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
