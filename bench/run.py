#!/usr/bin/env python
"""Conveyor against its peers, side by side, on one machine in one run.

``--broker sqlite`` (the default) runs Conveyor and Huey on embedded SQLite; each
measurement gets a fresh SQLite file in a temporary directory. ``--broker redis`` starts
one private redis-server on a free port and runs Conveyor, Celery, Dramatiq and Huey
against it; each measurement gets a fresh database number, and the server is flushed
between libraries. A peer is a small class (enqueue, enqueue_batch, worker_argv,
queue_size, is_done, roundtrip): adding a library means adding a class.

    python bench/run.py [--broker sqlite|redis] [--tasks 20000] [--roundtrips 500]
                        [--only NAME] [--sqlite-synchronous normal|full|both]
                        [--timeout 120] [--keep]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
QUEUE_POLL = 0.02
"""Seconds between queue-size polls while draining: fine enough for the rates we expect,
coarse enough that the bench process does not steal the worker's CPU."""
FIRST_RESULT_POLL = 0.002
"""Seconds between checks for the first result, so start-up is timed to ~2 ms, not ~20:
one indexed read of the result store each time, a few percent of one core."""
RSS_POLL = 0.05
BATCH_SIZE = 1000
WARMUP_ROUNDTRIPS = 20
WORKER_START_TIMEOUT = 30.0
REDIS_DATABASES = 64
"""Databases the private redis-server offers: one per measurement per library."""


# -- processes ----------------------------------------------------------------------------


class Processes:
    """Every process this run starts, each in its own process group so its children die too.

    ``stop_all`` runs from ``finally``, and SIGTERM/SIGHUP are turned into SystemExit, so
    Ctrl-C, an error or a kill never leaves a worker (or the private Redis) behind.
    """

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, argv: Sequence[str], env: dict[str, str], cwd: Path, log: IO[bytes] | int
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
        """Stop everything still running, newest first; a second Ctrl-C cannot interrupt it."""
        previous = {sig: signal.signal(sig, signal.SIG_IGN)
                    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                                signal.SIGALRM)}  # fmt: skip
        try:
            for proc in reversed(self.running):
                self.stop(proc, grace=1.0)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bytecode_cache_env(workdir: Path) -> dict[str, str]:
    """Workers keep compiled modules in the run's temp dir, whatever the caller's
    PYTHONDONTWRITEBYTECODE says.

    An installed wheel ships compiled (pip compiles on install), and a checkout compiles
    on its first import; with PYTHONDONTWRITEBYTECODE=1 a checkout such as Conveyor's
    (``pip install -e``) would be compiled again at every worker start while the peers'
    wheels are read compiled: about 100 ms of start-up that no user pays. Every peer's
    worker runs with this cache, filled by one untimed start (``Peer.warm_up``).
    """
    return {"PYTHONPYCACHEPREFIX": str(workdir / "pycache")}


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class StepTimeout(Exception):
    """A measurement ran past its time limit."""


RERAISE_EVERY = 0.25
"""Seconds between repeats of a signal's exception until it gets through."""


class Signals:
    """Ctrl-C, SIGTERM, SIGHUP and step time limits, made reliable.

    An exception raised by a signal handler can land inside a ``__del__`` (Celery's
    AsyncResult has one, and its enqueue loop drops thousands of them), where Python
    prints it and carries on. So the handlers arm a repeating SIGALRM that raises the same
    exception again every 0.25 s until one gets through. SIGALRM also interrupts a
    blocked socket read, so a peer that hangs in its own client code cannot hang the run.
    """

    def __init__(self) -> None:
        self.stopping: BaseException | None = None
        self.deadline: float | None = None
        self.what = ""
        self.limit = 0.0

    def install(self) -> None:
        signal.signal(signal.SIGALRM, self._on_alarm)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_stop)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # kept ignored under nohup
            signal.signal(signal.SIGINT, self._on_stop)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = KeyboardInterrupt() if signum == signal.SIGINT else SystemExit(128 + signum)
        signal.setitimer(signal.ITIMER_REAL, RERAISE_EVERY, RERAISE_EVERY)
        raise self.stopping

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping is not None:
            raise self.stopping
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise StepTimeout(f"{self.what} took over {self.limit:g}s")

    @contextmanager
    def time_limit(self, seconds: float, what: str) -> Iterator[None]:
        """Raise StepTimeout in the main thread after ``seconds`` (again until it lands)."""
        self.deadline, self.what, self.limit = time.monotonic() + seconds, what, seconds
        signal.setitimer(signal.ITIMER_REAL, seconds, RERAISE_EVERY)
        try:
            yield
        finally:
            self.deadline = None
            if self.stopping is None:
                signal.setitimer(signal.ITIMER_REAL, 0)

    def quiet(self) -> None:
        """Stop the repeats before the final clean-up runs."""
        signal.setitimer(signal.ITIMER_REAL, 0)


SIGNALS = Signals()


def tree_pids(pid: int) -> Iterator[int]:
    """``pid`` and its descendants, from /proc (those that exit meanwhile are left out)."""
    stack = [pid]
    while stack:
        current = stack.pop()
        yield current
        with suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
                stack.extend(int(child) for child in children.split())


def tree_rss_kib(pid: int) -> tuple[int, int]:
    """Summed VmRSS (KiB) of ``pid`` and its descendants, and how many there are.

    Pages a forked child shares with its parent count in both, as ``ps`` would show them.
    """
    total = count = 0
    for current in tree_pids(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                count += 1
                break
    return total, count


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU of ``pid`` and its descendants so far, from /proc."""
    ticks = 0
    for current in tree_pids(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# -- the private Redis --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """One redis-server for the whole run: a free port, a temp dir, no persistence.

    Never the shared Redis on 6379. Each measurement asks ``fresh_url`` for a database
    number nobody has used yet; ``flushall`` empties the server between libraries.
    """

    def __init__(self, workdir: Path, processes: Processes) -> None:
        self.directory = workdir / "redis"
        self.processes = processes
        self.port = 0
        self.next_db = 0
        self.version = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (Debian: apt-get install redis-server)")
        import redis

        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                "--databases", str(REDIS_DATABASES), "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log")]  # fmt: skip
        self.proc = self.processes.spawn(argv, dict(os.environ), self.directory, subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        while True:
            try:
                self.version = str(client.info("server")["redis_version"])
                break
            except redis.RedisError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer within {timeout}s") from None
                time.sleep(0.02)
        client.close()

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def fresh_url(self) -> str:
        if self.next_db >= REDIS_DATABASES:
            raise RuntimeError("the private redis-server has no unused database left")
        url = self.url(self.next_db)
        self.next_db += 1
        return url

    def client(self, url: str) -> Any:
        import redis

        return redis.Redis.from_url(url, socket_timeout=10)

    def flushall(self) -> None:
        client = self.client(self.url(0))
        try:
            client.flushall()
        finally:
            client.close()


@contextmanager
def private_redis(prefix: str) -> Iterator[tuple[PrivateRedis, Path]]:
    """A started ``PrivateRedis`` and the temp dir it lives in (named ``prefix``...); on
    the way out, every process spawned for it is stopped."""
    processes = Processes()
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            server = PrivateRedis(Path(tmp), processes)
            server.start()
            yield server, Path(tmp)
    finally:
        processes.stop_all()


# -- peers --------------------------------------------------------------------------------


class Peer(ABC):
    """One library under test. ``open`` points it at a fresh database for a measurement.

    ``location`` is a SQLite file path, or a Redis URL when the peer runs on the private
    Redis (``self.redis``). Handles returned by ``enqueue`` are whatever the peer needs
    to find a task's result again; ``is_done`` tells whether that result is stored.
    """

    name: str
    library = ""
    """The distribution to import-check and to print the version of."""
    batch_note = "no batch API"
    """Why ``enqueue_batch`` returns None, shown in the table."""

    def __init__(
        self, workdir: Path, processes: Processes, redis: PrivateRedis | None = None
    ) -> None:
        self.workdir = workdir
        self.processes = processes
        self.redis = redis
        self.location = ""
        self.raw: Any = None
        """A plain redis-py client on ``location``, for key checks the library has no API for."""

    def open(self, label: str) -> None:
        """Use a new database (file or Redis database number) for the measurement ``label``."""
        self.close()
        if self.redis is None:
            self.location = str(self.workdir / f"{self.name}-{label}.db")
        else:
            self.location = self.redis.fresh_url()
            self.raw = self.redis.client(self.location)
        self.connect()

    def close(self) -> None:
        with suppress(Exception):
            self.disconnect()
        if self.raw is not None:
            with suppress(Exception):
                self.raw.close()
            self.raw = None

    def check(self) -> None:  # noqa: B027 - optional hook
        """Raise ImportError (or another error) when the library cannot be used here."""

    @abstractmethod
    def connect(self) -> None:
        """Build the client for ``self.location``."""

    @abstractmethod
    def disconnect(self) -> None:
        """Release the client's connections."""

    @abstractmethod
    def enqueue(self, count: int) -> tuple[Any, Any]:
        """Send ``count`` no-op tasks one call each; the first and last handles."""

    def enqueue_batch(self, count: int, size: int) -> tuple[Any, Any] | None:
        """Send ``count`` tasks in batches of ``size``; None where the library has no batch API."""
        return None

    def purge(self) -> None:  # noqa: B027 - optional hook
        """Drop every queued message (after the warm-up send, before a timed enqueue)."""

    @abstractmethod
    def worker_argv(self) -> list[str]:
        """Command line of one single-process worker."""

    @abstractmethod
    def worker_env(self) -> dict[str, str]:
        """Environment variables that point the worker at ``self.location``."""

    def start_worker(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.worker_env(), **bytecode_cache_env(self.workdir)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
        )
        return self.processes.spawn(self.worker_argv(), env, self.workdir, log)

    def warm_up(self, log: IO[bytes]) -> None:
        """Start a worker and have it serve one task, untimed, so that the timed starts
        read their modules compiled (see ``bytecode_cache_env``)."""
        self.open("warmup")
        proc = self.start_worker(log)
        try:
            wait_until_serving(self, proc)
        finally:
            self.processes.stop(proc)
            self.close()

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
    library = "conveyor-tasks"

    def __init__(
        self,
        workdir: Path,
        processes: Processes,
        redis: PrivateRedis | None = None,
        synchronous: str = "normal",
        name: str = "conveyor",
    ) -> None:
        super().__init__(workdir, processes, redis)
        self.name = name
        self.synchronous = synchronous
        """SQLite's ``?synchronous=`` for the bench process and the worker alike."""
        self.app: Any = None
        self.noop: Any = None

    @property
    def url(self) -> str:
        """``location`` as the URL both processes open (a SQLite file with its durability)."""
        if self.redis is not None:
            return self.location
        return f"sqlite:///{os.path.abspath(self.location)}?synchronous={self.synchronous}"

    def check(self) -> None:
        import tasks_conveyor  # noqa: F401

        if self.redis is not None:
            import redis  # noqa: F401

    def connect(self) -> None:
        from tasks_conveyor import make_app

        self.app, self.noop = make_app(self.url)
        self.app.broker.stats()  # connect (and create the schema) before any timing starts

    def disconnect(self) -> None:
        if self.app is not None:
            app, self.app, self.noop = self.app, None, None
            app.close()

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

    def purge(self) -> None:
        self.app.broker.purge()

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "conveyor", "worker", "-A", "tasks_conveyor:app",
                "-c", "1", "-P", "prefork", "-l", "WARNING"]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        from tasks_conveyor import ENV_DB

        return {ENV_DB: self.url}

    def queue_size(self) -> int:
        return sum(stats.total for stats in self.app.broker.stats().values())

    def is_done(self, handle: Any) -> bool:
        return bool(handle.ready())

    def roundtrip(self, timeout: float) -> None:
        self.noop.delay().get(timeout=timeout)

    def notes(self) -> list[str]:
        if self.redis is None:
            return [f"{self.name}: worker -c 1 -P prefork (supervisor + 1 child), SQLite WAL, "
                    f"synchronous={self.synchronous.upper()}"]  # fmt: skip
        return [
            "conveyor: worker -c 1 -P prefork -l WARNING (supervisor + 1 child); broker, "
            "results and coordination in the same Redis database; batched = "
            f"`with app.batch():` around each {BATCH_SIZE:,} delay() calls"
        ]


class HueyPeer(Peer):
    name = "huey"
    library = "huey"
    # Huey's worker sleeps 0.1 s after an empty poll, backing off to 10 s; that would
    # measure its idle sleep rather than its queue, so poll at 1-5 ms like Conveyor's
    # worker does (it checks SQLite's data_version every millisecond). On Redis the
    # worker blocks in BRPOP instead and these two flags do not come into play.
    CONSUMER_FLAGS = ("-w", "1", "-k", "process", "-d", "0.001", "-m", "0.005", "-n", "-q")

    def __init__(
        self,
        workdir: Path,
        processes: Processes,
        synchronous: str,
        redis: PrivateRedis | None = None,
    ) -> None:
        super().__init__(workdir, processes, redis)
        self.synchronous = synchronous
        self.huey: Any = None
        self.noop: Any = None

    def check(self) -> None:
        import tasks_huey  # noqa: F401

        if self.redis is not None:
            import redis  # noqa: F401

    def connect(self) -> None:
        from tasks_huey import make_huey, make_redis_huey

        if self.redis is None:
            self.huey, self.noop = make_huey(self.location, self.synchronous)
        else:
            self.huey, self.noop = make_redis_huey(self.location)

    def disconnect(self) -> None:
        if self.huey is not None:
            huey, self.huey, self.noop = self.huey, None, None
            if self.redis is None:
                huey.storage.close()
            else:
                huey.storage.pool.disconnect()

    def enqueue(self, count: int) -> tuple[Any, Any]:
        noop = self.noop
        first = last = noop()
        for _ in range(count - 1):
            last = noop()
        return first, last

    def purge(self) -> None:
        self.huey.storage.flush_queue()

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "huey.bin.huey_consumer", "tasks_huey.huey",
                *self.CONSUMER_FLAGS]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        from tasks_huey import ENV_DB, ENV_SYNC, ENV_URL

        if self.redis is not None:
            return {ENV_URL: self.location}
        return {ENV_DB: self.location, ENV_SYNC: self.synchronous}

    def queue_size(self) -> int:
        return int(self.huey.pending_count())

    def is_done(self, handle: Any) -> bool:
        return bool(self.huey.storage.has_data_for_key(handle.id))

    def roundtrip(self, timeout: float) -> None:
        self.noop()(blocking=True, timeout=timeout)

    def notes(self) -> list[str]:
        if self.redis is not None:
            return [
                f"huey: RedisHuey, huey_consumer {' '.join(self.CONSUMER_FLAGS)} (consumer, "
                "1 worker process blocking in BRPOP, 1 scheduler process), store_none=True, "
                "notify_result=True "
                "(a blocking get waits with BLPOP instead of polling)",
            ]
        return [
            f"huey: huey_consumer {' '.join(self.CONSUMER_FLAGS)} (consumer, 1 worker and "
            "a scheduler process), SQLite WAL, "
            f"synchronous={self.synchronous.upper()}, store_none=True",
            "huey: blocking result.get() polls from 50 ms with backoff (its client "
            "default), which bounds its round trip from below",
        ]


class CeleryPeer(Peer):
    name = "celery"
    library = "celery"
    QUEUE = "celery"

    def __init__(self, workdir: Path, processes: Processes, redis: PrivateRedis) -> None:
        super().__init__(workdir, processes, redis)
        self.app: Any = None
        self.noop: Any = None
        self.batching = False

    def check(self) -> None:
        import tasks_celery  # noqa: F401
        from kombu.messaging import Producer

        self.batching = hasattr(Producer, "batch")

    def connect(self) -> None:
        from tasks_celery import make_app

        self.app, self.noop = make_app(self.location)
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=3)

    def disconnect(self) -> None:
        if self.app is not None:
            app, self.app, self.noop = self.app, None, None
            app.close()

    def enqueue(self, count: int) -> tuple[Any, Any]:
        # Keep ids, not AsyncResults: like a fire-and-forget caller, each result object is
        # dropped at once (Celery then unsubscribes from that task's result channel).
        delay = self.noop.delay
        first = last = delay().id
        for _ in range(count - 1):
            last = delay().id
        return first, last

    def enqueue_batch(self, count: int, size: int) -> tuple[Any, Any] | None:
        """``group(...).apply_async()`` per ``size`` tasks, inside kombu's ``producer.batch``.

        A group alone still sends one LPUSH per task; kombu 5.6+ ``Producer.batch``
        pipelines them, which is the most a Celery user can get, so it is used when there.
        """
        from celery import group

        noop = self.noop
        first = last = None
        for start in range(0, count, size):
            tasks = group(noop.s() for _ in range(min(size, count - start)))
            with (
                self.app.producer_or_acquire() as producer,
                producer.batch(max_size=size) if self.batching else nullcontext(),
            ):
                result = tasks.apply_async(producer=producer)
            if first is None:
                first = result.results[0].id
            last = result.results[-1].id
        return first, last

    def purge(self) -> None:
        self.app.control.purge()

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "tasks_celery:app", "worker",
                "-c", "1", "-P", "prefork", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-l", "WARNING"]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        from tasks_celery import ENV_URL

        return {ENV_URL: self.location}

    def queue_size(self) -> int:
        # Waiting messages, plus those a worker holds unacked (the transport's visibility
        # bookkeeping; with Celery's default early ack a task leaves it when it starts).
        pipe = self.raw.pipeline(transaction=False)
        pipe.llen(self.QUEUE)
        pipe.hlen("unacked")
        return int(sum(pipe.execute()))

    def is_done(self, handle: Any) -> bool:
        return bool(self.raw.exists(self.app.backend.get_key_for_task(handle)))

    def roundtrip(self, timeout: float) -> None:
        self.noop.delay().get(timeout=timeout)

    def notes(self) -> list[str]:
        how = ("group(...).apply_async() inside kombu's producer.batch() (pipelined LPUSHes)"
               if self.batching else "group(...).apply_async() (one LPUSH per task)")  # fmt: skip
        return [
            "celery: worker -c 1 -P prefork --without-gossip --without-mingle "
            "--without-heartbeat -l WARNING (main + 1 child), default prefetch (4 per "
            "process, early ack), broker and result backend in the same Redis database; "
            f"batched = {how} per {BATCH_SIZE:,}",
        ]


class DramatiqPeer(Peer):
    name = "dramatiq"
    library = "dramatiq"
    QUEUE = "default"
    batch_note = "no batch API"

    def __init__(
        self, workdir: Path, processes: Processes, redis: PrivateRedis, threads: int = 1
    ) -> None:
        super().__init__(workdir, processes, redis)
        self.threads = threads
        self.broker: Any = None
        self.backend: Any = None
        self.noop: Any = None

    def check(self) -> None:
        import tasks_dramatiq  # noqa: F401

    def connect(self) -> None:
        from tasks_dramatiq import make_broker

        self.broker, self.backend, self.noop = make_broker(self.location)
        self.broker.client.ping()

    def disconnect(self) -> None:
        if self.broker is not None:
            broker, backend = self.broker, self.backend
            self.broker = self.backend = self.noop = None
            broker.close()
            backend.client.close()

    def enqueue(self, count: int) -> tuple[Any, Any]:
        send = self.noop.send
        first = last = send()
        for _ in range(count - 1):
            last = send()
        return first, last

    def purge(self) -> None:
        self.broker.flush_all()

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "dramatiq", "tasks_dramatiq:broker",
                "-p", "1", "-t", str(self.threads)]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        from tasks_dramatiq import ENV_URL

        return {ENV_URL: self.location}

    def queue_size(self) -> int:
        # Every message not yet acked lives in this hash, waiting or reserved.
        return int(self.raw.hlen(f"dramatiq:{self.QUEUE}.msgs"))

    def is_done(self, handle: Any) -> bool:
        return bool(self.raw.exists(self.backend.build_message_key(handle)))

    def roundtrip(self, timeout: float) -> None:
        message = self.noop.send()
        message.get_result(backend=self.backend, block=True, timeout=int(timeout * 1000))

    def notes(self) -> list[str]:
        return [
            f"dramatiq: dramatiq tasks_dramatiq:broker -p 1 -t {self.threads} (main + 1 worker "
            f"process with {self.threads} worker thread(s)), default prefetch (2 per thread), "
            "Results middleware "
            "with store_results=True on a RedisBackend in the same database; no batch "
            "API (group/pipeline enqueue one message per call)",
        ]


# -- measurements -------------------------------------------------------------------------


@dataclass
class Results:
    """Numbers for one peer; None where the peer has no such feature or the step failed."""

    enqueue: float | None = None
    enqueue_batch: float | None = None
    drain_total: float | None = None
    drain_startup_ms: float | None = None
    drain_steady: float | None = None
    drain_seconds: float | None = None
    drain_steady_cpu_us: float | None = None
    """CPU of the worker's process tree per task between the first and the last result
    (start-up and shutdown left out; steadier than the rates on a shared host)."""
    roundtrip_ms: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: float | None = None
    worker_processes: int | None = None
    why: dict[str, str] = field(default_factory=dict)
    """Step name -> short reason its numbers are missing ("timed out", "no batch API")."""
    problems: list[str] = field(default_factory=list)
    """Full error messages, printed under the table."""
    queued: tuple[Any, Any] | None = None
    """Redis mode: first and last handle of the tasks the enqueue step left for the drain."""


def measure_enqueue(peer: Peer, count: int, res: Results) -> None:
    """SQLite mode: one-by-one and batched rates, each on a fresh file."""
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
    else:
        res.why["batch"] = peer.batch_note
    peer.close()


def measure_batch(peer: Peer, count: int, res: Results) -> None:
    """Redis mode: the batched rate in its own database, after a warm-up send and a purge."""
    peer.open("batch")
    try:
        peer.enqueue(1)
        peer.purge()
        start = time.perf_counter()
        sent = peer.enqueue_batch(count, BATCH_SIZE)
        if sent is not None:
            res.enqueue_batch = count / (time.perf_counter() - start)
        else:
            res.why["batch"] = peer.batch_note
    finally:
        peer.close()


def measure_enqueue_for_drain(peer: Peer, count: int, res: Results) -> None:
    """Redis mode: time ``count`` one-by-one sends into the database the drain then empties.

    The warm-up send is purged before the clock starts, so exactly ``count`` tasks wait.
    The peer stays open for ``measure_drain``.
    """
    peer.open("drain")
    peer.enqueue(1)
    peer.purge()
    start = time.perf_counter()
    res.queued = peer.enqueue(count)
    res.enqueue = count / (time.perf_counter() - start)


def measure_drain(
    peer: Peer, count: int, res: Results, log: IO[bytes], queued: tuple[Any, Any] | None = None
) -> None:
    """Fill a queue (unless ``queued`` says it is), start one worker, poll until it is empty
    and the last result stored.

    The clock starts right before the worker is spawned, so interpreter start-up and
    imports count; the time to the first stored result is also kept, so the steady rate
    is shown apart from start-up.
    """
    if queued is None:
        peer.open("drain")
        queued = peer.enqueue_batch(count, BATCH_SIZE) or peer.enqueue(count)
    first, last = queued
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
                cpu_first = tree_cpu_seconds(proc.pid)
            if first_done is not None and peer.queue_size() == 0 and peer.is_done(last):
                end = now
                cpu_end = tree_cpu_seconds(proc.pid)
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{peer.name} worker exited with {proc.returncode} mid-drain")
            if now > deadline:
                raise RuntimeError(f"{peer.name} did not drain {count} tasks in time")
            time.sleep(QUEUE_POLL if first_done is not None else FIRST_RESULT_POLL)
        peak_kib = max(peak_kib, tree_rss_kib(proc.pid)[0])
    finally:
        peer.processes.stop(proc)
        peer.close()
    elapsed = end - start
    res.drain_seconds = elapsed
    res.drain_total = count / elapsed
    res.drain_startup_ms = (first_done - start) * 1000
    res.drain_steady = (count - 1) / max(end - first_done, 1e-9)
    res.drain_steady_cpu_us = (cpu_end - cpu_first) / max(count - 1, 1) * 1e6
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
        except StepTimeout:
            raise
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError(f"{peer.name} worker exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise


# -- report -------------------------------------------------------------------------------


Target = Callable[[dict[str, "Results"]], str]
"""Given every peer's results, the target text with " ok" or " MISSED" appended."""


@dataclass
class Row:
    label: str
    get: Callable[[Results], float | None]
    higher_is_better: bool
    fmt: str
    step: str
    """The step whose failure (Results.why) explains a missing value."""
    target: Target | None = None
    compare: bool = True


def absolute(text: str, meets: Callable[[float], bool], get: Callable[[Results], Any]) -> Target:
    """A target on Conveyor's own number."""

    def check(results: dict[str, Results]) -> str:
        value = get(results["conveyor"]) if "conveyor" in results else None
        return text if value is None else f"{text} {'ok' if meets(value) else 'MISSED'}"

    return check


def relative(
    factors: Sequence[tuple[str, float]], get: Callable[[Results], Any], higher_is_better: bool
) -> Target:
    """Conveyor at least ``factor`` times better than each named peer, in the same run."""

    def check(results: dict[str, Results]) -> str:
        parts = []
        for name, factor in factors:
            text = f">= {factor:g}x {name}"
            mine = get(results["conveyor"]) if "conveyor" in results else None
            theirs = get(results[name]) if name in results else None
            if not mine or not theirs:
                parts.append(f"{text} n/a")
                continue
            ratio = mine / theirs if higher_is_better else theirs / mine
            parts.append(f"{text} {'ok' if ratio >= factor else 'MISSED'}")
        return ", ".join(parts)

    return check


def half_of_best_peer(get: Callable[[Results], Any]) -> Target:
    """Conveyor's value at most half the lowest value among the other peers."""

    def check(results: dict[str, Results]) -> str:
        theirs = {n: get(r) for n, r in results.items() if n != "conveyor" and get(r)}
        mine = get(results["conveyor"]) if "conveyor" in results else None
        if not theirs or not mine:
            return "<= 1/2 best peer n/a"
        best = min(theirs, key=lambda n: theirs[n])
        verdict = "ok" if mine <= theirs[best] / 2 else "MISSED"
        return f"<= 1/2 best peer ({best} {theirs[best]:.2f}) {verdict}"

    return check


def _enq(r: Results) -> float | None:
    return r.enqueue


def _batch(r: Results) -> float | None:
    return r.enqueue_batch


def _drain(r: Results) -> float | None:
    return r.drain_total


def _steady(r: Results) -> float | None:
    return r.drain_steady


def _p50(r: Results) -> float | None:
    return r.roundtrip_ms.get("p50")


def build_rows(broker: str) -> list[Row]:
    """The table's rows, with the targets of issue 1 (SQLite) or issue 3 (Redis)."""
    if broker == "sqlite":
        targets: dict[str, Target] = {
            "enqueue": absolute(">= 5,000", lambda v: v >= 5000, _enq),
            "steady": absolute(">= 3,000", lambda v: v >= 3000, _steady),
            "p50": absolute("<= 5", lambda v: v <= 5, _p50),
        }
    else:
        drain = [("celery", 10.0), ("dramatiq", 3.0)]
        targets = {
            "enqueue": relative([("celery", 5.0)], _enq, True),
            "batch": absolute("> 50,000", lambda v: v > 50000, _batch),
            "drain": relative(drain, _drain, True),
            "steady": relative(drain, _steady, True),
            "p50": half_of_best_peer(_p50),
        }
    return [
        Row("enqueue, one by one (tasks/s)", _enq, True, "{:,.0f}", "enqueue",
            targets.get("enqueue")),
        Row(f"enqueue, batches of {BATCH_SIZE:,} (tasks/s)", _batch, True, "{:,.0f}", "batch",
            targets.get("batch")),
        Row("drain, from worker start (tasks/s)", _drain, True, "{:,.0f}", "drain",
            targets.get("drain")),
        Row("  worker start -> first result (ms)", lambda r: r.drain_startup_ms, False,
            "{:,.0f}", "drain"),
        Row("  drain after first result (tasks/s)", _steady, True, "{:,.0f}", "drain",
            targets.get("steady")),
        Row("round trip p50 (ms)", _p50, False, "{:.2f}", "round trip", targets.get("p50")),
        Row("round trip p90 (ms)", lambda r: r.roundtrip_ms.get("p90"), False, "{:.2f}",
            "round trip"),
        Row("round trip p99 (ms)", lambda r: r.roundtrip_ms.get("p99"), False, "{:.2f}",
            "round trip"),
        Row("peak worker RSS, drain (MiB)", lambda r: r.peak_rss_mib, False, "{:.1f}", "drain"),
        Row("  processes in the worker tree", lambda r: r.worker_processes, False, "{:.0f}",
            "drain", compare=False),
    ]  # fmt: skip


def render(results: dict[str, Results], rows: Sequence[Row], short_ratios: bool) -> str:
    """One table: a column per library, then Conveyor against each other library."""
    names = list(results)
    others = [name for name in names if name != "conveyor"] if "conveyor" in results else []
    header = ["", *names, *[f"conveyor vs {name}" for name in others]]
    if "conveyor" in results:
        header.append("conveyor target")
    lines: list[list[str]] = [header]
    for row in rows:
        values = {name: row.get(res) for name, res in results.items()}
        cells = [row.label]
        for name, value in values.items():
            reason = results[name].why.get(row.step)
            cells.append(row.fmt.format(value) if value is not None else
                         f"n/a ({reason})" if reason else "n/a")  # fmt: skip
        for name in others:
            mine, theirs = values["conveyor"], values[name]
            cells.append(
                ratio(mine, theirs, name, row.higher_is_better, short_ratios)
                if row.compare else ""
            )  # fmt: skip
        if "conveyor" in results:
            cells.append(row.target(results) if row.target else "")
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
    for name, res in results.items():
        out.extend(f"{name}: {problem}" for problem in res.problems)
    return "\n".join(out)


def ratio(
    conveyor: float | None, other: float | None, name: str, higher_is_better: bool, short: bool
) -> str:
    if not conveyor or not other:
        return "n/a"
    value = conveyor / other if higher_is_better else other / conveyor
    if short:
        return f"{value:.2f}x"
    if higher_is_better:
        return f"{value:.2f}x (conveyor/{name})"
    return f"{value:.2f}x ({name}/conveyor)"


def machine(peers: Sequence[Peer], redis: PrivateRedis | None) -> str:
    model = ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " (" + line.partition(":")[2].strip() + ")"
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    dists = list(dict.fromkeys(peer.library for peer in peers))
    if redis is not None:
        dists += ["kombu", "redis", "hiredis"]
    versions = []
    for dist in dists:
        with suppress(metadata.PackageNotFoundError):
            versions.append(f"{dist} {metadata.version(dist)}")
    store = (f"redis-server {redis.version} (private, port {redis.port}, no persistence)"
             if redis is not None else f"sqlite {sqlite3.sqlite_version}")  # fmt: skip
    return "\n".join([
        f"machine: {platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {usable} usable{model}",
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"{store}; {', '.join(versions)}",
    ])  # fmt: skip


# -- main ---------------------------------------------------------------------------------


PeerFactory = Callable[[Path, Processes, argparse.Namespace, "PrivateRedis | None"], Peer]

PEERS: dict[str, dict[str, PeerFactory]] = {
    "sqlite": {
        "conveyor": lambda workdir, procs, args, redis: ConveyorPeer(
            workdir, procs, synchronous=args.sqlite_synchronous.replace("both", "normal")
        ),
        "conveyor-full": lambda workdir, procs, args, redis: ConveyorPeer(
            workdir, procs, synchronous="full", name="conveyor-full"
        ),
        "huey": lambda workdir, procs, args, redis: HueyPeer(workdir, procs, args.huey_synchronous),
    },
    "redis": {
        "conveyor": lambda workdir, procs, args, redis: ConveyorPeer(workdir, procs, redis),
        "celery": lambda workdir, procs, args, redis: CeleryPeer(workdir, procs, _need(redis)),
        "dramatiq": lambda workdir, procs, args, redis: DramatiqPeer(
            workdir, procs, _need(redis), args.dramatiq_threads
        ),
        "huey": lambda workdir, procs, args, redis: HueyPeer(
            workdir, procs, args.huey_synchronous, redis
        ),
    },
}
"""Every library the bench knows per broker, in column order; a new peer is a class and a
line here. ``conveyor-full`` (Conveyor again, with SQLite synchronous=FULL) runs only with
``--sqlite-synchronous both``, right after ``conveyor``."""


def _need(redis: PrivateRedis | None) -> PrivateRedis:
    if redis is None:
        raise RuntimeError("this peer runs on Redis only")
    return redis


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else "")
    parser.add_argument(
        "--broker",
        choices=list(PEERS),
        default="sqlite",
        help="sqlite: Conveyor and Huey on SQLite files; redis: Conveyor, "
        "Celery, Dramatiq and Huey on a private redis-server [sqlite]",
    )
    parser.add_argument("--tasks", type=int, default=20000, help="tasks to enqueue and drain")
    parser.add_argument("--roundtrips", type=int, default=500, help="sequential round trips")
    parser.add_argument(
        "--only",
        help="run one library only (conveyor, huey; with --broker redis also celery, dramatiq)",
    )
    parser.add_argument(
        "--huey-synchronous",
        choices=["normal", "full"],
        default="normal",
        help="SQLite synchronous for Huey: normal matches Conveyor; full is "
        "Huey's own default [normal]",
    )
    parser.add_argument(
        "--sqlite-synchronous",
        choices=["normal", "full", "both"],
        default="normal",
        help="SQLite synchronous for Conveyor (its ?synchronous= URL option): normal is its "
        "default; both adds a conveyor-full column and the ratio normal/full [normal]",
    )
    parser.add_argument(
        "--dramatiq-threads",
        type=int,
        default=1,
        help="worker threads in Dramatiq's one worker process: 1 runs one "
        "task at a time like the others; Dramatiq's default is 8 [1]",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds one step (enqueue, batch, drain, round trips) of one "
        "library may take before it is reported as timed out [120]",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (DBs, logs)")
    args = parser.parse_args(argv)
    if args.tasks < 2 or args.roundtrips < 2:
        parser.error("--tasks and --roundtrips must be at least 2")
    choices = [name for name in PEERS[args.broker] if name != "conveyor-full"]
    if args.only and args.only not in choices:
        parser.error(f"--only: choose from {', '.join(choices)} with --broker "
                     f"{args.broker}")  # fmt: skip
    if args.sqlite_synchronous != "normal" and args.broker != "sqlite":
        parser.error("--sqlite-synchronous: only with --broker sqlite")
    return args


def peer_names(args: argparse.Namespace) -> list[str]:
    """The columns of this run, in order."""
    names = [args.only] if args.only else [n for n in PEERS[args.broker] if n != "conveyor-full"]
    if args.sqlite_synchronous == "both" and "conveyor" in names:
        names.insert(names.index("conveyor") + 1, "conveyor-full")
    return names


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
    SIGNALS.install()
    sys.path.insert(0, str(BENCH_DIR))
    factories = PEERS[args.broker]
    names = peer_names(args)
    procs = Processes()
    results: dict[str, Results] = {}
    with workspace(args.keep) as workdir:
        try:
            redis = None
            if args.broker == "redis":
                redis = PrivateRedis(workdir, procs)
                try:
                    redis.start()
                except (RuntimeError, ImportError) as exc:
                    print(f"cannot run --broker redis: {exc}", file=sys.stderr)
                    return 2
            peers = [factories[name](workdir, procs, args, redis) for name in names]
            print(machine(peers, redis))
            print(f"tasks: {args.tasks:,}, round trips: {args.roundtrips:,}, "
                  "one worker process each")  # fmt: skip
            usable = []
            for peer in peers:
                try:
                    peer.check()
                except Exception as exc:  # ImportError, or a library that breaks on import
                    results[peer.name] = unavailable(peer, exc)
                    continue
                usable.append(peer)
                for note in peer.notes():
                    print(note)
            print(flush=True)
            for peer in peers:
                if peer in usable:
                    results[peer.name] = run_peer(peer, args, workdir)
                    if redis is not None:
                        redis.flushall()
        finally:
            SIGNALS.quiet()
            procs.stop_all()
    print()
    print(render({name: results[name] for name in names}, build_rows(args.broker),
                 short_ratios=args.broker != "sqlite"))  # fmt: skip
    return 0


def unavailable(peer: Peer, exc: BaseException) -> Results:
    res = Results()
    short = "not installed" if isinstance(exc, ImportError) else "unavailable"
    res.why = dict.fromkeys(("enqueue", "batch", "drain", "round trip"), short)
    res.problems.append(f"{short}: {type(exc).__name__}: {exc} (pip install -e '.[bench]')")
    print(f"{peer.name}: {short} ({exc})", file=sys.stderr)
    return res


def run_peer(peer: Peer, args: argparse.Namespace, workdir: Path) -> Results:
    """Every measurement for one peer. A step that fails or times out is recorded (its
    numbers read "n/a (reason)") and shows the tail of the worker log; the next step runs."""
    res = Results()
    log_path = workdir / f"{peer.name}-worker.log"

    def drain(log: IO[bytes]) -> None:
        if args.broker == "sqlite":
            measure_drain(peer, args.tasks, res, log)
        elif res.queued is None:
            raise RuntimeError("nothing queued: the enqueue step failed")
        else:
            measure_drain(peer, args.tasks, res, log, res.queued)

    if args.broker == "sqlite":
        steps: list[tuple[str, Callable[[IO[bytes]], None]]] = [
            ("enqueue", lambda log: measure_enqueue(peer, args.tasks, res)),
        ]
    else:
        steps = [
            ("batch", lambda log: measure_batch(peer, args.tasks, res)),
            ("enqueue", lambda log: measure_enqueue_for_drain(peer, args.tasks, res)),
        ]
    steps.insert(0, ("warm-up", peer.warm_up))
    steps += [
        ("drain", drain),
        ("round trip", lambda log: measure_roundtrip(peer, args.roundtrips, res, log)),
    ]
    with log_path.open("ab") as log:
        for what, measure in steps:
            print(f"{peer.name}: {what} ...", end=" ", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                with SIGNALS.time_limit(args.timeout, f"{peer.name} {what}"):
                    measure(log)
            except Exception as exc:
                reason = "timed out" if isinstance(exc, StepTimeout) else "failed"
                print(f"{reason}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                res.why.setdefault(what, reason)
                if what == "enqueue" and args.broker == "sqlite":
                    res.why.setdefault("batch", reason)
                res.problems.append(f"{what} {reason}: {type(exc).__name__}: {exc}")
                log.flush()
                show_log(log_path)
                peer.close()
                kill_leftovers(peer)
                continue
            print(f"{time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)
    return res


def kill_leftovers(peer: Peer) -> None:
    """After a failed step, stop any worker it left running (the redis-server stays)."""
    redis_proc = peer.redis.proc if peer.redis is not None else None
    for proc in list(peer.processes.running):
        if proc is not redis_proc:
            peer.processes.stop(proc)


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
