#!/usr/bin/env python
"""Redis's CPU per task for a worker's broker and backend calls alone, split by call.

``redis_cpu.py``'s worker row runs a real worker, whose idle waits, polls and batch sizes
move from run to run. This makes the calls a draining worker makes at its full batch size,
in the same order, from one loop with no worker process: publish N messages (not
measured), then per batch ack the previous batch and reserve the next in one call
(``ack_and_reserve``, as ``worker/consumer.py`` does) and write the batch's outcomes
(``set_fenced_many``, each asking for a reply as a ``delay()`` does, unless
``--no-replies``); the reservations read revocations, as a worker's do when the
coordinator shares the database (the default). Redis CPU is read around each call
(``INFO cpu``, as ``redis_cpu.py``; each read adds well under 0.1 us a task at batches of
128) on a private redis-server, and the idle rate is subtracted from the total.

Acks go with the next reservation on purpose: acked ids then leave the lease set after
the new leases are in (``broker_reserve.lua``). Acking a batch on its own first
(``ack_many``) empties the lease set, and 128 new leases into an empty sorted set make a
listpack that Redis scans on every insert: the reservation then costs about twice as much.

    python bench/redis_worker_calls.py [--tasks 10000] [--batch 128] [--runs 3] [--no-replies]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # the private Redis and process handling
from redis_cpu import Meter

from conveyor.backends.redis import RedisBackend
from conveyor.brokers.base import Delivery, Envelope
from conveyor.brokers.redis import RedisBroker
from conveyor.coordination.redis import RedisCoordinator

BODY = b'{"id":"x","task":"bench.noop","root_id":"x","sent_at":1796506123.140116,"reply":true}' * 2
OUTCOME = b'{"status":"SUCCESS","task":"bench.noop","date_done":1796506123.14,"worker":"w@vm"}'
PHASES = ("ack and reserve", "write")


def one_run(url: str, meter: Meter, args: argparse.Namespace, run_no: int) -> dict[str, float]:
    """Microseconds of Redis CPU per task: each call kind's share and the total."""
    broker, backend = RedisBroker(url), RedisBackend(url)
    coordinator = RedisCoordinator(url)
    broker.read_revocations_from(coordinator)  # as a worker's reservations do
    try:
        ids = [f"{run_no}-{i:08d}-{'a' * 29}" for i in range(args.tasks)]
        broker.publish([Envelope(i, "default", BODY, 0, None) for i in ids])
        backend.set_fenced_many([("warm", b"x", 1)], 60, {"warm"})  # loads the script
        spent = dict.fromkeys(PHASES, 0.0)
        start, total = time.perf_counter(), meter.cpu()
        acks: list[Delivery] = []
        done = 0
        while True:
            before = meter.cpu()
            _, got = broker.ack_and_reserve(acks, ["default"], args.batch, 30.0)
            spent["ack and reserve"] += meter.cpu() - before
            if not got:
                break
            items = [(f"conveyor-task-{d.id}", OUTCOME, 7) for d in got]
            # each success to its sender's reply list, as a worker hands a delay()'s over
            replies = {} if args.no_replies else {key: "bench-sender" for key, _, _ in items}
            before = meter.cpu()
            backend.set_fenced_many(items, 86400, replies)
            spent["write"] += meter.cpu() - before
            if replies:  # what the sender's get()s would pop (in the total, not in "write")
                backend.link.command("DEL", f"{backend.prefix}wl:bench-sender")
            acks, done = got, done + len(got)
        broker.ack_many(acks)
        idle = meter.idle * (time.perf_counter() - start)
        out = {name: value / done * 1e6 for name, value in spent.items()}
        out["total"] = (meter.cpu() - total - idle) / done * 1e6
        return out
    finally:
        broker.close()
        backend.close()
        coordinator.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000, help="tasks per run [10000]")
    parser.add_argument("--batch", type=int, default=128, help="messages a reserve [128]")
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a fresh db [3]")
    parser.add_argument("--no-replies", action="store_true", help="outcomes ask no reply")
    args = parser.parse_args(argv)
    procs = run.Processes()
    with run.workspace(False) as workdir:
        try:
            redis = run.PrivateRedis(workdir, procs)
            redis.start()
            meter = Meter(redis)
            meter.calibrate()
            runs = [one_run(redis.fresh_url(), meter, args, n) for n in range(args.runs)]
        finally:
            procs.stop_all()
    replies = "no replies" if args.no_replies else "each outcome with a reply"
    print(f"{args.tasks:,} tasks, batches of {args.batch}, {replies}; us of Redis CPU a task")
    for name in (*PHASES, "total"):
        values = [r[name] for r in runs]
        cells = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:16} {cells}  (median {statistics.median(values):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
