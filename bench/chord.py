#!/usr/bin/env python
"""A chord of 10,000 no-op members and a sum callback, timed from send to result.

One worker process (``conveyor worker -c 1``: a supervisor and one child) on a fresh
SQLite file, and on Redis when ``--redis URL`` is given (the database is flushed first,
so give it a scratch database). Each run starts a new worker and waits until it answers
a ping, so start-up is not in the figure.

    python bench/chord.py [--members 10000] [--runs 3] [--redis redis://localhost:6379/15]

The clock starts before ``chord(...).apply_async()`` (which publishes the 10,000 header
messages in one batch) and stops when ``result.get()`` returns the callback's value; the
value is checked. Targets: under 10 s on SQLite, under 2 s on Redis.
"""

from __future__ import annotations

import argparse
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
ENV_URL = "BENCH_CHORD_URL"
TARGETS = {"sqlite": 10.0, "redis": 2.0}


def make_app(url: str) -> Any:
    from conveyor import Conveyor

    app = Conveyor("chord-bench", broker=url, backend=url, set_as_current=False)

    @app.task(name="bench.member")
    def member(i: int) -> int:
        return i

    @app.task(name="bench.total")
    def total(values: list[int]) -> int:
        return sum(values)

    @app.task(name="bench.ping")
    def ping() -> str:
        return "pong"

    return app


def __getattr__(name: str) -> Any:
    """The worker loads ``chord:app``; the app is built from the URL in the environment."""
    if name != "app":
        raise AttributeError(name)
    url = os.environ.get(ENV_URL)
    if not url:
        raise RuntimeError(f"set {ENV_URL} to the broker URL the worker should use")
    globals()["app"] = make_app(url)
    return globals()["app"]


def start_worker(url: str, workdir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env[ENV_URL] = url
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
    argv = [sys.executable, "-m", "conveyor", "worker", "-A", "chord:app"]
    argv += ["-c", "1", "-P", "prefork", "-l", "WARNING"]
    log = open(workdir / "worker.log", "ab")  # noqa: SIM115 - the worker owns it
    return subprocess.Popen(
        argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            return


def one_run(url: str, members: int, workdir: Path) -> dict[str, float]:
    from conveyor import chord

    app = make_app(url)
    worker = start_worker(url, workdir)
    try:
        app.tasks["bench.ping"].delay().get(timeout=60)
        member, total = app.tasks["bench.member"], app.tasks["bench.total"]
        header = [member.s(i) for i in range(members)]
        started = time.perf_counter()
        result = chord(header, total.s()).apply_async()
        sent = time.perf_counter()
        value = result.get(timeout=600)
        done = time.perf_counter()
    finally:
        stop_worker(worker)
        app.close()
    expected = members * (members - 1) // 2
    if value != expected:
        raise SystemExit(f"wrong chord result: {value!r}, expected {expected}")
    return {"send": sent - started, "total": done - started}


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # so ``finally`` stops the worker


def main() -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per broker; the median")
    parser.add_argument("--redis", metavar="URL", help="also run on this Redis database")
    args = parser.parse_args()
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="conveyor-chord-") as tmp:
        workdir = Path(tmp)
        brokers: list[tuple[str, Any]] = [("sqlite", None)]
        if args.redis:
            brokers.append(("redis", args.redis))
        for name, url in brokers:
            runs = []
            for n in range(args.runs):
                if name == "sqlite":
                    run_url = f"sqlite:///{workdir / f'chord-{n}.db'}"
                else:
                    flush_redis(url)
                    run_url = url
                print(f"{name}: run {n + 1} of {args.runs} ...", file=sys.stderr, flush=True)
                runs.append(one_run(run_url, args.members, workdir))
            rows.append(
                (
                    name,
                    {
                        "send": statistics.median(r["send"] for r in runs),
                        "total": statistics.median(r["total"] for r in runs),
                        "best": min(r["total"] for r in runs),
                    },
                )
            )
    print()
    print(f"chord of {args.members:,} no-op members + sum callback, one worker process (-c 1)")
    print(f"median of {args.runs} runs; send = apply_async() alone; total = send to result")
    print()
    header = f"{'broker':<8}{'send (s)':>10}{'total (s)':>11}{'best (s)':>10}"
    header += f"{'members/s':>11}  {'target':<14}"
    print(header)
    print("-" * len(header))
    for name, row in rows:
        target = TARGETS[name]
        verdict = "ok" if row["total"] < target else "MISSED"
        print(
            f"{name:<8}{row['send']:>10.2f}{row['total']:>11.2f}{row['best']:>10.2f}"
            f"{args.members / row['total']:>11,.0f}  {f'< {target:g} s {verdict}':<14}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
