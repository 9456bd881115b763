#!/usr/bin/env python
"""Instructions Redis executes for a worker's calls, per task: a count that repeats.

``redis_cpu.py`` and ``redis_worker_calls.py`` read Redis's CPU time, which moves 10-30%
from run to run on a shared virtual machine. This runs a redis-server under valgrind's
callgrind, which counts the instructions the server executes (the same count for the same
work, whatever else the machine does), and makes a draining worker's calls against it:
publish N messages and store one batch (not counted: the lease set and result keys exist,
as in a worker that has run a while), then per batch ack the previous batch and reserve
the next in one call, and write the batch's outcomes with a reply to their sender, as
``redis_worker_calls.py`` does; the reservations read revocations, as a worker's do.
Then the same calls one message at a time, and a round trip as a worker asleep on its queue
makes it: the send hands the message over (the worker's registration, its inbox), the
worker's BLPOP returns it, the outcome goes to the sender's list, the sender's BLPOP takes
it, and the worker acks and registers again in one reserve.

``--tree PATH`` (repeatable) measures the ``src`` directory of other checkouts too, each
in a process of its own (``git worktree add /tmp/before <commit>``, then ``--tree
/tmp/before/src``): an A/B of a change to the scripts in one run, without noise.

``--functions N`` also prints where a phase's instructions go in the first tree (the
worker's, or the one ``--phase`` names by its number, 1-4):
the N functions of the server with the most instructions of their own, and the script
calls split into the commands the scripts run, ``redis.call``'s own work around them, and
the Lua interpreter's (its strings, tables and collector included). Debian's redis-server
has no symbols; put a build that has them first on ``PATH`` (bench/README.md, "Where a
worker's Redis instructions go").

    python bench/redis_instructions.py [--tasks 3000] [--batch 128] [--tree PATH ...]
        [--functions N [--phase 1-4]]

Needs valgrind (Debian's package) and redis-server. Instructions are not time: a change
that trades instructions for cache misses shows here as a gain it may not be.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
PHASES = (
    "send, one by one",
    "worker: reserve, ack, result write",
    "one at a time: send, reserve, ack, write",
    "round trip to a sleeping worker (handed)",
)

LOAD = r"""
import sys
from conveyor.backends.redis import RedisBackend
from conveyor.brokers.base import Envelope
from conveyor.brokers.redis import RedisBroker
from conveyor.coordination.redis import RedisCoordinator

url, tasks, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
BODY = b'{"id":"x","task":"bench.noop","sent_at":1796506123.140116,"reply":true}' * 2
OUTCOME = b'{"status":"SUCCESS","task":"bench.noop","date_done":1796506123.14}'
broker, backend, coordinator = RedisBroker(url), RedisBackend(url), RedisCoordinator(url)
broker.read_revocations_from(coordinator)


def outcomes(got):
    items = [(f"conveyor-task-{d.id}", OUTCOME, 7) for d in got]
    return items, {key: "bench-sender" for key, _, _ in items}


def step():
    sys.stdin.readline()


warm = [f"warm-{i:08d}-{'a' * 24}" for i in range(batch)]
broker.publish([Envelope(i, "default", BODY, 0, None) for i in warm])
_, acks = broker.ack_and_reserve([], ["default"], batch, 30.0)
items, replies = outcomes(acks)
backend.set_fenced_many(items, 86400, replies)
broker.publish_one(Envelope("loads-the-script", "elsewhere", BODY, 0, None))
print("ready", flush=True)
step()
for i in range(tasks):
    broker.publish_one(Envelope(f"{i:08d}-{'a' * 29}", "default", BODY, 0, None))
print(tasks, flush=True)
step()
done = 0
while True:
    _, got = broker.ack_and_reserve(acks, ["default"], batch, 30.0)
    if not got:
        break
    items, replies = outcomes(got)
    backend.set_fenced_many(items, 86400, replies)
    acks, done = got, done + len(got)
print(done, flush=True)
step()
for i in range(tasks):  # a round trip's calls: each message alone, from send to outcome
    broker.publish_one(Envelope(f"rt-{i:08d}-{'a' * 26}", "default", BODY, 0, None))
    _, got = broker.ack_and_reserve(acks, ["default"], 4, 30.0)
    items, replies = outcomes(got)
    backend.set_fenced_many(items, 86400, replies)
    acks = got
print(tasks, flush=True)
step()
address, waiter = backend.reply_address(), backend._waiter_list()
broker.wait(0.0)
broker.ack_and_reserve(acks, ["default"], 4, 30.0)  # nothing ready: it registers
for i in range(tasks):  # a delay() + get() to a worker asleep on its queue, as in a worker
    broker.publish_one(Envelope(f"ho-{i:08d}-{'a' * 26}", "default", BODY, 0, None))
    broker.wait(1.0)  # the BLPOP that returns the message the send handed over
    _, got = broker.ack_and_reserve([], ["default"], 4, 30.0)  # no call: it was handed
    items = [(f"conveyor-task-{d.id}", OUTCOME, 7) for d in got]
    backend.set_fenced_many(items, 86400, {key: address for key, _, _ in items})
    assert backend.link.command("BLPOP", waiter, "1", blocking=True)  # the sender's wait
    broker.wait(0.0)
    _, more = broker.ack_and_reserve(got, ["default"], 4, 30.0)  # ack, sleep again
    assert len(got) == 1 and not more
print(tasks, flush=True)
step()
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(src: Path, tasks: int, batch: int, workdir: Path) -> tuple[list[float], list[Path]]:
    """Instructions the server executed per task in each phase, for ``src``, and the
    phases' dumps."""
    port = free_port()
    out = workdir / f"callgrind.{port}"
    argv = ["valgrind", "--tool=callgrind", "--compress-strings=no"]  # each dump names all
    argv += [f"--callgrind-out-file={out}", "redis-server"]
    argv += ["--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load = None
    try:
        deadline = time.monotonic() + 60
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
            ).stdout.strip()
            != b"PONG"
        ):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("redis-server under valgrind did not start")
            time.sleep(0.2)
        env = {**os.environ, "PYTHONPATH": str(src)}
        url = f"redis://127.0.0.1:{port}/0"
        load = subprocess.Popen(
            [sys.executable, "-c", LOAD, url, str(tasks), str(batch)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert load.stdin is not None and load.stdout is not None
        if load.stdout.readline().strip() != "ready":
            raise SystemExit(f"the load process for {src} failed")
        control = ["callgrind_control"]
        counts = []
        for _ in PHASES:
            subprocess.run([*control, "--zero", str(server.pid)], capture_output=True, check=True)
            load.stdin.write("go\n")
            load.stdin.flush()
            counts.append(int(load.stdout.readline()))
            subprocess.run([*control, "--dump", str(server.pid)], capture_output=True, check=True)
        load.stdin.write("end\n")
        load.stdin.flush()
        load.wait(60)
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
        server.wait(60)
    dumps = sorted(workdir.glob(f"callgrind.{port}.*"), key=lambda p: int(p.suffix[1:]))
    if len(dumps) != len(PHASES):
        raise SystemExit(f"callgrind wrote {len(dumps)} dumps, not {len(PHASES)}")
    out = []
    for dump, count in zip(dumps, counts, strict=True):
        found = re.search(r"^totals:\s+(\d+)", dump.read_text(), re.MULTILINE)
        if found is None:
            raise SystemExit(f"no totals in {dump}")
        out.append(int(found.group(1)) / count)
    return out, dumps


GROUPS = (
    ("the scripts (FCALL/EVALSHA)", ("fcallCommandGeneric", "evalGenericCommand")),
    ("  commands they run", ("scriptCall",)),
    ("  redis.call, with them", ("luaRedisGenericCommand",)),
    ("  the interpreter, with redis.call", ("lua_pcall",)),
)


def costs(dump: Path) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Each function's own instructions and its inclusive ones (its own plus those of the
    calls it makes, recursion aside), read from an uncompressed callgrind dump."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    fn = callee = ""
    call_line = False
    with dump.open() as lines:
        for line in lines:
            if line.startswith("fn="):
                fn, call_line = line[3:].strip(), False
            elif line.startswith("cfn="):
                callee = line[4:].strip()
            elif line.startswith("calls="):
                call_line = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                cost = int(parts[1])
                if call_line:  # the cost of the call just named, not the caller's own
                    call_line = False
                    if callee != fn:
                        inclusive[fn] += cost
                else:
                    own[fn] += cost
                    inclusive[fn] += cost
    return own, inclusive


def print_functions(dump: Path, per: int, top: int, phase: str) -> None:
    own, inclusive = costs(dump)
    total = sum(own.values())
    if not all(any(name in inclusive for name in names) for _, names in GROUPS):
        print("\n(the dump lacks the scripts' functions: this redis-server has no symbols)")
        return
    print(f"\nWhere {phase!r}'s {total / per:,.0f} instructions a task go (first tree):")
    values = {}
    for label, names in GROUPS:
        values[label] = max((inclusive[n] for n in names), default=0)
        print(f"  {label:38} {values[label] / per:>9,.0f}")
    lua = values["  the interpreter, with redis.call"] - values["  redis.call, with them"]
    call = values["  redis.call, with them"] - values["  commands they run"]
    print(f"  {'= the interpreter alone':38} {lua / per:>9,.0f}")
    print(f"  {'= redis.call around its commands':38} {call / per:>9,.0f}")
    print(f"\nThe {top} functions with the most instructions of their own:")
    for name, cost in own.most_common(top):
        print(f"  {cost / per:>9,.0f}  {cost / total:6.1%}  {name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000, help="tasks measured [3000]")
    parser.add_argument("--batch", type=int, default=128, help="messages a reserve [128]")
    parser.add_argument("--tree", action="append", default=[], help="another checkout's src")
    parser.add_argument("--keep", help="keep callgrind's dumps here (for callgrind_annotate)")
    parser.add_argument("--functions", type=int, default=0, help="a phase's top N functions")
    parser.add_argument(
        "--phase", type=int, default=2, choices=range(1, len(PHASES) + 1), help="for --functions"
    )
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "redis-server", "redis-cli"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            raise SystemExit(f"{tool} is missing (valgrind and redis-server: Debian's packages)")
    trees = [SRC, *(Path(t).resolve() for t in args.tree)]
    with tempfile.TemporaryDirectory(prefix="conveyor-instructions-") as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        measured = [measure(tree, args.tasks, args.batch, workdir) for tree in trees]
        counts = [m[0] for m in measured]
        if args.functions:
            phase = PHASES[args.phase - 1]
            print_functions(measured[0][1][args.phase - 1], args.tasks, args.functions, phase)
            print()
    print(
        f"Redis instructions per task ({args.tasks:,} tasks; the worker's batches of "
        f"{args.batch}, each outcome with a reply; callgrind)"
    )
    names = [str(tree) for tree in trees]
    width = max(len(p) for p in PHASES)
    cols = [max(len(name), 10) for name in names]
    print(" " * width + "  " + "  ".join(n.rjust(c) for n, c in zip(names, cols, strict=True)))
    for k, phase in enumerate(PHASES):
        cells = []
        for counts_of, col in zip(counts, cols, strict=True):
            cell = f"{counts_of[k]:,.0f}"
            if counts_of is not counts[0]:
                cell += f" ({counts_of[k] / counts[0][k]:.3f}x)"
            cells.append(cell.rjust(col))
        print(phase.ljust(width) + "  " + "  ".join(cells))
    if len(trees) > 1:
        print("(Nx): that tree's count / this tree's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
