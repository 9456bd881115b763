"""A prefork child's side of its supervisor (``prefork.py``): the notices it writes on the
pipe (``PipeTracker``), the description of each task that starts, and how it dies.

The threads and solo pools run as one such child whose consumer threads share the pipe.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading

from ..app import Conveyor
from ..brokers.base import Delivery
from ..exceptions import Terminated
from ..message import Message, preview
from ..request import Request
from ..task import AnyTask
from .consumer import Consumer

__all__ = ["PipeTracker", "describe_starts", "die_with_parent", "interrupt"]

_PR_SET_PDEATHSIG = 1
_current = threading.local()
"""The PipeTracker of the consumer thread running here (``_describe_start`` finds it)."""


class PipeTracker:
    """The child's side: short lines on the pipe, buffered so a task costs one write.

    "started" goes out at once (the hard time limit counts from it), carrying whatever
    was buffered before it; "finished" and "released" wait for the next write or a flush.
    Thread-safe: the consumer threads of a child share one pipe and one lock.
    """

    def __init__(self, fd: int, lock: threading.Lock | None = None) -> None:
        self.fd = fd
        self.pending = ""
        self.lock = lock or threading.Lock()
        self.deferred = False
        """True when a hook describes every task that starts (``_describe_start``): its
        "started" notice waits the microseconds until then and carries the task's name
        and argument previews."""
        self.starting: str | None = None
        """The deferred "started" notice, without its description and end of line."""

    def _send(self, text: str) -> None:
        with self.lock:
            start, self.starting = self.starting, None
            if start is not None:  # a start whose description did not come: it goes now
                text = f"{start}\n{text}"
            data = (self.pending + text).encode()
            self.pending = ""
            while data:
                written = os.write(self.fd, data)
                data = data[written:]

    def reserved(self, deliveries: list[Delivery]) -> None:
        self._send(
            "".join(f"R\t{d.id}\t{d.token}\t{d.delivery_count}\t{d.queue}\n" for d in deliveries)
        )

    def started(
        self, delivery: Delivery, task_id: str, hard_deadline: float | None, fence: int
    ) -> None:
        line = f"S\t{delivery.id}\t{task_id}\t{hard_deadline or ''}\t{fence}"
        if self.deferred:
            self.starting = line
            _current.tracker = self
        else:
            self._send(line + "\n")

    def stamped(self, delivery: Delivery, keys: list[str]) -> None:
        """The running task carries stamps: their revocation keys, so the supervisor
        terminates it on ``revoke_by_stamped_headers(..., terminate=True)``."""
        keys = [k for k in keys if "\t" not in k and "\n" not in k]  # keep the lines whole
        if not keys:
            return
        line = "T\t" + "\t".join([delivery.id, *keys]) + "\n"
        if self.starting is not None:  # goes with the start notice, once it is described
            with self.lock:
                self.pending += line
        else:  # at once: the task runs from now
            self._send(line)

    def lineage(self, delivery: Delivery, parent_id: str | None, root_id: str | None) -> None:
        """The starting task's parent and root ids, sent before its start notice, so the
        outcome the supervisor writes if it kills the task keeps them."""
        ids = f"{parent_id or ''}\t{root_id or ''}"
        if "\n" not in ids and ids.count("\t") == 1:  # keep the lines whole
            with self.lock:
                self.pending += f"L\t{delivery.id}\t{ids}\n"

    def described(self, message: Message, at_once: bool = True) -> None:
        """What the task that just started is (for the registry): its start notice goes
        out with the task's name and argument previews. Not ``at_once`` (an async task:
        its loop keeps its time limits, the supervisor's deadline has a grace): it waits
        for the next write or flush, so a batch of them costs one write, not one each."""
        start, self.starting = self.starting, None
        if start is not None:
            args, kwargs = preview(message)
            line = f"{start}\t{message.task}\t{args}\t{kwargs}\n"
            if at_once:
                self._send(line)
            else:
                with self.lock:
                    self.pending += line

    def finished(self, delivery: Delivery, failed: bool = False) -> None:
        with self.lock:
            self.pending += f"D\t{delivery.id}\tF\n" if failed else f"D\t{delivery.id}\n"

    def released(self, deliveries: list[Delivery]) -> None:
        with self.lock:
            self.pending += "".join(f"F\t{d.id}\n" for d in deliveries)

    def flush(self) -> None:
        if self.pending or self.starting:
            self._send("")


def describe_starts(app: Conveyor, trackers: list[PipeTracker]) -> None:
    """In a child: every task start is followed by what it is (name, argument previews),
    sent in the same write as the start notice."""
    for tracker in trackers:
        tracker.deferred = True
    app.on_task_start.insert(0, _describe_start)


def _describe_start(task: AnyTask, context: Request) -> None:
    """The ``on_task_start`` hook of a child: the running thread's tracker describes it."""
    tracker: PipeTracker | None = getattr(_current, "tracker", None)
    if tracker is not None and context.message is not None:
        tracker.described(context.message, at_once=not task.is_async)


def interrupt(consumer: Consumer) -> None:
    if consumer.executor.running:
        raise Terminated("revoked with terminate=True")


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this child when the supervisor dies, so no orphan keeps running."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
