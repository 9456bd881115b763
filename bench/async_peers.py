#!/usr/bin/env python
"""Async tasks beside arq and Taskiq, on one private redis-server in one run.

Two measurements per library, each with one worker process:

- drain: ``--tasks`` async no-op tasks queued, then the worker is started; the clock starts
  right before it is spawned (start-up counts, as in bench/run.py) and stops when the queue
  is empty and the last task's result is stored. ``steady`` leaves start-up out.
- round trip: on that worker, ``--roundtrips`` one-by-one ``await send`` + ``await result``
  from an asyncio client (after 20 unmeasured ones); p50 and p90.

Conveyor: ``conveyor worker -c 1`` (a supervisor and one child, ``--async-concurrency``
100), ``await task.adelay()`` and ``await result.aget()``; ``conveyor-asyncio`` the same
with ``-P asyncio`` (the child's consumer runs the event loop on its own thread). arq: one
worker, ``max_jobs`` 100, ``poll_delay`` 5 ms (its default 0.5 s would cap it at two polls
a second), client ``job.result(poll_delay=1 ms)``. Taskiq: taskiq-redis's ListQueueBroker
and Redis result backend, ``--workers 1 --max-async-tasks 100``, client
``wait_result(check_interval=1 ms)``.

arq pins redis-py below 6 and taskiq-redis needs 6 or later, so each peer runs from a
virtualenv of its own (``--arq-python``, ``--taskiq-python``: the interpreter of a venv
with ``pip install arq`` / ``pip install taskiq taskiq-redis``); a library whose
interpreter cannot import it is skipped with a note. Each library measures in a child
process of its own interpreter (``--one``) and prints one JSON line.

    python bench/async_peers.py [--tasks 10000] [--roundtrips 500] [--runs 1]
        [--arq-python PATH] [--taskiq-python PATH] [--only conveyor|arq|taskiq]
        [--asyncio-client]

The clients run on uvloop when their interpreter has it, as a uvicorn app does
(``--asyncio-client``: on asyncio's loop); the workers pick their own loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
POLL = 0.02
WARMUP = 20
LIBRARIES = ("conveyor", "conveyor-asyncio", "arq", "taskiq")
MEASURES = ("drain_s", "drain_rate", "startup_ms", "steady", "rt_p50_ms", "rt_p90_ms")


# -- one library, in its own interpreter --------------------------------------------------


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    full.update(env)
    # the caller's PYTHONPATH stays after the bench dir: a worker runs the same code as the
    # client (a source tree on PYTHONPATH, for a before/after run, as bench/run.py allows)
    full["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, env=full, cwd=BENCH_DIR, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
            return


class Conveyor:
    pool = "prefork"

    def __init__(self, url: str) -> None:
        from async_bench import ENV_URL, make_app

        self.url, self.env_name = url, ENV_URL
        self.app = make_app(url)
        self.noop = self.app.tasks["bench.anoop"]

    def worker(self, log: Path) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "conveyor", "worker", "-A", "async_bench:app",
                "-c", "1", "-P", self.pool, "-l", "WARNING"]  # fmt: skip
        return _spawn(argv, {self.env_name: self.url}, log)

    async def enqueue(self, count: int) -> tuple[Any, Any]:
        first = last = None
        for start in range(0, count, 1000):  # filled before the clock starts
            with self.app.batch():
                for _ in range(min(1000, count - start)):
                    last = self.noop.delay()
                    first = first or last
        return first, last

    async def queue_size(self) -> int:
        stats = await asyncio.to_thread(self.app.broker.stats)
        return sum(s.total for s in stats.values())

    async def is_done(self, handle: Any) -> bool:
        return bool(await handle.aready())

    async def roundtrip(self) -> None:
        result = await self.noop.adelay()
        await result.aget(timeout=30)

    async def close(self) -> None:
        self.app.close()


class ConveyorAsyncio(Conveyor):
    """``--pool asyncio``: the loop runs on the consumer's thread (no thread hand-off)."""

    pool = "asyncio"


class Arq:
    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: Any = None

    async def open(self) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        self.pool = await create_pool(RedisSettings.from_dsn(self.url))

    def worker(self, log: Path) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "arq", "async_tasks_arq.WorkerSettings"]
        return _spawn(argv, {"BENCH_ARQ_URL": self.url}, log)

    async def enqueue(self, count: int) -> tuple[Any, Any]:
        first = last = None
        for _ in range(count):
            last = await self.pool.enqueue_job("noop")
            first = first or last
        return first, last

    async def queue_size(self) -> int:
        from arq.constants import default_queue_name

        return int(await self.pool.zcard(default_queue_name))

    async def is_done(self, handle: Any) -> bool:
        from arq.jobs import JobStatus

        return bool(await handle.status() == JobStatus.complete)

    async def roundtrip(self) -> None:
        job = await self.pool.enqueue_job("noop")
        await job.result(timeout=30, poll_delay=0.001)

    async def close(self) -> None:
        await self.pool.aclose()


class Taskiq:
    def __init__(self, url: str) -> None:
        self.url = url
        os.environ["BENCH_TASKIQ_URL"] = url
        import async_tasks_taskiq

        self.module = async_tasks_taskiq

    async def open(self) -> None:
        await self.module.broker.startup()

    def worker(self, log: Path) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "taskiq", "worker", "async_tasks_taskiq:broker",
                "--workers", "1", "--max-async-tasks", "100"]  # fmt: skip
        return _spawn(argv, {"BENCH_TASKIQ_URL": self.url}, log)

    async def enqueue(self, count: int) -> tuple[Any, Any]:
        first = last = None
        for _ in range(count):
            last = await self.module.noop.kiq()
            first = first or last
        return first, last

    async def queue_size(self) -> int:
        import redis.asyncio as aredis

        client = aredis.Redis.from_url(self.url)
        try:
            return int(await client.llen(self.module.QUEUE))
        finally:
            await client.aclose()

    async def is_done(self, handle: Any) -> bool:
        return bool(await handle.is_ready())

    async def roundtrip(self) -> None:
        task = await self.module.noop.kiq()
        await task.wait_result(check_interval=0.001, timeout=30)

    async def close(self) -> None:
        await self.module.broker.shutdown()


async def measure(name: str, url: str, tasks: int, roundtrips: int, log: Path) -> dict[str, Any]:
    libraries = {
        "conveyor": Conveyor,
        "conveyor-asyncio": ConveyorAsyncio,
        "arq": Arq,
        "taskiq": Taskiq,
    }
    lib: Any = libraries[name](url)
    if hasattr(lib, "open"):
        await lib.open()
    try:
        first, last = await lib.enqueue(tasks)
        start = time.perf_counter()
        proc = lib.worker(log)
        try:
            first_done = None
            deadline = start + max(120.0, tasks / 100)
            while True:
                now = time.perf_counter()
                if first_done is None and await lib.is_done(first):
                    first_done = now
                if (
                    first_done is not None
                    and await lib.is_done(last)
                    and await lib.queue_size() == 0
                ):
                    end = now
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} worker exited with {proc.returncode} (see {log})")
                if now > deadline:
                    raise RuntimeError(f"{name} did not drain {tasks} tasks in time (see {log})")
                await asyncio.sleep(POLL)
            times = []
            for n in range(WARMUP + roundtrips):
                began = time.perf_counter()
                await lib.roundtrip()
                if n >= WARMUP:
                    times.append(time.perf_counter() - began)
        finally:
            _stop(proc)
    finally:
        await lib.close()
    times.sort()
    return {
        "drain_s": end - start,
        "drain_rate": tasks / (end - start),
        "startup_ms": (first_done - start) * 1000,
        "steady": (tasks - 1) / max(end - first_done, 1e-9),
        "rt_p50_ms": statistics.median(times) * 1000,
        "rt_p90_ms": times[int(len(times) * 0.9)] * 1000,
    }


def version(name: str) -> str:
    from importlib import metadata

    package = {"conveyor": "conveyor-tasks", "conveyor-asyncio": "conveyor-tasks"}
    return metadata.version(package.get(name, name))


def run_one(args: argparse.Namespace) -> int:
    if not args.asyncio_client:  # as uvicorn's default loop="auto" does
        with suppress(ImportError):
            import uvloop

            uvloop.install()
    row = asyncio.run(measure(args.one, args.url, args.tasks, args.roundtrips, Path(args.log)))
    row["version"] = version(args.one)
    print(json.dumps(row))
    return 0


# -- the run: a private redis-server, each library in turn ---------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--roundtrips", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1, help="runs per library; the median")
    parser.add_argument("--only", choices=LIBRARIES, action="append")
    parser.add_argument("--arq-python", default=os.environ.get("BENCH_ARQ_PYTHON", sys.executable))
    parser.add_argument(
        "--taskiq-python", default=os.environ.get("BENCH_TASKIQ_PYTHON", sys.executable)
    )
    parser.add_argument(
        "--asyncio-client",
        action="store_true",
        help="clients on asyncio's loop (default: uvloop's when installed, as uvicorn does)",
    )
    parser.add_argument("--one", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args)
    sys.path.insert(0, str(BENCH_DIR))
    import floor  # bench/floor.py: the host's floor for a round trip through Redis
    import run as harness  # bench/run.py: its private redis-server and process groups

    pythons = {
        "conveyor": sys.executable,
        "conveyor-asyncio": sys.executable,
        "arq": args.arq_python,
        "taskiq": args.taskiq_python,
    }
    modules = {
        "conveyor": "conveyor",
        "conveyor-asyncio": "conveyor",
        "arq": "arq",
        "taskiq": "taskiq_redis",
    }
    rows: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    processes = harness.Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="conveyor-async-peers-") as tmp:
            workdir = Path(tmp)
            redis = harness.PrivateRedis(workdir, processes)
            redis.start()
            host = floor.measure(redis.fresh_url(), args.roundtrips)  # nothing else running
            for name in args.only or LIBRARIES:
                python = pythons[name]
                probe = subprocess.run([python, "-c", f"import {modules[name]}"], check=False)
                if probe.returncode != 0:
                    notes.append(f"{name}: skipped ({python} cannot import {modules[name]})")
                    continue
                runs = []
                for n in range(args.runs):
                    print(f"{name}: run {n + 1} of {args.runs} ...", file=sys.stderr, flush=True)
                    argv = [python, __file__, "--one", name, "--url", redis.fresh_url(),
                            "--tasks", str(args.tasks), "--roundtrips", str(args.roundtrips),
                            "--log", str(workdir / f"{name}-{n}.log")]  # fmt: skip
                    if args.asyncio_client:
                        argv.append("--asyncio-client")
                    done = subprocess.run(argv, capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        log = workdir / f"{name}-{n}.log"
                        tail = log.read_text()[-2000:] if log.exists() else ""
                        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}\n{tail}")
                    runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
                    redis.flushall()
                rows[name] = {key: statistics.median(r[key] for r in runs) for key in MEASURES}
                rows[name]["version"] = runs[0]["version"]
    finally:
        processes.stop_all()
    print()
    print(f"async no-op tasks, one worker process each, private redis-server {redis.version}; "
          f"drain of {args.tasks:,} queued, {args.roundtrips} round trips; "
          f"median of {args.runs}")  # fmt: skip
    print()
    header = (f"{'library':<18}{'drain/s':>9}{'steady/s':>10}{'startup ms':>12}"
              f"{'rt p50 ms':>11}{'rt p90 ms':>11}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        print(f"{name + ' ' + row['version']:<18}{row['drain_rate']:>9,.0f}"
              f"{row['steady']:>10,.0f}{row['startup_ms']:>12,.0f}"
              f"{row['rt_p50_ms']:>11.2f}{row['rt_p90_ms']:>11.2f}")  # fmt: skip
    peers = [row for name, row in rows.items() if not name.startswith("conveyor")]
    for ours_name in ("conveyor", "conveyor-asyncio"):
        if ours_name not in rows or not peers:
            continue
        ours = rows[ours_name]
        best_drain = max(row["drain_rate"] for row in peers)
        best_steady = max(row["steady"] for row in peers)
        best_rt = min(row["rt_p50_ms"] for row in peers)
        print()
        print(f"{ours_name} / best peer: drain {ours['drain_rate'] / best_drain:.2f}x, steady "
              f"{ours['steady'] / best_steady:.2f}x, round trip p50 "
              f"{best_rt / ours['rt_p50_ms']:.2f}x (above 1: conveyor ahead)")  # fmt: skip
    print()
    print(floor.describe(host))
    for name, row in rows.items():
        print(f"  {name}: round trip p50 {row['rt_p50_ms'] / host['echo_p50_ms']:.2f}x the floor")
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
