"""How the loops that keep calling the broker report an outage: one line when it starts, a
short reminder now and then while it lasts, one line when the broker answers again.

A broker that is down makes every call fail the same way, and a loop that logs each failure
(with its traceback) buries everything else in the log. The loops of one process part (the
supervisor's lease heartbeat, recovery of expired leases and revocation checks; or one
consumer) share an ``Outage`` and name themselves in each report::

    outage = Outage(logger)
    while running:
        try:
            batch = broker.reserve(...)
        except BrokerError as exc:
            outage.failed("consumer", exc)
            stop.wait(outage.pause())
            continue
        outage.ended("consumer")

The outage ends when every loop that failed has succeeded again (or has nothing left to
do): a loop that keeps failing while another succeeds does not make the broker look as if
it came and went.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

__all__ = ["Outage"]

FIRST_REMINDER = 5.0
"""Seconds into an outage before the first "still failing" line."""
LONGEST_SILENCE = 60.0
"""The gap between reminders doubles up to this many seconds."""
FIRST_PAUSE = 0.1
LONGEST_PAUSE = 5.0
"""``pause()``: the wait between attempts doubles from FIRST_PAUSE up to LONGEST_PAUSE."""


class Outage:
    """The broker outage that some loops of one process see: its start, attempts and end."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.clock = clock
        self.since: float | None = None
        """When the first failing call of this outage failed (None: no outage)."""
        self.attempts = 0
        self.failing: set[str] = set()
        """The loops whose last call failed."""
        self._silence = FIRST_REMINDER
        self._next_reminder = 0.0
        self._lock = threading.Lock()

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, what: str, exc: BaseException) -> None:
        """A call of loop ``what`` failed. The first failure of an outage is logged in one
        line (a BrokerError names the redacted URL and the cause), then a short line at
        most every few seconds, less often as the outage goes on."""
        with self._lock:
            now = self.clock()
            self.attempts += 1
            self.failing.add(what)
            if self.since is None:
                self.since = now
                self._silence = FIRST_REMINDER
                self._next_reminder = now + self._silence
                self.logger.error("%s failed, retrying: %s", what, exc)
                return
            if now >= self._next_reminder:
                self.logger.warning(
                    "broker still failing (%d attempts, %.0fs): %s",
                    self.attempts,
                    now - self.since,
                    ", ".join(sorted(self.failing)),
                )
                self._silence = min(self._silence * 2, LONGEST_SILENCE)
                self._next_reminder = now + self._silence

    def ended(self, what: str) -> None:
        """A call of loop ``what`` succeeded (or it has nothing to call the broker for):
        one line when that ends the outage, nothing otherwise."""
        with self._lock:
            self.failing.discard(what)
            if self.since is None or self.failing:
                return
            self.logger.warning(
                "the broker answers again (after %.0fs and %d failed attempt(s))",
                self.clock() - self.since,
                self.attempts,
            )
            self.since = None
            self.attempts = 0

    def pause(self) -> float:
        """Seconds to wait before the next attempt: doubling from FIRST_PAUSE with each
        failed one, up to LONGEST_PAUSE, jittered so that many loops do not retry at once."""
        doublings = min(max(self.attempts - 1, 0), 32)
        limit = min(FIRST_PAUSE * 2**doublings, LONGEST_PAUSE)
        return random.uniform(limit / 2, limit)
