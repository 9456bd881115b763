"""Writes that can wait a moment, made by one background thread per worker process.

Most tasks take well under a millisecond. Writing STARTED before each of them, and each
outcome on its own, would cost a round trip per task for states nobody gets to see. So a
consumer's outbox (``outbox.py``) only notes them, and this thread, ``DELAY`` later:

- writes STARTED for a task that is still running (a quick task never writes it), and
- stores the outcomes that waited since, all in one call (or alone, ``RESULT_DELAY`` after
  the oldest of them).

Outcomes whose message continues a workflow are not taken here: the consumer's thread
stores those before its next task, since only it may run the workflow hooks. Every
outcome still reaches the store before its ack (``Outbox.take_acks``), and the levels
of ``records.fence`` keep a late STARTED from hiding a state written after it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

from ..exceptions import BrokerError
from ..outage import Outage

__all__ = ["DELAY", "RESULT_DELAY", "LateWriter", "late_writer"]

DELAY = 0.002
"""Seconds a running task goes without STARTED."""
RESULT_DELAY = 0.01
"""Seconds an outcome waits for others to share its write (unless a STARTED goes first, or
the consumer pauses: then it goes at once)."""

logger = logging.getLogger("conveyor.worker")


class Writes(Protocol):
    def write_late(self) -> bool:
        """Write what is due; whether anything is still waiting (ask again later)."""


class LateWriter:
    """Runs ``write_late`` of every registered outbox, ``DELAY`` after each poke."""

    def __init__(self) -> None:
        self._outboxes: list[Writes] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, outbox: Writes) -> None:
        with self._lock:
            self._outboxes.append(outbox)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="conveyor-late-writes", daemon=True
                )
                self._thread.start()

    def unregister(self, outbox: Writes) -> None:
        with self._lock:
            if outbox in self._outboxes:
                self._outboxes.remove(outbox)

    def poke(self) -> None:
        """Something waits: look at it ``DELAY`` from now (cheap when already awake)."""
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        outage = Outage(logger)
        while True:
            self._wake.wait()
            time.sleep(DELAY)
            self._wake.clear()
            with self._lock:
                outboxes = list(self._outboxes)
            waiting = failed = False
            for outbox in outboxes:
                try:
                    waiting = outbox.write_late() or waiting
                except BrokerError as exc:
                    outage.failed("background result write", exc)
                    waiting = failed = True
                except Exception:
                    logger.exception("background result write failed; the worker retries it")
                    waiting = True
            if failed:
                time.sleep(outage.pause())
            else:
                outage.ended("background result write")
            if waiting:
                self._wake.set()


_writer: tuple[int, LateWriter] | None = None
_writer_lock = threading.Lock()


def late_writer() -> LateWriter:
    """This process's writer (a forked child gets its own)."""
    global _writer
    with _writer_lock:
        if _writer is None or _writer[0] != os.getpid():
            _writer = (os.getpid(), LateWriter())
        return _writer[1]
