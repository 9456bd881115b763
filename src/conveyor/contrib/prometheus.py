"""Prometheus metrics: a worker's own (``conveyor worker --metrics-port``) and the cluster's
as its broker sees them (``conveyor metrics``). Needs ``pip install 'conveyor-tasks[prometheus]'``.

A worker's tasks run in its child processes, and children come and go (a crash,
``--max-tasks-per-child``), so the worker uses prometheus_client's multiprocess mode: the
supervisor makes a private ``PROMETHEUS_MULTIPROC_DIR`` before the app (and so any
``prometheus_client`` import of the user's) loads, each child counts into its own memory-
mapped file there, and the supervisor's endpoint adds up every file, those of children
that are gone included, so a counter never goes backwards when a child is replaced. The
directory is removed when the worker stops. Metrics the user's tasks define themselves
are added up across children the same way and served on the same endpoint.

Per task a child adds to plain counts (about a microsecond, see ``WorkerMetrics``); what
the supervisor knows anyway (the tasks running now, the messages held) is read when
Prometheus scrapes, so it costs the children nothing.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .. import signals, states
from ..app import Conveyor
from ..exceptions import BrokerError, ImproperlyConfigured
from ..message import Message
from ..registry import WorkerEntry, read_workers
from ..worker import metrics as worker_metrics

__all__ = [
    "QUEUE_WAIT_BUCKETS",
    "RUNTIME_BUCKETS",
    "ClusterCollector",
    "WorkerMetrics",
    "serve_cluster_metrics",
    "serve_worker_metrics",
]

logger = logging.getLogger("conveyor.metrics")

RUNTIME_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, float("inf"),
)  # fmt: skip
"""Seconds a task's code ran: quick tasks take well under a millisecond."""
QUEUE_WAIT_BUCKETS = (
    0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, float("inf"),
)  # fmt: skip
"""Seconds from when a message was due (sent, or its eta) until a worker took it up."""
MAX_TASK_LABELS = 1000
"""Distinct task names counted apart; beyond them (a flood of unknown names) one ``other``."""
DEAD_LETTER_CAP = 10_000
"""Dead letters read per scrape at most: ``conveyor_dead_letters`` counts up to this many."""
OUTCOMES = {
    states.SUCCESS: "success",
    states.FAILURE: "failure",
    states.RETRY: "retry",
    states.REVOKED: "revoked",
    states.IGNORED: "ignored",
    states.REJECTED: "rejected",
}


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ImproperlyConfigured(
            "metrics need prometheus_client: pip install 'conveyor-tasks[prometheus]'"
        ) from None
    return prometheus_client


class WorkerMetrics:
    """The metrics a worker's children count (``conveyor.worker.metrics.Recorder``).

    A task adds to plain counts under a lock (about a microsecond); a thread of each child
    writes them to prometheus_client's metrics every ``FLUSH_EVERY`` seconds, and the child
    writes what is left when it exits, so only a child killed outright (SIGKILL, a crash)
    can lose its last second of counts. Writing each task straight to the memory-mapped
    files would cost several microseconds (a counter and two histograms, each write under
    prometheus_client's lock).
    """

    FLUSH_EVERY = 1.0

    def __init__(self) -> None:
        client = _client()
        self.tasks = client.Counter(
            "conveyor_tasks",
            "Tasks a worker handled, by task name and outcome (success, failure, retry, "
            "revoked, ignored, rejected).",
            ["task", "outcome"],
            registry=None,
        )
        self.runtime = client.Histogram(
            "conveyor_task_runtime_seconds",
            "Seconds a task's own code ran, by task name.",
            ["task"],
            buckets=RUNTIME_BUCKETS,
            registry=None,
        )
        self.queue_wait = client.Histogram(
            "conveyor_task_queue_wait_seconds",
            "Seconds from when a message was due (sent, or its eta) until a worker started it.",
            ["queue"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=None,
        )
        self.postponed = client.Counter(
            "conveyor_task_postponements",
            "Messages put back for later by a rate limit, a concurrency limit or a lock.",
            ["task"],
            registry=None,
        )
        self.forked()

    def forked(self) -> None:
        """Start afresh (in a new child: nothing counted, no flushing thread yet)."""
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._postponements: dict[str, int] = {}
        self._runtimes: dict[str, _Observed] = {}
        self._waits: dict[str, _Observed] = {}
        self._names: set[str] = set()
        self._flusher: threading.Thread | None = None

    def _name(self, message: Message | None) -> str:
        name = message.task if message is not None else "(undecodable)"
        if name not in self._names:
            if len(self._names) >= MAX_TASK_LABELS:
                return "other"
            self._names.add(name)
        return name

    def handled(
        self, message: Message | None, queue: str, state: str, runtime: float | None, wait: float
    ) -> None:
        if state == states.STARTED:
            return  # an async task handed to the event loop: it has not ended yet
        with self._lock:
            name = self._name(message)
            if state == states.PENDING:
                self._postponements[name] = self._postponements.get(name, 0) + 1
            else:
                key = (name, state)
                self._counts[key] = self._counts.get(key, 0) + 1
                if runtime is not None:
                    _observe(self._runtimes, name, runtime, RUNTIME_BUCKETS)
                    _observe(self._waits, queue, wait, QUEUE_WAIT_BUCKETS)
        if self._flusher is None:
            self._start_flushing()

    def _start_flushing(self) -> None:
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(
                target=self._flush_often, name="conveyor-metrics", daemon=True
            )
        self._flusher.start()

    def _flush_often(self) -> None:
        while True:
            time.sleep(self.FLUSH_EVERY)
            try:
                self.flush()
            except Exception:
                logger.exception("metrics: writing the counts failed")

    def flush(self, **_: Any) -> None:
        """Write the counts gathered since the last flush (also a receiver of
        ``worker_process_shutdown``: a child that exits writes what it has)."""
        with self._lock:
            counts, self._counts = self._counts, {}
            postponements, self._postponements = self._postponements, {}
            runtimes, self._runtimes = self._runtimes, {}
            waits, self._waits = self._waits, {}
        for name, observed in runtimes.items():
            observed.write_to(self.runtime.labels(name))
        for queue, observed in waits.items():
            observed.write_to(self.queue_wait.labels(queue))
        for name, count in postponements.items():
            self.postponed.labels(name).inc(count)
        for (name, state), count in counts.items():  # last: a scrape that sees a task
            self.tasks.labels(name, OUTCOMES.get(state, state.lower())).inc(count)  # sees all


class _Observed:
    """Observations of one histogram series since the last flush: per bucket, and summed."""

    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.total = 0.0

    def write_to(self, series: Any) -> None:
        # prometheus_client's Histogram keeps a value per bucket (``le`` the first upper
        # bound at or above the observation) and their sum: add to those in one write each
        for index, count in enumerate(self.buckets):
            if count:
                series._buckets[index].inc(count)
        series._sum.inc(self.total)


def _observe(
    series: dict[str, _Observed], key: str, value: float, bounds: tuple[float, ...]
) -> None:
    observed = series.get(key)
    if observed is None:
        observed = series[key] = _Observed(len(bounds))
    observed.buckets[bisect.bisect_left(bounds, value)] += 1
    observed.total += value


class SettledFiles:
    """prometheus_client's multiprocess collector, without the files a process is creating
    (a child that just forked): read before their first bytes are in, they fail the whole
    scrape with a 500."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def collect(self) -> Any:
        path = self.collector._path
        files = []
        for name in os.listdir(path):
            full = os.path.join(path, name)
            with contextlib.suppress(OSError):
                if name.endswith(".db") and os.path.getsize(full) >= 8:
                    files.append(full)
        return self.collector.merge(files, accumulate=True)


class PoolCollector:
    """What the supervisor knows of its children, read when Prometheus scrapes."""

    def __init__(self, url: str = "") -> None:
        self.pool: Any = None
        self.url = url

    def ready(self, sender: Any = None, **_: Any) -> None:
        """worker_ready: the pool whose lease keeper knows what runs (logged now: logging
        is set up by then)."""
        self.pool = sender
        logger.info("metrics on %s", self.url)

    def collect(self) -> Iterator[Any]:
        keeper = getattr(self.pool, "keeper", None)
        if keeper is None:
            return
        from prometheus_client.core import GaugeMetricFamily

        running = len(keeper.running())
        yield GaugeMetricFamily(
            "conveyor_tasks_running", "Tasks running in this worker now.", value=running
        )
        yield GaugeMetricFamily(
            "conveyor_worker_messages_reserved",
            "Messages this worker holds that have not started yet.",
            value=max(0, len(keeper.held) - running),
        )


@contextlib.contextmanager
def serve_worker_metrics(port: int, addr: str = "0.0.0.0") -> Iterator[int]:
    """Serve a worker's metrics on ``addr:port`` while the block runs; yields the port (a
    free one when ``port`` is 0). Enter it before the app is loaded and the worker starts
    (``conveyor worker --metrics-port`` does), so every child counts into the directory
    this makes."""
    client = _client()
    from prometheus_client import multiprocess, values

    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR"), values.ValueClass
    directory = tempfile.mkdtemp(prefix="conveyor-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        if not getattr(values.ValueClass, "_multiprocess", False):
            # prometheus_client was imported before the directory existed: switch it now,
            # so the metrics made from here on (ours, and the tasks') count per process
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        registry = client.CollectorRegistry()
        registry.register(SettledFiles(multiprocess.MultiProcessCollector(None, path=directory)))  # type: ignore[no-untyped-call]
        pool = PoolCollector()
        registry.register(pool)
        recorder = WorkerMetrics()
        server, thread = client.start_http_server(port, addr, registry=registry)
    except BaseException:
        _restore(*previous)
        shutil.rmtree(directory, ignore_errors=True)
        raise

    def child_started(**_: Any) -> None:
        server.socket.close()  # the supervisor serves; a child only counts
        recorder.forked()

    signals.worker_ready.connect(pool.ready, weak=False)
    signals.worker_process_init.connect(child_started, weak=False)
    signals.worker_process_shutdown.connect(recorder.flush, weak=False)
    worker_metrics.install(recorder)
    bound = int(server.server_address[1])
    pool.url = f"http://{addr}:{bound}/metrics"
    try:
        yield bound
    finally:
        worker_metrics.uninstall()
        recorder.flush()  # a pool in this process (threads, on the memory:// broker)
        signals.worker_ready.disconnect(pool.ready)
        signals.worker_process_init.disconnect(child_started)
        signals.worker_process_shutdown.disconnect(recorder.flush)
        server.shutdown()
        server.server_close()
        thread.join(5)
        _restore(*previous)
        shutil.rmtree(directory, ignore_errors=True)


def _restore(directory: str | None, value_class: Any) -> None:
    from prometheus_client import values

    values.ValueClass = value_class
    if directory is None:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


class ClusterCollector:
    """The cluster as its broker sees it, read when Prometheus scrapes: messages per queue
    and state, dead letters per queue, the workers in the registry, and whether the broker
    answered."""

    def __init__(self, app: Conveyor) -> None:
        self.app = app
        self._lock = threading.Lock()  # one scrape at a time talks to the broker

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily(
            "conveyor_broker_up", "Whether the broker answered this scrape (1) or not (0)."
        )
        with self._lock:
            try:
                stats = self.app.broker.stats()
                letters = self.app.broker.dead_letters(DEAD_LETTER_CAP)
                workers = read_workers(self.app.coordinator, time.time())
            except BrokerError as exc:
                logger.warning("metrics: the broker did not answer: %s", exc)
                up.add_metric([], 0)
                return [up]
        up.add_metric([], 1)
        depth = GaugeMetricFamily(
            "conveyor_queue_messages",
            "Messages in a queue: ready to run, delayed (an eta or a retry's countdown), "
            "or reserved by a worker.",
            labels=["queue", "state"],
        )
        for name, counts in sorted(stats.items()):
            depth.add_metric([name, "ready"], counts.ready)
            depth.add_metric([name, "delayed"], counts.delayed)
            depth.add_metric([name, "reserved"], counts.reserved)
        per_queue: dict[str, int] = {}
        for letter in letters:
            per_queue[letter.queue] = per_queue.get(letter.queue, 0) + 1
        dead = GaugeMetricFamily(
            "conveyor_dead_letters",
            f"Dead letters kept, by the queue they came from (read up to {DEAD_LETTER_CAP}).",
            labels=["queue"],
        )
        for name, count in sorted(per_queue.items()):
            dead.add_metric([name], count)
        return [up, depth, dead, *_worker_gauges(workers)]


def _worker_gauges(workers: list[WorkerEntry]) -> list[Any]:
    """Workers by status, from the registry, and the tasks each one runs and ran."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    by_status = GaugeMetricFamily(
        "conveyor_workers",
        "Registered workers: online, or lost (missed their heartbeats; gone once their "
        "record expires).",
        labels=["status"],
    )
    for status in ("online", "lost"):
        by_status.add_metric([status], sum(entry.status == status for entry in workers))
    running = GaugeMetricFamily(
        "conveyor_worker_tasks_running",
        "Tasks each online worker runs now (its last heartbeat).",
        labels=["worker"],
    )
    processed = CounterMetricFamily(
        "conveyor_worker_tasks_processed",
        "Tasks whose code each online worker ran since it started.",
        labels=["worker"],
    )
    failed = CounterMetricFamily(
        "conveyor_worker_tasks_failed",
        "Of those, the tasks that failed (raised and were not retried, or were killed past "
        "their time limit).",
        labels=["worker"],
    )
    for entry in workers:
        if not entry.lost:
            record = entry.record
            running.add_metric([entry.name], len(record.get("active") or ()))
            processed.add_metric([entry.name], int(record.get("processed") or 0))
            failed.add_metric([entry.name], int(record.get("failed") or 0))
    return [by_status, running, processed, failed]


def serve_cluster_metrics(app: Conveyor, port: int, addr: str = "0.0.0.0") -> tuple[Any, int]:
    """Serve the cluster's gauges (``ClusterCollector``) from a thread; the server (stop it
    with ``shutdown()``) and the port it listens on."""
    client = _client()
    registry = client.CollectorRegistry()
    registry.register(ClusterCollector(app))
    server, _thread = client.start_http_server(port, addr, registry=registry)
    return server, int(server.server_address[1])
