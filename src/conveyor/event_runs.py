"""A task's received, started and succeeded events, written as one line of the event stream.

Most tasks end before their worker next writes its events (``worker/events.py``). Written
as three JSON objects, their three events repeat the id, name, host and pid, and building
and encoding them cost a quick task's worker a tenth of its time. So the worker
writes such a task as one JSON array, a *run line*, and the stream expands the line into
the three events as it is read (``EventPacket.events``), counted and numbered as three:
readers see the events they would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

__all__ = ["EVENTS_PER_RUN", "RunLine", "count_events", "expand_run", "is_run"]

EVENTS_PER_RUN = 3


class RunLine(msgspec.Struct, array_like=True, gc=False):
    """The fields of a run line, in order (the events' field names are Celery's). Times are
    whole numbers after ``received``, and ``root_id`` is 0 when it is the task's own id, so
    the line is short: its bytes are what encoding and storing the events cost.

    A struct, not a tuple: a worker builds one per quick task, in C, and ``gc=False`` keeps
    the thousands a write waits for out of the garbage collector's passes."""

    received: float
    """Unix time of task-received."""
    started: int
    """Microseconds after ``received``."""
    done: int
    """Microseconds after ``received``."""
    hostname: str
    pid: int
    uuid: str
    name: str
    args: str | None
    """Shown, as the events show them."""
    kwargs: str | None
    retries: int
    eta: float | None
    expires: float | None
    queue: str | None
    root_id: str | int | None
    """The root's id, or 0 for the task's own id (the usual case)."""
    parent_id: str | None
    result: str
    """Shown."""
    runtime: int
    """Nanoseconds."""


_decoder = msgspec.json.Decoder(RunLine)
_encoder = msgspec.json.Encoder()


def is_run(line: bytes) -> bool:
    return line[:1] == b"["


def count_events(items: Sequence[bytes]) -> int:
    """How many events encoded items stand for (each one line or more, joined by newlines).
    A writer that knows the count passes it instead (``Broker.add_events``)."""
    lines = runs = 0
    for item in items:
        lines += item.count(b"\n") + 1
        runs += item.count(b"\n[") + (item[:1] == b"[")
    return lines + runs * (EVENTS_PER_RUN - 1)


def expand_run(line: bytes) -> list[bytes]:
    """A run line's three events, each encoded as the worker would have encoded it."""
    run = _decoder.decode(line)
    received, uuid, retries = run.received, run.uuid, run.retries
    common: dict[str, Any] = {
        "hostname": run.hostname,
        "pid": run.pid,
        "uuid": uuid,
        "name": run.name,
    }
    task = _present(
        {
            "args": run.args,
            "kwargs": run.kwargs,
            "retries": retries or None,
            "eta": run.eta,
            "expires": run.expires,
            "queue": run.queue,
            "root_id": uuid if run.root_id == 0 else run.root_id,
            "parent_id": run.parent_id,
        }
    )
    return [
        _encoder.encode({"type": "task-received", "timestamp": received, **common, **task}),
        _encoder.encode(
            {
                "type": "task-started",
                "timestamp": received + run.started / 1e6,
                **common,
                **_present({"retries": retries or None}),
            }
        ),
        _encoder.encode(
            {
                "type": "task-succeeded",
                "timestamp": received + run.done / 1e6,
                **common,
                "result": run.result,
                **_present({"runtime": run.runtime / 1e9 or None}),
            }
        ),
    ]


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that are set (an event leaves out those at their defaults)."""
    return {key: value for key, value in fields.items() if value is not None}
