"""What the overview charts: task outcomes per minute, the slowest and most failing task
names, and queue depths, over the last hour.

One thread per dashboard follows the event stream (read from an hour back when it
starts) and samples the queues' sizes, keeping only counters, so a page costs no read of
the stream. Queue depths are sampled by this dashboard, so their history starts when it
does; outcomes reach back as far as the stream keeps them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..events import TaskFailed, TaskRetried, TaskSucceeded

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["Activity", "NameStats"]

WINDOW = 3600.0
BUCKET = 60.0
SAMPLE_EVERY = 10.0

logger = logging.getLogger("conveyor.dashboard")


@dataclass
class NameStats:
    name: str
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    runtime_total: float = 0.0
    runtime_max: float = 0.0

    @property
    def runtime_mean(self) -> float:
        return self.runtime_total / self.succeeded if self.succeeded else 0.0


@dataclass
class Minute:
    start: float
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    names: dict[str, NameStats] = field(default_factory=dict)


class Activity:
    """Counters over the last hour, kept up to date by one background thread."""

    def __init__(self, app: Conveyor, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.clock = clock
        self.minutes: deque[Minute] = deque()
        self.depths: deque[tuple[float, dict[str, int]]] = deque()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.caught_up = threading.Event()
        """Set once the last hour's events are counted (the overview waits a moment for it)."""

    def start(self) -> None:
        with self.lock:
            if self.thread is not None:
                return
            self.thread = threading.Thread(target=self._run, name="dashboard-activity", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()

    def wait_caught_up(self, timeout: float) -> bool:
        self.start()
        return self.caught_up.wait(timeout)

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        sampler = threading.Thread(target=self._sample, name="dashboard-depths", daemon=True)
        sampler.start()
        cursor: str | None = None
        while not self.stop.is_set():
            try:
                if cursor is None:  # catching up: the last hour, then live from there
                    for event in self.app.events.tail(since=self.clock() - WINDOW):
                        self.record(event)
                        cursor = event.id
                    self.caught_up.set()
                for event in self.app.events.tail(
                    after=cursor,
                    since=None if cursor else self.clock(),
                    follow=True,
                    poll=1.0,
                    stop=self.stop,
                ):
                    self.record(event)
                    cursor = event.id
            except Exception:
                logger.exception("reading the event stream failed; trying again")
                self.caught_up.set()
                self.stop.wait(5.0)

    def _sample(self) -> None:
        while not self.stop.is_set():
            try:
                sizes = {name: s.ready for name, s in self.app.broker.stats().items()}
                with self.lock:
                    self.depths.append((self.clock(), sizes))
                    while self.depths and self.depths[0][0] < self.clock() - WINDOW:
                        self.depths.popleft()
            except Exception:
                logger.exception("sampling queue sizes failed")
            self.stop.wait(SAMPLE_EVERY)

    # -- counting -----------------------------------------------------------------------

    def record(self, event: object) -> None:
        if not isinstance(event, TaskSucceeded | TaskFailed | TaskRetried):
            return
        start = event.timestamp - event.timestamp % BUCKET
        with self.lock:
            minute = self._minute(start)
            if minute is None:
                return
            stats = minute.names.setdefault(event.name or "?", NameStats(event.name or "?"))
            if isinstance(event, TaskSucceeded):
                minute.succeeded += 1
                stats.succeeded += 1
                stats.runtime_total += event.runtime
                stats.runtime_max = max(stats.runtime_max, event.runtime)
            elif isinstance(event, TaskFailed):
                minute.failed += 1
                stats.failed += 1
            else:
                minute.retried += 1
                stats.retried += 1

    def _minute(self, start: float) -> Minute | None:
        oldest = self.clock() - WINDOW
        while self.minutes and self.minutes[0].start < oldest - BUCKET:
            self.minutes.popleft()
        if start < oldest - BUCKET:
            return None
        for minute in reversed(self.minutes):
            if minute.start == start:
                return minute
            if minute.start < start:
                break
        fresh = Minute(start)
        self.minutes.append(fresh)
        if len(self.minutes) > 1 and self.minutes[-2].start > start:
            self.minutes = deque(sorted(self.minutes, key=lambda m: m.start))
        return fresh

    # -- reading ------------------------------------------------------------------------

    def series(self) -> list[tuple[float, int, int, int]]:
        """(minute start, succeeded, failed, retried) for each of the last 60 minutes."""
        now = self.clock()
        first = now - now % BUCKET - WINDOW + BUCKET
        with self.lock:
            by_start = {m.start: m for m in self.minutes}
        rows = []
        for i in range(int(WINDOW / BUCKET)):
            start = first + i * BUCKET
            m = by_start.get(start)
            rows.append((start, m.succeeded, m.failed, m.retried) if m else (start, 0, 0, 0))
        return rows

    def names(self) -> list[NameStats]:
        totals: dict[str, NameStats] = {}
        with self.lock:
            for minute in self.minutes:
                for name, s in minute.names.items():
                    t = totals.setdefault(name, NameStats(name))
                    t.succeeded += s.succeeded
                    t.failed += s.failed
                    t.retried += s.retried
                    t.runtime_total += s.runtime_total
                    t.runtime_max = max(t.runtime_max, s.runtime_max)
        return list(totals.values())

    def depth_series(self) -> dict[str, list[tuple[float, int]]]:
        with self.lock:
            samples = list(self.depths)
        queues: dict[str, list[tuple[float, int]]] = {}
        for _, sizes in samples:
            for name in sizes:
                queues.setdefault(name, [])
        for when, sizes in samples:
            for name, points in queues.items():
                points.append((when, sizes.get(name, 0)))
        return queues
