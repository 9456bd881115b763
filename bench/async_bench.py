#!/usr/bin/env python
"""10,000 ``async def`` tasks that each ``await asyncio.sleep(1)``, through one worker process.

``conveyor worker -c 1 --async-concurrency 10000``: a supervisor and one child, whose
event loop runs every coroutine at once. On a fresh SQLite file, and on a private
redis-server (started on a free port, as bench/run.py does) with ``--redis``. Each run
starts a new worker and waits until it answers a ping, so start-up is not in the figure.

    python bench/async_bench.py [--tasks 10000] [--sleep 1] [--runs 3] [--redis]
        [--pool prefork|asyncio]

Then ``--roundtrips`` round trips of an async def no-op and of a def no-op, in
alternating blocks (the p50 of each): what handing a task to the loop adds to one task.

The clock starts before the first send (all tasks are published in one ``app.batch()``)
and stops when the last result is stored (read with one ``ResultSet.get``, every value
checked). The issue's target: all done in under 3 s of the first send. ``sleep`` is the
floor; the rest is what the worker adds.
"""

from __future__ import annotations

import argparse
import asyncio
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
ENV_URL = "BENCH_ASYNC_URL"
TARGET = 3.0


def make_app(url: str) -> Any:
    from conveyor import Conveyor

    app = Conveyor("async-bench", broker=url, backend=url, set_as_current=False)

    @app.task(name="bench.nap")
    async def nap(i: int, seconds: float) -> int:
        await asyncio.sleep(seconds)
        return i

    @app.task(name="bench.ping")
    def ping() -> str:
        return "pong"

    @app.task(name="bench.anoop")
    async def anoop() -> None:
        return None

    return app


def __getattr__(name: str) -> Any:
    """The worker loads ``async_bench:app``; the app is built from the URL in the environment."""
    if name != "app":
        raise AttributeError(name)
    url = os.environ.get(ENV_URL)
    if not url:
        raise RuntimeError(f"set {ENV_URL} to the broker URL the worker should use")
    globals()["app"] = make_app(url)
    return globals()["app"]


def start_worker(
    url: str, workdir: Path, concurrency: int, pool: str = "prefork", path: str | None = None
) -> subprocess.Popen[bytes]:
    """``conveyor worker -c 1`` on ``async_bench:app``, its log in ``workdir``. ``path``:
    the worker's ``PYTHONPATH`` after the bench dir (a source tree to run), instead of the
    caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env[ENV_URL] = url
    after = os.environ.get("PYTHONPATH", "") if path is None else path
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH_DIR), after) if p)
    argv = [sys.executable, "-m", "conveyor", "worker", "-A", "async_bench:app"]
    argv += ["-c", "1", "-P", pool, "--async-concurrency", str(concurrency), "-l", "WARNING"]
    log = open(workdir / "worker.log", "ab")  # noqa: SIM115 - the worker owns it
    return subprocess.Popen(
        argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            return


NAP = 0.02
"""Seconds the round trips' third kind awaits: a coroutine that waits on I/O a moment."""


def roundtrips(app: Any, count: int) -> dict[str, float]:
    """p50 of one task sent and its result read, one after another: an async def no-op
    and a def no-op (``bench.ping``) in alternating blocks of 20 on the same worker, then
    (after them, so they do not change how the worker treats the no-ops) a tenth as many
    of an async def task that awaits ``asyncio.sleep(NAP)``."""
    times: dict[str, list[float]] = {"async": [], "def": [], "nap": []}
    sends = {
        "async": lambda: app.tasks["bench.anoop"].delay(),
        "def": lambda: app.tasks["bench.ping"].delay(),
        "nap": lambda: app.tasks["bench.nap"].delay(0, NAP),
    }
    blocks = 2 * max(1, count // 20)
    kinds = ["async" if block % 2 == 0 else "def" for block in range(blocks)]
    for kind in [*kinds, *["nap"] * max(1, blocks // 10)]:
        for _ in range(20):
            started = time.perf_counter()
            sends[kind]().get(timeout=30)
            times[kind].append(time.perf_counter() - started)
    return {kind: statistics.median(values) * 1000 for kind, values in times.items()}


def one_run(
    url: str, tasks: int, seconds: float, workdir: Path, count: int, pool: str
) -> dict[str, float]:
    from conveyor import ResultSet

    app = make_app(url)
    worker = start_worker(url, workdir, tasks, pool)
    try:
        app.tasks["bench.ping"].delay().get(timeout=60)
        nap = app.tasks["bench.nap"]
        started = time.perf_counter()
        with app.batch():
            results = [nap.delay(i, seconds) for i in range(tasks)]
        sent = time.perf_counter()
        values = ResultSet(results, app=app).get(timeout=600)
        done = time.perf_counter()
        rt = roundtrips(app, count) if count else {"async": 0.0, "def": 0.0, "nap": 0.0}
    finally:
        stop_worker(worker)
        app.close()
    if values != list(range(tasks)):
        raise SystemExit("wrong results")
    return {
        "send": sent - started,
        "total": done - started,
        "rt_async": rt["async"],
        "rt_def": rt["def"],
        "rt_nap": rt["nap"],
    }


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # so ``finally`` stops the worker and the redis-server


def main() -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each task sleeps")
    parser.add_argument("--runs", type=int, default=3, help="runs per broker; the median")
    parser.add_argument("--redis", action="store_true", help="also on a private redis-server")
    parser.add_argument(
        "--roundtrips", type=int, default=200, help="round trips of each kind after the drain"
    )
    parser.add_argument(
        "--pool", default="prefork", choices=["prefork", "asyncio"], help="the worker's -P"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH_DIR))
    import run as harness  # bench/run.py: its private redis-server and process groups

    rows: list[tuple[str, dict[str, float]]] = []
    processes = harness.Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="conveyor-async-") as tmp:
            workdir = Path(tmp)
            redis = None
            if args.redis:
                redis = harness.PrivateRedis(workdir, processes)
                redis.start()
            for name in ["sqlite"] + (["redis"] if redis else []):
                runs = []
                for n in range(args.runs):
                    if redis is not None and name == "redis":
                        url = redis.fresh_url()
                    else:
                        url = f"sqlite:///{workdir / f'async-{n}.db'}"
                    print(f"{name}: run {n + 1} of {args.runs} ...", file=sys.stderr, flush=True)
                    runs.append(
                        one_run(url, args.tasks, args.sleep, workdir, args.roundtrips, args.pool)
                    )
                rows.append(
                    (
                        name,
                        {
                            "send": statistics.median(r["send"] for r in runs),
                            "total": statistics.median(r["total"] for r in runs),
                            "best": min(r["total"] for r in runs),
                            "rt_async": statistics.median(r["rt_async"] for r in runs),
                            "rt_def": statistics.median(r["rt_def"] for r in runs),
                            "rt_nap": statistics.median(r["rt_nap"] for r in runs),
                        },
                    )
                )
    finally:
        processes.stop_all()
    print()
    print(
        f"{args.tasks:,} async tasks that each await asyncio.sleep({args.sleep:g}), one worker "
        f"process (-c 1 -P {args.pool} --async-concurrency {args.tasks})"
    )
    print(
        f"median of {args.runs} runs; send = publishing them all; total = first send to last result"
    )
    print()
    header = f"{'broker':<8}{'send (s)':>10}{'total (s)':>11}{'best (s)':>10}"
    header += f"{'tasks/s':>10}  {'target':<14}{'rt async':>10}{'rt def':>8}"
    header += f"{f'rt nap {NAP * 1000:g}':>11}"
    print(header)
    print("-" * len(header))
    for name, row in rows:
        verdict = "ok" if row["total"] < TARGET else "MISSED"
        print(
            f"{name:<8}{row['send']:>10.2f}{row['total']:>11.2f}{row['best']:>10.2f}"
            f"{args.tasks / row['total']:>10,.0f}  {f'< {TARGET:g} s {verdict}':<14}"
            f"{row['rt_async']:>10.2f}{row['rt_def']:>8.2f}{row['rt_nap']:>11.2f}"
        )
    print()
    print("rt async / rt def: round trip p50 (ms) of an async def no-op and a def no-op,")
    print("sent and read one after another on the same idle worker; rt nap: of an async")
    print(f"def task that awaits asyncio.sleep({NAP:g}) (its floor: {NAP * 1000:g} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
