#!/usr/bin/env python
"""Conveyor against its peers, side by side, on one machine in one run.

Each measurement gets a fresh SQLite file in a temporary directory, so no run sees
another's leftovers. A peer is a small class (enqueue, enqueue_batch, start_worker,
queue_size, roundtrip): adding Celery or Dramatiq on Redis later means adding a class.

    python bench/run.py [--tasks 20000] [--roundtrips 500] [--only conveyor|huey]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
QUEUE_POLL = 0.02
"""Seconds between queue-size polls while draining: fine enough for the rates we expect,
coarse enough that the bench process does not steal the worker's CPU."""
RSS_POLL = 0.05
BATCH_SIZE = 1000
WARMUP_ROUNDTRIPS = 20
WORKER_START_TIMEOUT = 30.0


# -- processes ----------------------------------------------------------------------------


class Processes:
    """Every worker this run starts, each in its own process group so its children die too.

    ``stop_all`` runs from ``finally``, and SIGTERM/SIGHUP are turned into SystemExit, so
    Ctrl-C, an error or a kill never leaves a worker behind.
    """

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, argv: Sequence[str], env: dict[str, str], cwd: Path, log: IO[bytes]
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left of it after ``grace`` seconds."""
        _signal_group(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        """Stop everything still running; a second Ctrl-C cannot interrupt this."""
        previous = {sig: signal.signal(sig, signal.SIG_IGN)
                    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}  # fmt: skip
        try:
            for proc in list(self.running):
                self.stop(proc, grace=1.0)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def tree_rss_kib(pid: int) -> tuple[int, int]:
    """Summed VmRSS (KiB) of ``pid`` and its descendants, and how many there are.

    Pages a forked child shares with its parent count in both, as ``ps`` would show them.
    """
    total = count = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                count += 1
                break
        with suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
                stack.extend(int(child) for child in children.split())
    return total, count


# -- peers --------------------------------------------------------------------------------


class Peer(ABC):
    """One library under test. ``open`` points it at a fresh database for a measurement.

    Handles returned by ``enqueue`` are whatever the library returns for a sent task;
    ``is_done`` tells whether its result is stored.
    """

    name: str

    def __init__(self, workdir: Path, processes: Processes) -> None:
        self.workdir = workdir
        self.processes = processes
        self.db_path = ""

    def open(self, label: str) -> None:
        """Use a new database file for the measurement called ``label``."""
        self.close()
        self.db_path = str(self.workdir / f"{self.name}-{label}.db")
        self.connect()

    @abstractmethod
    def connect(self) -> None:
        """Build the client for ``self.db_path``."""

    @abstractmethod
    def close(self) -> None:
        """Release the client's connections."""

    @abstractmethod
    def enqueue(self, count: int) -> tuple[Any, Any]:
        """Send ``count`` no-op tasks one call each; the first and last handles."""

    def enqueue_batch(self, count: int, size: int) -> tuple[Any, Any] | None:
        """Send ``count`` tasks in batches of ``size``; None where the library has no batch API."""
        return None

    @abstractmethod
    def worker_argv(self) -> list[str]:
        """Command line of one single-process worker."""

    @abstractmethod
    def worker_env(self) -> dict[str, str]:
        """Environment variables that point the worker at ``self.db_path``."""

    def start_worker(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.worker_env()}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
        )
        return self.processes.spawn(self.worker_argv(), env, self.workdir, log)

    @abstractmethod
    def queue_size(self) -> int:
        """Messages not yet finished (waiting or, where the broker tracks it, reserved)."""

    @abstractmethod
    def is_done(self, handle: Any) -> bool:
        """Whether the result of the task behind ``handle`` is stored."""

    @abstractmethod
    def roundtrip(self, timeout: float) -> None:
        """Send one no-op and wait for its result."""

    def notes(self) -> list[str]:
        """Settings a reader needs to judge the numbers."""
        return []


class ConveyorPeer(Peer):
    name = "conveyor"

    def __init__(self, workdir: Path, processes: Processes) -> None:
        super().__init__(workdir, processes)
        self.app: Any = None
        self.noop: Any = None

    def connect(self) -> None:
        from tasks_conveyor import make_app

        self.app, self.noop = make_app(self.db_path)
        self.app.broker.stats()  # create the schema before any timing starts

    def close(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = self.noop = None

    def enqueue(self, count: int) -> tuple[Any, Any]:
        delay = self.noop.delay
        first = last = delay()
        for _ in range(count - 1):
            last = delay()
        return first, last

    def enqueue_batch(self, count: int, size: int) -> tuple[Any, Any] | None:
        delay = self.noop.delay
        first = last = None
        for start in range(0, count, size):
            with self.app.batch():
                for _ in range(min(size, count - start)):
                    last = delay()
                    if first is None:
                        first = last
        return first, last

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "conveyor", "worker", "-A", "tasks_conveyor:app",
                "-c", "1", "-P", "prefork", "-l", "WARNING"]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        from tasks_conveyor import ENV_DB

        return {ENV_DB: self.db_path}

    def queue_size(self) -> int:
        return sum(stats.total for stats in self.app.broker.stats().values())

    def is_done(self, handle: Any) -> bool:
        return bool(handle.ready())

    def roundtrip(self, timeout: float) -> None:
        self.noop.delay().get(timeout=timeout)

    def notes(self) -> list[str]:
        return ["conveyor: worker -c 1 -P prefork (supervisor + 1 child), SQLite WAL, "
                "synchronous=NORMAL"]  # fmt: skip


class HueyPeer(Peer):
    name = "huey"
    # Huey's worker sleeps 0.1 s after an empty poll, backing off to 10 s; that would
    # measure its idle sleep rather than its queue, so poll at 1-5 ms like Conveyor's
    # worker does (it checks SQLite's data_version every millisecond).
    CONSUMER_FLAGS = ("-w", "1", "-k", "process", "-d", "0.001", "-m", "0.005", "-n", "-q")

    def __init__(self, workdir: Path, processes: Processes, synchronous: str) -> None:
        super().__init__(workdir, processes)
        self.synchronous = synchronous
        self.huey: Any = None
        self.noop: Any = None

    def connect(self) -> None:
        from tasks_huey import make_huey

        self.huey, self.noop = make_huey(self.db_path, self.synchronous)

    def close(self) -> None:
        if self.huey is not None:
            self.huey.storage.close()
            self.huey = self.noop = None

    def enqueue(self, count: int) -> tuple[Any, Any]:
        noop = self.noop
        first = last = noop()
        for _ in range(count - 1):
            last = noop()
        return first, last

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "huey.bin.huey_consumer", "tasks_huey.huey",
                *self.CONSUMER_FLAGS]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        from tasks_huey import ENV_DB, ENV_SYNC

        return {ENV_DB: self.db_path, ENV_SYNC: self.synchronous}

    def queue_size(self) -> int:
        return int(self.huey.pending_count())

    def is_done(self, handle: Any) -> bool:
        return bool(self.huey.storage.has_data_for_key(handle.id))

    def roundtrip(self, timeout: float) -> None:
        self.noop()(blocking=True, timeout=timeout)

    def notes(self) -> list[str]:
        return [
            f"huey: huey_consumer {' '.join(self.CONSUMER_FLAGS)} (consumer, 1 worker and "
            "a scheduler process), SQLite WAL, "
            f"synchronous={self.synchronous.upper()}, store_none=True",
            "huey: blocking result.get() polls from 50 ms with backoff (its client "
            "default), which bounds its round trip from below",
        ]


# -- measurements -------------------------------------------------------------------------


@dataclass
class Results:
    """Numbers for one peer; None where the peer has no such feature."""

    enqueue: float | None = None
    enqueue_batch: float | None = None
    drain_total: float | None = None
    drain_startup_ms: float | None = None
    drain_steady: float | None = None
    drain_seconds: float | None = None
    roundtrip_ms: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: float | None = None
    worker_processes: int | None = None


def measure_enqueue(peer: Peer, count: int, res: Results) -> None:
    peer.open("enqueue")
    peer.enqueue(1)  # open the connection outside the timing
    start = time.perf_counter()
    peer.enqueue(count)
    res.enqueue = count / (time.perf_counter() - start)

    peer.open("batch")
    peer.enqueue(1)
    start = time.perf_counter()
    sent = peer.enqueue_batch(count, BATCH_SIZE)
    if sent is not None:
        res.enqueue_batch = count / (time.perf_counter() - start)
    peer.close()


def measure_drain(peer: Peer, count: int, res: Results, log: IO[bytes]) -> None:
    """Fill a queue, start one worker, poll until it is empty and the last result stored.

    The clock starts right before the worker is spawned, so interpreter start-up and
    imports count; the time to the first stored result is also kept, so the steady rate
    is shown apart from start-up.
    """
    peer.open("drain")
    first, last = peer.enqueue_batch(count, BATCH_SIZE) or peer.enqueue(count)
    start = time.perf_counter()
    proc = peer.start_worker(log)
    deadline = start + max(120.0, count / 100)
    first_done: float | None = None
    peak_kib = peak_procs = 0
    next_rss = start
    try:
        while True:
            now = time.perf_counter()
            if now >= next_rss:
                kib, procs = tree_rss_kib(proc.pid)
                peak_kib, peak_procs = max(peak_kib, kib), max(peak_procs, procs)
                next_rss = now + RSS_POLL
            if first_done is None and peer.is_done(first):
                first_done = now
            if first_done is not None and peer.queue_size() == 0 and peer.is_done(last):
                end = now
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{peer.name} worker exited with {proc.returncode} mid-drain")
            if now > deadline:
                raise RuntimeError(f"{peer.name} did not drain {count} tasks in time")
            time.sleep(QUEUE_POLL)
        peak_kib = max(peak_kib, tree_rss_kib(proc.pid)[0])
    finally:
        peer.processes.stop(proc)
        peer.close()
    elapsed = end - start
    res.drain_seconds = elapsed
    res.drain_total = count / elapsed
    res.drain_startup_ms = (first_done - start) * 1000
    res.drain_steady = (count - 1) / max(end - first_done, 1e-9)
    res.peak_rss_mib = peak_kib / 1024
    res.worker_processes = peak_procs


def measure_roundtrip(peer: Peer, count: int, res: Results, log: IO[bytes]) -> None:
    """Sequential send-and-wait against an idle worker, after it has proved it is up."""
    peer.open("roundtrip")
    proc = peer.start_worker(log)
    try:
        wait_until_serving(peer, proc)
        for _ in range(WARMUP_ROUNDTRIPS):
            peer.roundtrip(10)
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            peer.roundtrip(10)
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        peer.processes.stop(proc)
        peer.close()
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    res.roundtrip_ms = {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98]}


def wait_until_serving(peer: Peer, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while True:
        try:
            peer.roundtrip(1)
            return
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError(f"{peer.name} worker exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise


# -- report -------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    get: Callable[[Results], float | None]
    higher_is_better: bool
    fmt: str
    target: str = ""
    meets: Callable[[float], bool] | None = None
    compare: bool = True


ROWS = [
    Row("enqueue, one by one (tasks/s)", lambda r: r.enqueue, True, "{:,.0f}",
        ">= 5,000", lambda v: v >= 5000),
    Row(f"enqueue, batches of {BATCH_SIZE:,} (tasks/s)", lambda r: r.enqueue_batch, True,
        "{:,.0f}"),
    Row("drain, from worker start (tasks/s)", lambda r: r.drain_total, True, "{:,.0f}"),
    Row("  worker start -> first result (ms)", lambda r: r.drain_startup_ms, False, "{:,.0f}"),
    Row("  drain after first result (tasks/s)", lambda r: r.drain_steady, True, "{:,.0f}",
        ">= 3,000", lambda v: v >= 3000),
    Row("round trip p50 (ms)", lambda r: r.roundtrip_ms.get("p50"), False, "{:.2f}",
        "<= 5", lambda v: v <= 5),
    Row("round trip p90 (ms)", lambda r: r.roundtrip_ms.get("p90"), False, "{:.2f}"),
    Row("round trip p99 (ms)", lambda r: r.roundtrip_ms.get("p99"), False, "{:.2f}"),
    Row("peak worker RSS, drain (MiB)", lambda r: r.peak_rss_mib, False, "{:.1f}"),
    Row("  processes in the worker tree", lambda r: r.worker_processes, False, "{:.0f}",
        compare=False),
]  # fmt: skip


def render(results: dict[str, Results]) -> str:
    """One table: a column per library, then Conveyor against each other library."""
    names = list(results)
    others = [name for name in names if name != "conveyor"] if "conveyor" in results else []
    header = ["", *names, *[f"conveyor vs {name}" for name in others]]
    if "conveyor" in results:
        header.append("conveyor target")
    lines: list[list[str]] = [header]
    for row in ROWS:
        values = {name: row.get(res) for name, res in results.items()}
        cells = [row.label]
        cells += ["n/a" if v is None else row.fmt.format(v) for v in values.values()]
        for name in others:
            mine, theirs = values["conveyor"], values[name]
            cells.append(ratio(mine, theirs, name, row.higher_is_better) if row.compare else "")
        if "conveyor" in results:
            value = values["conveyor"]
            met = "" if row.meets is None or value is None else (
                " ok" if row.meets(value) else " MISSED")  # fmt: skip
            cells.append(row.target + met)
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        first = line[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        out.append("  ".join([first, *rest]).rstrip())
        if n == 0:
            out.append("-" * len(out[0]))
    if others:
        out.append("conveyor vs X: >1 means Conveyor is better. Rates are conveyor/X; "
                   "times and memory are X/conveyor.")  # fmt: skip
    return "\n".join(out)


def ratio(conveyor: float | None, other: float | None, name: str, higher_is_better: bool) -> str:
    if not conveyor or not other:
        return "n/a"
    if higher_is_better:
        return f"{conveyor / other:.2f}x (conveyor/{name})"
    return f"{other / conveyor:.2f}x ({name}/conveyor)"


def machine() -> str:
    model = ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " (" + line.partition(":")[2].strip() + ")"
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    versions = []
    for dist in ("conveyor-tasks", "huey"):
        with suppress(metadata.PackageNotFoundError):
            versions.append(f"{dist} {metadata.version(dist)}")
    return "\n".join([
        f"machine: {platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {usable} usable{model}",
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"sqlite {sqlite3.sqlite_version}; {', '.join(versions)}",
    ])  # fmt: skip


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else "")
    parser.add_argument("--tasks", type=int, default=20000, help="tasks to enqueue and drain")
    parser.add_argument("--roundtrips", type=int, default=500, help="sequential round trips")
    parser.add_argument("--only", choices=list(PEERS), help="run one library only")
    parser.add_argument("--huey-synchronous", choices=["normal", "full"], default="normal",
                        help="SQLite synchronous for Huey: normal matches Conveyor; full is "
                             "Huey's own default [normal]")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (DBs, logs)")
    args = parser.parse_args(argv)
    if args.tasks < 2 or args.roundtrips < 2:
        parser.error("--tasks and --roundtrips must be at least 2")
    return args


PEERS: dict[str, Callable[[Path, Processes, argparse.Namespace], Peer]] = {
    "conveyor": lambda workdir, procs, args: ConveyorPeer(workdir, procs),
    "huey": lambda workdir, procs, args: HueyPeer(workdir, procs, args.huey_synchronous),
}
"""Every library the bench knows, in column order; a new peer is a class and a line here."""


@contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    sys.path.insert(0, str(BENCH_DIR))
    names = [args.only] if args.only else list(PEERS)
    print(machine())
    print(f"tasks: {args.tasks:,}, round trips: {args.roundtrips:,}, one worker process each")
    procs = Processes()
    results: dict[str, Results] = {}
    with workspace(args.keep) as workdir:
        try:
            peers = [PEERS[name](workdir, procs, args) for name in names]
            for peer in peers:
                for note in peer.notes():
                    print(note)
            print(flush=True)
            for peer in peers:
                results[peer.name] = run_peer(peer, args, workdir)
        finally:
            procs.stop_all()
    print()
    print(render(results))
    return 0


def run_peer(peer: Peer, args: argparse.Namespace, workdir: Path) -> Results:
    """Every measurement for one peer; on failure, show the tail of its worker log."""
    res = Results()
    log_path = workdir / f"{peer.name}-worker.log"
    with log_path.open("ab") as log:
        try:
            with step(peer, "enqueue"):
                measure_enqueue(peer, args.tasks, res)
            with step(peer, "drain"):
                measure_drain(peer, args.tasks, res, log)
            with step(peer, "round trip"):
                measure_roundtrip(peer, args.roundtrips, res, log)
        except Exception:
            show_log(log_path)
            raise
    return res


@contextmanager
def step(peer: Peer, what: str) -> Iterator[None]:
    """Progress on stderr, so a slow step is visible and stdout keeps only the report."""
    print(f"{peer.name}: {what} ...", end=" ", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    print(f"{time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)


def show_log(path: Path, lines: int = 30) -> None:
    with suppress(OSError):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        if tail:
            print(f"\n--- last lines of {path.name} ---", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: every worker was stopped", file=sys.stderr)
        sys.exit(130)
