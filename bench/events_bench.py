#!/usr/bin/env python
"""What events cost the quick-task drain: the same drain with ``worker_send_task_events``
on and off, side by side, in alternating rounds (so drift in the machine's load hits both).

The rounds and the table are onoff.py's. With events on, the worker writes task-received,
task-started and task-succeeded for every task (a quick task's three as one run line).

    python bench/events_bench.py [--broker sqlite|redis] [--tasks 20000] [--rounds 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from onoff import alternate, arguments, table  # noqa: E402 - bench/ is put on the path first
from run import ConveyorPeer, PrivateRedis, Processes  # noqa: E402


class EventsPeer(ConveyorPeer):
    """Conveyor with events on or off in the worker (CONVEYOR_WORKER_SEND_TASK_EVENTS)."""

    def __init__(self, *args: object, events: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.events = events

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env["CONVEYOR_WORKER_SEND_TASK_EVENTS"] = "true" if self.events else "false"
        return env


def count_events(peer: ConveyorPeer) -> int:
    """Events the last drain left in the stream (read before its database is dropped)."""
    from tasks_conveyor import make_app

    app, _ = make_app(peer.url)
    try:
        return sum(1 for _ in app.events.tail())
    finally:
        app.close()


def main() -> int:
    args = arguments(__doc__.split("\n")[0], tasks=20_000)
    written: list[int] = []

    def make(
        workdir: Path, procs: Processes, redis: PrivateRedis | None, name: str, on: bool
    ) -> ConveyorPeer:
        return EventsPeer(workdir, procs, redis, name=name, events=on)

    def after(peer: ConveyorPeer, on: bool) -> None:
        if on:
            written.append(count_events(peer))

    sides = alternate("events", args, make, after)
    table("events", args, sides)
    print(f"events in the stream after a drain with events on: {min(written):,} to "
          f"{max(written):,}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
