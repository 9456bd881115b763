"""A prefork child's side of its supervisor (``prefork.py``): its main (``child_main``),
the notices it writes on the pipe (``PipeTracker``), the description of each task that
starts, and how it dies.

The threads and solo pools run as one such child whose consumer threads share the pipe.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import signals
from ..app import Conveyor
from ..brokers.base import Delivery
from ..exceptions import Terminated
from ..message import Message, preview
from ..request import Request
from ..task import AnyTask
from .consumer import Consumer, run_consumers
from .slots import Slot, SlotTable

__all__ = [
    "TERMINATE",
    "WARM_STOP",
    "ChildSettings",
    "Pipe",
    "PipeTracker",
    "child_main",
    "describe_starts",
    "die_with_parent",
    "interrupt",
]

logger = logging.getLogger("conveyor.worker")

WARM_STOP = signal.SIGUSR2
"""Supervisor to child: finish the running task, hand back the rest, exit."""
TERMINATE = signal.SIGUSR1
"""Supervisor to child: interrupt the running task (revoked with terminate=True)."""
_PR_SET_PDEATHSIG = 1
_current = threading.local()
"""The PipeTracker of the consumer thread running here (``_describe_start`` finds it)."""


@dataclass(frozen=True)
class ChildSettings:
    """What a child consumes with, as its supervisor was given it."""

    app: Conveyor
    queues: Sequence[str]
    hostname: str
    prefetch: int | None
    max_tasks: int | None
    pool: str
    """``prefork``: one consumer; ``threads``, ``solo`` and ``asyncio``: the one child of those
    pools (``asyncio``: a solo consumer that runs the event loop on its own thread)."""
    threads: int
    """Consumer threads of the ``threads`` pool's child."""


def child_main(  # pragma: no cover
    settings: ChildSettings, index: int, fd: int, slots: SlotTable
) -> None:
    """A forked child, to its exit: consume until the supervisor stops it or dies; notices
    go to the supervisor on ``fd``, what each consumer runs to its slot in ``slots``."""
    code = 0
    try:
        die_with_parent()
        multiprocessing.current_process().name = f"Child-{index}"
        parent = os.getppid()
        stop = threading.Event()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(WARM_STOP, lambda *_: stop.set())
        random.seed()
        for hook in settings.app.on_worker_child_start:
            hook()
        signals.worker_process_init.send(sender=None)
        alive = lambda: os.getppid() == parent  # noqa: E731
        if settings.pool != "prefork":
            _run_local(settings, fd, slots, stop, alive)
            return
        tracker = PipeTracker(fd, slots.slot(0))
        describe_starts(settings.app, [tracker])
        consumer = Consumer(
            settings.app,
            settings.queues,
            settings.hostname,
            tracker,
            settings.prefetch,
            settings.max_tasks,
            stop=stop,
            alive=alive,
        )
        signal.signal(TERMINATE, lambda *_: interrupt(consumer, slots))
        _freeze_settled_objects()
        run_consumers([consumer], stop, in_main_thread=True)
    except BaseException:
        logger.exception("child %d crashed", index)
        code = 1
    finally:
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=code)
        logging.shutdown()
        os._exit(code)


def _freeze_settled_objects() -> None:  # pragma: no cover - child process
    """Move what the child holds once it is ready (modules, the app, its tasks) out of the
    collector's reach: each full collection would walk it again, about 1 us a quick task."""
    gc.freeze()


def _run_local(
    settings: ChildSettings,
    fd: int,
    slots: SlotTable,
    stop: threading.Event,
    alive: Callable[[], bool],
) -> None:  # pragma: no cover - child process
    """The child of the threads and solo pools: its consumers share the pipe."""
    solo = settings.pool in ("solo", "asyncio")
    pipe = Pipe(fd)
    count = 1 if solo else settings.threads
    trackers = [PipeTracker(pipe, slots.slot(i)) for i in range(count)]
    describe_starts(settings.app, trackers)
    consumers = [
        Consumer(
            settings.app,
            settings.queues,
            settings.hostname,
            tracker,
            settings.prefetch,
            stop=stop,
            alive=alive,
            inline_async=settings.pool == "asyncio",
        )
        for tracker in trackers
    ]
    if solo:
        signal.signal(TERMINATE, lambda *_: interrupt(consumers[0], slots))
    else:
        signal.signal(TERMINATE, signal.SIG_IGN)
    _freeze_settled_objects()
    run_consumers(consumers, stop, in_main_thread=solo)


_Start = tuple[str, str, float | None, int]


def _start_line(start: _Start) -> str:
    """The "started" line of a start, without its description and end of line."""
    delivery_id, task_id, hard_deadline, fence = start
    return f"S\t{delivery_id}\t{task_id}\t{hard_deadline or ''}\t{fence}"


class Pipe:
    """The pipe to the supervisor, shared by the consumer threads of one child: one lock
    and one buffer of notices, so any thread's write carries every thread's "finished"
    and "released" notices. When a task kills the process, the supervisor then charges
    only the tasks still running, not one that ended in another thread but whose notice
    was still waiting in that thread's buffer."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self.pending = ""


class PipeTracker:
    """The child's side: short lines on the pipe, buffered so a batch costs one write.

    A ``def`` task's start goes to the consumer's ``slot`` (slots.py), which the
    supervisor reads when it needs to; without a slot, and for ``async def`` tasks, a
    "started" line. "finished" and "released" wait for the next write or a flush.
    Thread-safe: the consumer threads of a child share one ``Pipe``.
    """

    def __init__(self, pipe: Pipe | int, slot: Slot | None = None) -> None:
        self.pipe = pipe if isinstance(pipe, Pipe) else Pipe(pipe)
        self.slot = slot
        self._lineage = ("", "")
        self._slotted: tuple[str, str] | None = None
        """The delivery id and task name of the ``def`` task in the slot."""
        self._urgent = False
        """Buffered lines that must reach the supervisor as the task starts (the batch's
        reservations, its stamps)."""
        self.deferred = False
        """True when a hook describes every task that starts (``_describe_start``): its
        "started" notice waits the microseconds until then and carries the task's name
        and argument previews."""
        self.starting: _Start | None = None
        """The deferred start: delivery id, task id, hard deadline, fence."""

    def _send(self, text: str) -> None:
        pipe = self.pipe
        with pipe.lock:
            start, self.starting = self.starting, None
            if start is not None:  # a start whose description did not come: it goes now
                text = f"{_start_line(start)}\n{text}"
            _write_locked(pipe, text)

    def _later(self, text: str) -> None:
        """Buffer lines for the next write (``_send``) or ``flush``."""
        with self.pipe.lock:
            self.pipe.pending += text

    def reserved(self, deliveries: list[Delivery]) -> None:
        """Sent with the batch's first start (a ``def`` task's in its slot too: the
        supervisor keeps the leases it holds alive), or the flush before the consumer
        sleeps: a write of its own would cost each lone task ~10 us more."""
        self._later(
            "".join(f"R\t{d.id}\t{d.token}\t{d.delivery_count}\t{d.queue}\n" for d in deliveries)
        )
        self._urgent = True

    def started(
        self, delivery: Delivery, task_id: str, hard_deadline: float | None, fence: int
    ) -> None:
        start = (delivery.id, task_id, hard_deadline, fence)
        if self.deferred:
            self.starting = start
            _current.tracker = self
        else:
            self._send(_start_line(start) + "\n")

    def stamped(self, delivery: Delivery, keys: list[str]) -> None:
        """The running task carries stamps: their revocation keys, so the supervisor
        terminates it on ``revoke_by_stamped_headers(..., terminate=True)``."""
        keys = [k for k in keys if "\t" not in k and "\n" not in k]  # keep the lines whole
        if not keys:
            return
        line = "T\t" + "\t".join([delivery.id, *keys]) + "\n"
        if self.starting is not None:  # goes with the start notice, once it is described
            self._later(line)
            self._urgent = True
        else:  # at once: the task runs from now
            self._send(line)

    def lineage(self, delivery: Delivery, parent_id: str | None, root_id: str | None) -> None:
        """The starting task's parent and root ids, sent before its start notice, so the
        outcome the supervisor writes if it kills the task keeps them."""
        ids = f"{parent_id or ''}\t{root_id or ''}"
        self._lineage = (parent_id or "", root_id or "")
        if "\n" not in ids and ids.count("\t") == 1:  # keep the lines whole
            self._later(f"L\t{delivery.id}\t{ids}\n")

    def described(self, message: Message, at_once: bool = True) -> None:
        """What the task that just started is (for the registry): its start notice goes
        out with the task's name and argument previews. Not ``at_once`` (an async task:
        its loop keeps its time limits, the supervisor's deadline has a grace): it waits
        for the next write or flush, so a batch of them costs one write, not one each."""
        start, self.starting = self.starting, None
        if start is not None:
            args, kwargs = preview(message)
            lineage, self._lineage = self._lineage, ("", "")
            if at_once and self.slot is not None:
                delivery_id, task_id, deadline, fence = start
                if self._urgent:  # the reservation first: the slot names its delivery
                    self._urgent = False
                    self._send("")
                shown = (message.task, args, kwargs)
                self.slot.set(delivery_id, task_id, deadline, fence, time.time(), shown, lineage)
                self._slotted = (delivery_id, message.task)
                return
            self._urgent = False
            line = f"{_start_line(start)}\t{message.task}\t{args}\t{kwargs}\n"
            if at_once:
                self._send(line)
            else:
                self._later(line)

    def finished(self, delivery: Delivery, failed: bool = False) -> None:
        slotted = self._slotted
        if slotted is not None and slotted[0] == delivery.id and self.slot is not None:
            self.slot.clear()
            self._slotted = None
            line = f"D\t{delivery.id}\t{'F' if failed else ''}\t{slotted[1]}\n"
        else:
            line = _done_line(delivery, failed)
        self._later(line)

    def ended(self, delivery: Delivery, failed: bool = False) -> None:
        """Written at once, with whatever waits in the buffer, but not the consumer's
        deferred start (``starting``): that is the consumer thread's to send."""
        with self.pipe.lock:
            _write_locked(self.pipe, _done_line(delivery, failed))

    def released(self, deliveries: list[Delivery]) -> None:
        self._later("".join(f"F\t{d.id}\n" for d in deliveries))

    def flush(self) -> None:
        if self.pipe.pending or self.starting:
            self._send("")


def _done_line(delivery: Delivery, failed: bool) -> str:
    return f"D\t{delivery.id}\tF\n" if failed else f"D\t{delivery.id}\n"


def _write_locked(pipe: Pipe, text: str) -> None:
    """The buffered lines, then ``text``, in one write (the caller holds ``pipe.lock``)."""
    data = (pipe.pending + text).encode()
    pipe.pending = ""
    while data:
        written = os.write(pipe.fd, data)
        data = data[written:]


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


def interrupt(consumer: Consumer, slots: SlotTable) -> None:
    """The terminate signal: stop the ``def`` task running, if it is the one the supervisor
    aimed the signal at (``SlotTable.aim``), not the next one the consumer began since;
    coroutines in flight beside it go on. A signal aimed at nothing stops a ``def`` task
    only when no coroutine is in flight (it could be meant for one of them, which the
    loop cancels itself): a SIGUSR1 sent by hand before the supervisor aimed any."""
    executor = consumer.executor
    aimed = slots.aimed()
    if aimed:
        if aimed == executor.running_id:
            raise Terminated("revoked with terminate=True")
        return
    if executor.running:
        raise Terminated("revoked with terminate=True")


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this child when the supervisor dies, so no orphan keeps running."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
