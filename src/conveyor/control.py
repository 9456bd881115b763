"""``app.control``: revoke tasks, change limits, and steer running workers.

Revocations and rate limits are written to the coordinator, not sent to workers' memory,
so they hold for tasks not yet received, across worker restarts, and for workers started
later. Commands for workers (``add_consumer``, ``pool_grow``, ``shutdown``, your own
``broadcast``) go to each worker's mailbox in the coordinator, which its supervisor takes
on its heartbeat (a second); a reply comes back through a list of the request's own.
Workers are found in the registry (``registry.py``); ``inspect()`` reads it.
"""

from __future__ import annotations

import json
import re
import signal as signals
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import states
from .exceptions import DecodeError
from .ids import new_id
from .inspection import Inspect
from .keys import (
    REVOKED_GROUP,
    mailbox_key,
    rate_override_key,
    reply_key,
    revoked_key,
    revoked_stamp_key,
)
from .records import LEVEL_RECEIVED, TaskRecord, fence
from .registry import read_workers
from .serialization import decode_message
from .stamps import stamp_keys

if TYPE_CHECKING:
    from .app import Conveyor

__all__ = [
    "COMMANDS",
    "MAILBOX_TTL",
    "REPLY_TTL",
    "Command",
    "Control",
    "control_command",
    "inspect_command",
    "parse_rate",
]

MAILBOX_TTL = 300.0
"""Seconds a command waits in a worker's mailbox (a worker restarting meanwhile gets it)."""
REPLY_TTL = 60.0
"""Seconds a worker's reply waits to be read."""
_POLL = 0.05
"""Seconds between two reads of the replies to a command."""


@dataclass(frozen=True, slots=True)
class Command:
    """A control command workers answer: ``handler(state, **arguments)`` runs in the
    worker's supervisor (``state`` has ``app``, ``hostname`` and ``pool``)."""

    name: str
    handler: Callable[..., Any]
    kind: str = "control"


COMMANDS: dict[str, Command] = {}
"""Custom commands by name, registered with ``control_command`` or ``inspect_command`` in a
module the worker imports (its tasks modules)."""


def control_command(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, **celery_options: Any
) -> Any:
    """Register a command workers run when ``app.control.broadcast(name)`` reaches them.

    Celery's decorator, with its ``args``/``signature`` options accepted and not needed::

        @control_command
        def increase_prefetch_count(state, n=1):
            return {"ok": f"prefetch now {n}"}
    """
    return _register(fn, name, "control")


def inspect_command(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, **celery_options: Any
) -> Any:
    """Register a read-only command (Celery's ``inspect_command``); sent the same way."""
    return _register(fn, name, "inspect")


def _register(fn: Callable[..., Any] | None, name: str | None, kind: str) -> Any:
    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        command = Command(name or handler.__name__, handler, kind)
        COMMANDS[command.name] = command
        return handler

    return decorate if fn is None else decorate(fn)


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: str | float | int | None) -> float | None:
    """Tasks per second from ``"10/s"``, ``"100/m"``, ``"1000/h"`` or a number (per second)."""
    if rate is None:
        return None
    if isinstance(rate, int | float):
        value = float(rate)
    else:
        match = _RATE.match(rate)
        if match is None:
            raise ValueError(f"bad rate limit {rate!r}: write it like '10/s', '100/m' or '1000/h'")
        value = float(match.group(1)) / _PER[match.group(2) or "s"]
    if value <= 0:
        raise ValueError(f"bad rate limit {rate!r}: it must be above zero")
    return value


class Control:
    def __init__(self, app: Conveyor) -> None:
        self.app = app

    def revoke(
        self,
        task_id: str | Sequence[str],
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        reason: str = "revoked",
    ) -> None:
        """Revoke tasks: they will not start; with ``terminate``, running ones are killed.

        A running task that is not terminated sees ``self.is_aborted()`` become True.
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        signum = _signal_number(signal)
        value = json.dumps({"terminate": terminate, "signal": signum, "reason": reason})
        expires = float(self.app.conf.task_revoke_expires)
        # listed first: a worker's reservation reads revocations only while the list exists
        self.app.coordinator.put_members(REVOKED_GROUP, [(i, reason) for i in ids], expires)
        self.app.coordinator.put_many([(revoked_key(i), value) for i in ids], expires)
        results = self.app.results
        for tid, record in zip(ids, results.read_many(ids), strict=True):
            if record is None or record.status in (states.PENDING, states.RECEIVED, states.RETRY):
                revoked = TaskRecord(status=states.REVOKED, result=reason)
                if record is not None:  # what a worker noted of it: name and lineage
                    revoked.task, revoked.parent_id = record.task, record.parent_id
                    revoked.root_id = record.root_id
                results.write(tid, revoked)

    def retry_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Send dead letters (these ids, or all) back to their queues; the count sent.

        Each re-sent task's state reads PENDING again until its new attempt stores its
        own: its failure is forgotten, and a PENDING written with a fence below the new
        attempt's first delivery, so it can never hide the new outcome. A live message of
        the same id wins over its dead letter and keeps its state.
        """
        broker = self.app.broker
        letters = broker.dead_letters(1_000_000)
        if ids is not None:
            wanted = set(ids)
            letters = [letter for letter in letters if letter.id in wanted]
        live = broker.contains([letter.id for letter in letters]) if letters else set()
        resent = []
        for letter in letters:
            try:
                message = decode_message(letter.body)
            except DecodeError:
                continue
            if letter.id not in live:
                resent.append((letter, message))
        # The failure goes first, and a reply holding it that its sender never read.
        self.app.results.forget([message.id for _, message in resent])
        count = broker.requeue_dead_letters(None if ids is None else list(ids))
        for letter, message in resent:
            attempt = fence(message.retries, 0, LEVEL_RECEIVED, resends=letter.resends + 1)
            record = TaskRecord(status=states.PENDING, task=message.task, retries=message.retries)
            self.app.results.write(message.id, record, attempt)
        return count

    def revoke_by_stamped_headers(
        self,
        headers: Mapping[str, Any] | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        reply: bool = False,
        timeout: float = 1.0,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Revoke every task carrying one of these stamps (``{"batch": "b-7"}``, a list of
        values, or Celery's ``["batch=b-7"]``): it will not start, on any worker.

        As with ``revoke``, this holds across restarts and for workers started later
        (``destination`` is accepted and changes nothing: revocations reach every worker).
        A stamped task already running sees ``self.is_aborted()`` become True; with
        ``terminate``, it is stopped as ``revoke(id, terminate=True)`` stops one (the
        supervisor of a prefork worker signals its process; a threads pool cannot).
        With ``reply``, each worker online answers as Celery's do (``[{worker: {"ok":
        "headers ... flagged as revoked, but not terminated"}}]``).
        """
        shown = dict(headers) if isinstance(headers, Mapping) else list(headers)
        if not isinstance(headers, Mapping):
            headers = dict(item.split("=", 1) for item in headers)
        signum = _signal_number(signal)
        items = []
        for name, values in headers.items():
            for value in values if isinstance(values, list | tuple | set) else [values]:
                reason = f"revoked by stamped header {name}={value!r}"
                flag = {"terminate": terminate, "signal": signum, "reason": reason}
                items.append((revoked_stamp_key(name, value), json.dumps(flag)))
        self.app.coordinator.put_many(items, float(self.app.conf.task_revoke_expires))
        if not reply:
            return None
        arguments = {"headers": repr(shown), "terminate": terminate}
        return self.broadcast("revoke_by_stamped_headers", arguments, None, True, timeout)

    def stamp_revocation(self, headers: Mapping[str, Any]) -> str | None:
        """The revocation of the first revoked stamp among a message's ``headers``, if any."""
        keys = stamp_keys(headers)
        found = self.app.coordinator.get_many(keys) if keys else []
        return next((flag for flag in found if flag is not None), None)

    def is_revoked(self, task_id: str) -> bool:
        return self.app.coordinator.get(revoked_key(task_id)) is not None

    def rate_limit(self, task_name: str, rate: str | float | None) -> None:
        """Change a task's rate limit on every worker at once (None: back to the task's own)."""
        key = rate_override_key(task_name)
        if rate is None:
            self.app.coordinator.delete(key)
            return
        parse_rate(rate)
        self.app.coordinator.put_many([(key, str(rate))], 10 * 365 * 86400.0)

    # -- commands for running workers ---------------------------------------------------

    def inspect(
        self, destination: Sequence[str] | None = None, timeout: float = 1.0, **kwargs: Any
    ) -> Inspect:
        """What workers run and hold, their stats and settings, read from the registry."""
        return Inspect(self.app, destination, timeout)

    def command(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """``@app.control.command``: the same as ``control_command``."""
        return control_command(fn, name=name)

    def broadcast(
        self,
        command: str,
        arguments: Mapping[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Send ``command`` to the workers ``destination`` names (default: every worker
        online); with ``reply``, their answers as ``[{worker: reply}, ...]``.

        A worker takes its commands on its heartbeat (once a second), so a wait shorter
        than two heartbeats is stretched to that when some worker has not answered yet.
        """
        if isinstance(destination, str):
            destination = [destination]
        now = self.app.clock()
        found = read_workers(self.app.coordinator, now, destination)
        if destination is not None:
            targets = list(dict.fromkeys(destination))
        else:
            targets = [entry.name for entry in found if not entry.lost]
        request_id = new_id()
        payload = json.dumps(
            {
                "id": request_id,
                "command": command,
                "arguments": dict(arguments or {}),
                "reply": reply,
                "sent": now,
            }
        )
        for name in targets:
            self.app.coordinator.push(mailbox_key(name), [payload], MAILBOX_TTL)
        if not reply:
            return None
        beat = max((float(e.record.get("interval") or 1.0) for e in found), default=1.0)
        wait = max(timeout, 2 * beat + 0.5)
        return self._replies(request_id, targets, wait, limit)

    def _replies(
        self, request_id: str, targets: Sequence[str], wait: float, limit: int | None
    ) -> list[dict[str, Any]]:
        expected = limit if limit is not None else len(targets)
        deadline = time.monotonic() + wait
        replies: list[dict[str, Any]] = []
        while True:
            for text in self.app.coordinator.take(reply_key(request_id)):
                answer = json.loads(text)
                replies.append({answer["worker"]: answer["reply"]})
            if len(replies) >= expected or time.monotonic() >= deadline:
                return replies
            time.sleep(_POLL)

    def ping(
        self, destination: Sequence[str] | None = None, timeout: float = 1.0, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """``[{worker: {"ok": "pong"}}, ...]`` from every worker that answers, live."""
        return self.broadcast("ping", destination=destination, reply=True, timeout=timeout) or []

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Change a task's soft and hard time limits on running workers (their child
        processes are replaced as each finishes its task, and start with the new limits)."""
        arguments = {"task_name": task_name, "soft": soft, "hard": hard}
        return self.broadcast("time_limit", arguments, destination, reply, timeout)

    def add_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str | None = None,
        routing_key: str | None = None,
        options: Mapping[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Make running workers consume ``queue`` too (Celery's exchange options are
        accepted and mean nothing here: a queue is a name)."""
        return self.broadcast("add_consumer", {"queue": queue}, destination, reply, timeout)

    def cancel_consumer(
        self,
        queue: str,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Make running workers stop consuming ``queue`` (a worker keeps its last queue)."""
        return self.broadcast("cancel_consumer", {"queue": queue}, destination, reply, timeout)

    def pool_grow(
        self,
        n: int = 1,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Start ``n`` more child processes in prefork workers."""
        return self.broadcast("pool_grow", {"n": n}, destination, reply, timeout)

    def pool_shrink(
        self,
        n: int = 1,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Stop ``n`` child processes of prefork workers, each once its task ends."""
        return self.broadcast("pool_shrink", {"n": n}, destination, reply, timeout)

    def autoscale(
        self,
        max: int,
        min: int,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Celery's autoscaler bounds. No Conveyor pool autoscales yet: workers reply
        with an error naming ``pool_grow`` and ``pool_shrink``."""
        return self.broadcast("autoscale", {"max": max, "min": min}, destination, reply, timeout)

    def shutdown(
        self,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Warm shutdown: workers finish their running tasks, hand back the rest, and exit."""
        return self.broadcast("shutdown", None, destination, reply, timeout)


def _signal_number(signal: str | int) -> int:
    if isinstance(signal, int):
        return signal
    name = signal.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signals, name))
    except AttributeError:
        raise ValueError(f"unknown signal {signal!r}") from None
