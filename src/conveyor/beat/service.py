"""Running a scheduler: in the foreground (``conveyor beat``) or as a thread in a worker.

A prefork supervisor forks children while its beat thread runs. A fork copies locks in
whatever state they are in, so a child forked while the thread was half-way through a
SQLite call could inherit a held lock. The thread therefore holds ``Scheduler.lock``
whenever it touches the store or the broker, and a fork hook takes that lock first: a
fork waits for the current pass to end and never copies one in progress.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from .. import signals
from .scheduler import Scheduler
from .store import ScheduleStore

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["BeatThread", "serve"]

logger = logging.getLogger("conveyor.beat")

_guarded: list[Scheduler] = []
_guarded_lock = threading.Lock()


def _before_fork() -> None:
    _guarded_lock.acquire()
    for scheduler in _guarded:
        scheduler.lock.acquire()


def _after_fork_in_parent() -> None:
    for scheduler in reversed(_guarded):
        scheduler.lock.release()
    _guarded_lock.release()


def _after_fork_in_child() -> None:
    for scheduler in reversed(_guarded):
        scheduler.lock.release()
    _guarded.clear()  # the beat thread does not exist in the child
    _guarded_lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


class BeatThread:
    """A scheduler on a daemon thread: ``with BeatThread(app): worker.run()``."""

    def __init__(self, app: Conveyor, store: ScheduleStore | None = None, **options: Any) -> None:
        self.scheduler = Scheduler(app, store, **options)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Sync the entries here (so a bad schedule fails the caller), then start the thread."""
        app = self.scheduler.app
        # Make the app's lazily built parts here and now, so no fork ever copies one that
        # the beat thread is half-way through building.
        _ = (app.broker, app.backend, app.coordinator)
        self.scheduler.setup()
        with _guarded_lock:
            _guarded.append(self.scheduler)
        app.on_worker_stopping.append(self.scheduler.stop)
        self._thread = threading.Thread(target=self._run, name="conveyor-beat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        signals.beat_init.send(sender=self.scheduler)
        try:
            self.scheduler.run(setup=False)
        except Exception:
            logger.exception("beat: the scheduler thread stopped on an error")

    def stop(self, timeout: float = 10.0) -> None:
        self.scheduler.stop()
        with contextlib.suppress(ValueError):
            self.scheduler.app.on_worker_stopping.remove(self.scheduler.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        with _guarded_lock:
            if self.scheduler in _guarded:
                _guarded.remove(self.scheduler)

    def __enter__(self) -> BeatThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(scheduler: Scheduler) -> None:
    """Run ``scheduler`` in this (main) thread until SIGTERM or SIGINT."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("beat: %s received, stopping", signal.Signals(signum).name)
        scheduler.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    signals.beat_init.send(sender=scheduler)
    try:
        scheduler.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
