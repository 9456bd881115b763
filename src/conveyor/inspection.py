"""``app.control.inspect()``: Celery's inspect methods and reply shapes, read from the registry.

Every worker writes its state to the registry on its heartbeat (``registry.py``), so an
inspect call is one read of the coordinator, whatever the number of workers, and never
waits on a busy one. What the registry leaves out is read from the broker in one more
call: the messages a worker holds are ids there (a worker does not decode a message before
it runs it), so ``reserved()`` reads their bodies; ``scheduled()`` lists the delayed
messages of the workers' queues. Replies are keyed by worker name, as Celery's, and None when no
worker (of ``destination``) is online; workers that missed their heartbeats are left out
(``conveyor status`` shows them as lost).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .exceptions import DecodeError
from .keys import REVOKED_GROUP
from .message import Message, preview
from .redaction import redact_url
from .registry import WorkerEntry, read_workers
from .serialization import decode_message

if TYPE_CHECKING:
    from .app import Conveyor

__all__ = ["SCHEDULED_LIMIT", "Inspect", "request_info"]

Reply = dict[str, Any] | None

SCHEDULED_LIMIT = 1000
"""Delayed messages ``scheduled()`` lists at most: the soonest due."""


def request_info(
    item: dict[str, Any], hostname: str, message: Message | None = None
) -> dict[str, Any]:
    """One active or reserved message in Celery's ``Request.info()`` shape: a running
    task as the registry describes it, a reserved one from its ``message`` when read."""
    name, args, kwargs = item.get("name") or None, item.get("args"), item.get("kwargs")
    if message is not None:
        name, (args, kwargs) = message.task, preview(message)
    return {
        "id": item.get("id"),
        "name": name,
        "args": args,
        "kwargs": kwargs,
        "type": name,
        "hostname": hostname,
        "time_start": item.get("time_start"),
        "acknowledged": False,
        "delivery_info": {
            "exchange": "",
            "routing_key": item.get("queue"),
            "priority": None if message is None else message.priority,
            "redelivered": bool(item.get("redelivered")),
        },
        "worker_pid": item.get("worker_pid"),
        "delivery_id": item.get("delivery_id"),
    }


class Inspect:
    """``app.control.inspect(destination=None, timeout=1.0)``; ``timeout`` is accepted for
    Celery's sake: the registry answers at once."""

    def __init__(
        self,
        app: Conveyor,
        destination: Sequence[str] | str | None = None,
        timeout: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.destination = [destination] if isinstance(destination, str) else destination
        self.timeout = timeout

    def _online(self) -> list[WorkerEntry]:
        found = read_workers(self.app.coordinator, self.app.clock(), self.destination)
        return [entry for entry in found if not entry.lost]

    def _each(self, answer: Callable[[WorkerEntry], Any]) -> Reply:
        replies = {entry.name: answer(entry) for entry in self._online()}
        return replies or None

    def _held(self, workers: list[WorkerEntry], ids: set[str] | None = None) -> dict[str, Message]:
        """The messages these workers hold and have not started (of these task ``ids``), by
        delivery id, read from the broker (those acknowledged since the heartbeat are gone:
        left out)."""
        named = [
            (str(item.get("queue")), str(item.get("delivery_id")))
            for entry in workers
            for item in entry.record.get("reserved", [])
            if ids is None or item.get("id") in ids
        ]
        messages = {}
        for copy in self.app.broker.peek(named) if named else []:
            try:
                messages[copy.id] = decode_message(copy.body)
            except DecodeError:
                continue
        return messages

    def ping(self, destination: Sequence[str] | None = None) -> Reply:
        """``{worker: {"ok": "pong"}}`` for every worker whose heartbeat is current."""
        return self._each(lambda entry: {"ok": "pong"})

    def active(self, safe: bool | None = None) -> Reply:
        """The tasks each worker runs now (args and kwargs as short previews)."""
        return self._each(
            lambda e: [request_info(item, e.name) for item in e.record.get("active", [])]
        )

    def reserved(self, safe: bool | None = None) -> Reply:
        """Messages each worker holds and has not started, with their task names and
        argument previews read from the broker."""
        workers = self._online()
        held = self._held(workers)
        replies = {
            entry.name: [
                request_info(item, entry.name, held.get(str(item.get("delivery_id"))))
                for item in entry.record.get("reserved", [])
            ]
            for entry in workers
        }
        return replies or None

    def scheduled(self, safe: bool | None = None, limit: int = SCHEDULED_LIMIT) -> Reply:
        """The delayed messages (an eta, a countdown, a retry's delay) of the queues the
        workers consume, soonest due first, at most ``limit`` in all, in Celery's shape:
        ``{"eta": iso, "priority": p, "request": {...}}``.

        Celery's workers hold such tasks in memory; here they wait in the broker, so each
        is listed once, under the first worker (by name) that consumes its queue: the
        counts add up to what the queues hold, and that worker is one that may run it.
        """
        workers = self._online()
        if not workers:
            return None
        owners: dict[str, str] = {}
        for entry in workers:
            for queue in entry.record.get("queues", []):
                owners.setdefault(queue, entry.name)
        replies: dict[str, Any] = {entry.name: [] for entry in workers}
        for copy in self.app.broker.delayed(sorted(owners), limit) if owners else []:
            try:
                message = decode_message(copy.body)
            except DecodeError:
                continue
            owner = owners[copy.queue]
            item = {"id": message.id, "queue": copy.queue, "delivery_id": copy.id}
            replies[owner].append(
                {
                    "eta": datetime.fromtimestamp(copy.eta or 0.0, UTC).isoformat(),
                    "priority": copy.priority,
                    "request": request_info(item, owner, message),
                }
            )
        return replies

    def stats(self) -> Reply:
        return self._each(self._stats)

    def _stats(self, entry: WorkerEntry) -> dict[str, Any]:
        record = entry.record
        max_tasks = record.get("max_tasks_per_child")
        url = self.app.broker_url
        return {
            "hostname": entry.name,
            "pid": record.get("pid"),
            "uptime": int(max(0.0, self.app.clock() - float(record.get("started") or 0.0))),
            "total": record.get("total", {}),
            "processed": record.get("processed", 0),
            "failed": record.get("failed", 0),
            "pool": {
                "implementation": record.get("pool"),
                "max-concurrency": record.get("concurrency"),
                "processes": record.get("children", []),
                "max-tasks-per-child": max_tasks if max_tasks is not None else "N/A",
            },
            "broker": {"transport": url.partition("://")[0], "hostname": redact_url(url)},
            "prefetch_count": record.get("prefetch"),
            "load": record.get("load", []),
            "version": record.get("version"),
            "queues": record.get("queues", []),
        }

    def registered(self, *taskinfoitems: str) -> Reply:
        """The task names each worker knows (Conveyor's own built-in tasks left out)."""
        return self._each(
            lambda e: [n for n in e.record.get("registered", []) if not n.startswith("conveyor.")]
        )

    registered_tasks = registered

    def active_queues(self) -> Reply:
        """The queues each worker consumes now, in Celery's queue-declaration shape."""
        return self._each(lambda e: [_queue_info(q) for q in e.record.get("queues", [])])

    def revoked(self) -> Reply:
        """Revoked task ids. Revocations are cluster-wide (kept in the coordinator for
        ``task_revoke_expires``), so every worker answers the same list."""
        workers = self._online()
        if not workers:
            return None
        ids = sorted(self.app.coordinator.members(REVOKED_GROUP))
        return {entry.name: list(ids) for entry in workers}

    def conf(self, with_defaults: bool = False) -> Reply:
        """Each worker's settings as it loaded them (values that are not JSON, by repr)."""
        return self._each(lambda entry: entry.record.get("conf", {}))

    def query_task(self, *ids: str | Sequence[str]) -> Reply:
        """``{worker: {task_id: [state, request]}}`` for the ids a worker runs ("active")
        or holds ("reserved")."""
        wanted: set[str] = set()
        for item in ids:
            wanted.update([item] if isinstance(item, str) else item)
        workers = self._online()
        held = self._held(workers, wanted)

        def answer(entry: WorkerEntry) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for state in ("active", "reserved"):
                for item in entry.record.get(state, []):
                    if item.get("id") in wanted:
                        message = held.get(str(item.get("delivery_id")))
                        found[item["id"]] = [state, request_info(item, entry.name, message)]
            return found

        replies = {entry.name: answer(entry) for entry in workers}
        return replies or None


def _queue_info(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "exchange": {"name": name, "type": "direct"},
        "routing_key": name,
        "durable": True,
        "exclusive": False,
        "auto_delete": False,
        "no_ack": False,
    }
