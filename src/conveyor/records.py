"""What the result backend keeps for each task, and the concrete store that reads and writes it.

A record is written with a fence (see ``fence()``) so that an older attempt at a task can
never overwrite the state a newer attempt wrote.
"""

from __future__ import annotations

import sys
import time
import traceback as tb
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from . import states
from .backends.base import Listing, ResultBackend
from .exceptions import RemoteTaskError
from .keys import TASK_PREFIX
from .serialization import encode_hook, untag_if_marked

__all__ = [
    "LEVEL_FINAL",
    "LEVEL_PROGRESS",
    "LEVEL_RECEIVED",
    "LEVEL_STARTED",
    "ErrorRecord",
    "ResultStore",
    "TaskRecord",
    "at_level",
    "fence",
    "resends_of",
    "retries_of",
]

_DELIVERIES = 100_000
_RESENDS = 10_000
_LEVELS = 4
LEVEL_RECEIVED, LEVEL_STARTED, LEVEL_PROGRESS, LEVEL_FINAL = range(_LEVELS)
"""Levels within one attempt: a later kind of state outranks an earlier one, so a STARTED
written late (by the worker's background writer) never hides the task's progress or end."""


def retries_of(fence: int) -> int:
    return fence // (_DELIVERIES * _RESENDS * _LEVELS)


def resends_of(fence: int) -> int:
    return fence // (_DELIVERIES * _LEVELS) % _RESENDS


def fence(retries: int, delivery_count: int, level: int = LEVEL_FINAL, *, resends: int = 0) -> int:
    """Order states: a retry outranks every attempt of the try before it; a re-send from the
    dead letters (``Delivery.resends``) every delivery before it, though its delivery count
    starts again at 1; a delivery every state of the delivery before it; and within one
    delivery the level decides. Exact for 99,999 deliveries a re-send and 9,999 re-sends a
    try (and, where fences are doubles, as in Redis's Lua, two million retries)."""
    return ((retries * _RESENDS + resends) * _DELIVERIES + delivery_count) * _LEVELS + level


def at_level(fence: int, level: int) -> int:
    """The same attempt's fence at another level."""
    return fence - fence % _LEVELS + level


class ErrorRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    module: str
    message: str
    args: list[Any] = []

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorRecord:
        from .serialization import encode_value

        args: list[Any] = []
        try:
            encode_value(list(exc.args))
            args = list(exc.args)
        except Exception:
            args = []
        return cls(type(exc).__qualname__, type(exc).__module__, str(exc), args)

    def rebuild(self, traceback: str | None = None) -> BaseException:
        """The original exception where its class is already loaded here, else a
        RemoteTaskError that names it and keeps its message.

        A stored record is data anyone able to write to the result store controls, so
        reading one imports nothing and runs no import-time code: the class is looked up in
        a module already in ``sys.modules`` (through the module's and classes' own
        namespaces, so no module ``__getattr__`` runs either), and only a real exception
        class is rebuilt. Exceptions that stop a process (SystemExit, KeyboardInterrupt,
        GeneratorExit) are never re-raised in a reader: a task cannot end with them anyway.
        """
        kind = self._loaded_class()
        if kind is not None:
            try:
                return kind(*self.args) if self.args else kind(self.message)
            except Exception:
                try:
                    return kind(self.message)
                except Exception:
                    pass
        return RemoteTaskError(self.type, self.module, self.message, traceback)

    def _loaded_class(self) -> Callable[..., BaseException] | None:
        obj: object = sys.modules.get(self.module)
        for part in self.type.split("."):
            namespace = getattr(obj, "__dict__", None)
            if not isinstance(namespace, Mapping):
                return None
            obj = namespace.get(part)
        if not isinstance(obj, type) or not issubclass(obj, BaseException):
            return None
        if issubclass(obj, _NEVER_REBUILT):
            return None
        return obj


_NEVER_REBUILT = (SystemExit, KeyboardInterrupt, GeneratorExit)


class TaskRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    status: str
    result: Any = None
    """The return value (SUCCESS), the meta of a custom state, or a reason (REVOKED)."""
    exception: ErrorRecord | None = None
    traceback: str | None = None
    task: str | None = None
    date_done: float | None = None
    retries: int = 0
    resends: int = 0
    """How many times the message of this attempt had been re-sent from the dead letters
    (stamped from the fence it is written with)."""
    worker: str | None = None
    parent_id: str | None = None
    """The id of the task that sent this one, or that it follows in a chain (its message's)."""
    root_id: str | None = None
    """The id of its workflow's first task; left out when that is the task itself."""
    children: list[Any] = []
    """What the task sent while it ran, each result in ``as_tuple()`` form (Celery's
    ``children``): a task's ``[[id, parent], null]``, a group's with its members."""
    retry_at: float | None = None
    """RETRY: the Unix time the next attempt is due."""
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    """How the task's arguments are shown: kept on a failure, and wherever the sender gave
    ``argsrepr``/``kwargsrepr`` (``Message.shown_args``)."""
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    """FAILURE: the arguments of the attempt that failed, so it can be sent again with them
    (the dashboard's "retry"): JSON-serialized ones only, and not when the sender hid them
    behind ``argsrepr``/``kwargsrepr``."""
    queue: str | None = None
    """The queue the message came from (set by the worker), so task lists filter by it."""
    runtime: float | None = None
    """Seconds the task's code ran (outcomes the worker wrote), so a record of a quick task,
    whose STARTED is never written, still tells how long it took."""


_encoder = msgspec.json.Encoder(enc_hook=encode_hook)
_decoder = msgspec.json.Decoder(TaskRecord)


def format_traceback(exc: BaseException) -> str:
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


class ResultStore:
    """Task state on top of any ResultBackend."""

    prefix = TASK_PREFIX

    def __init__(
        self, backend: ResultBackend, expires: float, clock: Callable[[], float] = time.time
    ):
        self.backend = backend
        self.expires = expires
        self.clock = clock

    def key(self, task_id: str) -> str:
        return self.prefix + task_id

    def encode(self, record: TaskRecord, fence: int | None = None) -> bytes:
        """The stored form; raises TypeError for a value that cannot be stored. ``fence``:
        the one it will be written with, which says which re-send the record belongs to."""
        if record.status in states.READY_STATES and record.date_done is None:
            record.date_done = self.clock()
        if fence is not None:
            record.resends = resends_of(fence)
        return _encoder.encode(record)

    def write(
        self,
        task_id: str,
        record: TaskRecord,
        fence: int | None = None,
        reply: str | None = None,
    ) -> bool:
        """Store a task's state; ``reply``: also hand it to the sender, at that reply
        address ("": the key's own reply list; see ``Message.reply_to``)."""
        data = self.encode(record, fence)
        if reply is not None:
            return self.write_encoded([(task_id, data, fence)], {task_id: reply})[0]
        return self.backend.set(self.key(task_id), data, self.expires, fence)

    def write_encoded(
        self, items: Sequence[tuple[str, bytes, int | None]], replies: Mapping[str, str] = {}
    ) -> list[bool]:
        """Store already-encoded records ``(task_id, data, fence)`` in one round trip;
        ``replies``: the task ids among them whose sender waits for a reply, each with its
        reply address ("": the key's own reply list)."""
        keyed = [(self.key(task_id), data, fence) for task_id, data, fence in items]
        if replies:
            return self.backend.set_fenced_many(
                keyed, self.expires, {self.key(t): address for t, address in replies.items()}
            )
        return self.backend.set_fenced_many(keyed, self.expires)

    def expect(self, task_id: str, since: float, address: str | None = None) -> None:
        """This process sent ``task_id`` at ``since`` with a reply (``ResultBackend.expect``)."""
        self.backend.expect(self.key(task_id), since, address)

    def read(self, task_id: str) -> TaskRecord | None:
        return self.decode(self.backend.get(self.key(task_id)))

    def read_many(self, task_ids: Sequence[str]) -> list[TaskRecord | None]:
        return [self.decode(v) for v in self.backend.mget([self.key(t) for t in task_ids])]

    def wait(self, task_id: str, timeout: float | None) -> TaskRecord | None:
        def ready(value: bytes | None) -> bool:
            record = self.decode(value)
            return record is not None and record.status in states.READY_STATES

        return self.decode(self.backend.wait(self.key(task_id), ready, timeout))

    def list(
        self,
        state: str | None = None,
        name: str | None = None,
        since: float | None = None,
        limit: int = 50,
        offset: int = 0,
        worker: str | None = None,
        queue: str | None = None,
    ) -> list[tuple[str, TaskRecord]]:
        """A page of ``(task id, record)``, newest first: the records in ``state``, of the
        task ``name``, by ``worker``, from ``queue``, ended at ``since`` (Unix time) or
        later. The backend filters and pages (``ResultBackend.list_json``): a page costs
        what it reads, however many records there are."""
        equals: list[tuple[str, str]] = []
        if state is not None:
            equals.append(("status", state))
        if name is not None:
            equals.append(("task", name))
        if worker is not None:
            equals.append(("worker", worker))
        if queue is not None:
            equals.append(("queue", queue))
        at_least = ("date_done", float(since)) if since is not None else None
        listing = Listing(self.prefix, tuple(equals), at_least, limit, offset)
        found = []
        for key, value in self.backend.list_json(listing):
            record = self.decode(value)
            if record is not None:
                found.append((key[len(self.prefix) :], record))
        return found

    def forget(self, task_ids: Sequence[str]) -> None:
        self.backend.delete([self.key(t) for t in task_ids])

    @staticmethod
    def decode(value: bytes | None) -> TaskRecord | None:
        """A stored record, or None for no value (or one that is not a record)."""
        if value is None:
            return None
        try:
            record: TaskRecord = _decoder.decode(value)
        except msgspec.DecodeError:
            return None
        record.result = untag_if_marked(value, record.result)  # Celery's tagged JSON types
        return record
