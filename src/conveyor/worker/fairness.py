"""Fair dispatch: a consumer busy with a long task gives back the messages it reserved but
has not started, so an idle process (of this worker or another) starts them now.

A consumer reserves a batch because a batch of quick tasks costs one broker round trip
instead of one per task. The batch is a bet that its tasks are quick; a task that runs
past ``FAIR_AFTER`` has lost the bet, and the rest of the batch would otherwise wait
behind it while other processes sit idle.

One watcher thread per process checks its consumers every ``FAIR_AFTER`` seconds, and
only while some consumer holds unstarted messages: the consume loop pays no timer, no
clock read and no lock per task for it, only a counter. A consumer that started no task
between two checks while holding messages has been on one task for at least
``FAIR_AFTER``; its unstarted messages go back to their queues (a nack: not a delivery,
the same place in the queue, and the broker wakes sleeping consumers), so at most
``2 * FAIR_AFTER`` after a long task starts, nothing waits behind it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence, Sized
from typing import Protocol

__all__ = ["FAIR_AFTER", "STARVED", "FairWatch", "Holder"]

FAIR_AFTER = 0.01
"""Seconds a consumer may run one task while holding reserved messages it has not started.

Far above a quick task (well under a millisecond), so a batch of quick tasks is never
broken up, yet short enough that a quick task queued behind a long one still ends within
a few tens of milliseconds on another process. Waking every 10 ms while batches are held
costs the process about a hundred short wake-ups a second, and nothing while idle."""

STARVED = 2.0
"""A tick that wakes this many times ``FAIR_AFTER`` late shows the process waited for a CPU
(a loaded machine): its consumers may have made no progress for the same reason, so the
tick is no evidence of a long task and the count starts again."""

logger = logging.getLogger("conveyor.worker")


class Holder(Protocol):
    """What the watcher needs of a consumer (``Consumer`` in consumer.py)."""

    @property
    def buffer(self) -> Sized:
        """The reserved messages not started yet."""

    @property
    def begun(self) -> int:
        """How many tasks this consumer has started; it counts up at each start."""

    def hand_back_held(self, begun: int) -> int:
        """Give the unstarted messages back, unless a task started since ``begun`` was
        read; the number given back."""


class FairWatch:
    """The watcher thread of one process; ``wake()`` when a consumer fills its buffer."""

    def __init__(self, holders: Sequence[Holder], stop: threading.Event) -> None:
        self.holders = list(holders)
        self.stop = stop
        self._holding = threading.Event()
        """Set while some consumer may hold unstarted messages: the watcher then ticks."""
        self._closed = False

    def wake(self) -> None:
        """A consumer now holds unstarted messages. Cheap when the watcher is awake."""
        if not self._holding.is_set():
            self._holding.set()

    def close(self) -> None:
        """The consumers have ended: the thread ends too."""
        self._closed = True
        self._holding.set()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="conveyor-fair", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        seen: dict[int, int] = {}
        while not self.stop.is_set() and not self._closed:
            if not self._holding.wait(1.0):
                continue
            slept = time.monotonic()
            time.sleep(FAIR_AFTER)
            if self.stop.is_set() or self._closed:
                return  # warm shutdown hands back every buffer itself
            if time.monotonic() - slept > STARVED * FAIR_AFTER:
                seen.clear()  # this process had no CPU: its consumers may not have either
            if not self.check(seen):
                self._holding.clear()
                if any(holder.buffer for holder in self.holders):
                    self._holding.set()  # filled between the check and the clear

    def check(self, seen: dict[int, int]) -> bool:
        """One tick: hand back the messages of each consumer that started no task since the
        last tick; ``seen`` keeps each holding consumer's count of started tasks. Whether
        any consumer still holds messages."""
        holding = False
        for index, holder in enumerate(self.holders):
            begun = holder.begun
            if not holder.buffer:
                seen.pop(index, None)
                continue
            if seen.get(index) != begun:
                seen[index] = begun
                holding = True
                continue
            del seen[index]
            try:
                holder.hand_back_held(begun)
            except Exception:
                logger.exception("handing back reserved messages failed; their leases will pass")
            holding = holding or bool(holder.buffer)
        return holding
