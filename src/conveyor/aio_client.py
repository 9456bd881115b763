"""The async client: sending tasks and reading results from coroutines (FastAPI, Starlette,
aiohttp, Django's async views) without ever blocking the event loop.

``Task.adelay`` / ``aapply_async``, ``app.asend_task`` and the result handles' ``aget``,
``astate``, ``aready``... call the functions here. They build a message exactly as a sync
send does (``app.build_message``, ``app.envelope``: the same options, routing, signals and
checks) and hand it to the broker's asyncio face (``conveyor.async_stores``): redis-py's
asyncio client on Redis, a worker thread elsewhere. A send that needs more than one
store (an idempotency key, callbacks, a workflow) runs the sync send in a worker thread.

A blocking wait (``get()``, ``join()``) called on a thread that runs an event loop raises
``BlockingCallError`` naming the coroutine to await instead (``refuse_blocking``); quick
calls such as ``delay()`` and ``.state`` are not refused (see docs/async-client.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import signals, states
from .async_stores import async_backend, async_broker
from .exceptions import BlockingCallError
from .publish_signals import after_publish
from .records import ResultStore, TaskRecord
from .request import note_child

if TYPE_CHECKING:
    from .app import Conveyor
    from .task import AnyTask
    from .taskresult import AnyResult

__all__ = [
    "asend",
    "in_event_loop",
    "read",
    "read_many",
    "refuse_blocking",
    "state_of",
    "wait",
]


def in_event_loop() -> bool:
    """Whether this thread is running an event loop now (inside a coroutine or callback)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def refuse_blocking(call: str, instead: str) -> None:
    """Raise ``BlockingCallError`` when ``call`` would block this thread's running loop."""
    if in_event_loop():
        raise BlockingCallError(
            f"{call} blocks, and this thread runs an event loop: every other coroutine on "
            f"it would stop until the result arrives; use `{instead}` instead"
        )


# -- sending ------------------------------------------------------------------------------


async def asend(
    app: Conveyor,
    task: AnyTask | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: Mapping[str, Any],
    name: str | None = None,
) -> AnyResult:
    """``app.send`` for coroutines: the message built here, published without blocking."""
    if getattr(app._batch, "stack", None):  # inside `with app.batch():` the send only collects
        return app.send(task, args, kwargs, options, name)
    if _needs_stores(task, options):
        return await asyncio.to_thread(app.send, task, args, kwargs, options, name)
    reply: bool | str = app.backend.replies and async_backend(app.backend).reply_address()
    message = app.build_message(task, args, kwargs, options, name, reply)
    envelope = app.envelope(message, task)
    result = app.AsyncResult(message.id, task)
    result.ignored = message.ignore_result  # get() returns None at once, as in Celery
    if message.parent_id is not None:  # sent by a running task: one of its children
        note_child(result, message.parent_id)
    gate = app.defer_publish
    if gate is not None and gate(lambda: app.publish_envelopes([envelope])):
        return result  # published when the transaction commits, as a sync send would be
    if message.reply:  # before the send: the loop's reader may take the reply first
        app.results.expect(message.id, time.monotonic(), message.reply_to)
    await async_broker(app.broker).publish([envelope])
    if signals.after_task_publish.receivers:
        after_publish([envelope])
    return result


def _needs_stores(task: AnyTask | None, options: Mapping[str, Any]) -> bool:
    """A send that also claims an idempotency key or carries callbacks (a workflow)."""
    if options.get("link") or options.get("link_error") or options.get("idempotency_key"):
        return True
    return task is not None and bool(task.idempotency_key)


# -- reading ------------------------------------------------------------------------------


async def read(app: Conveyor, task_id: str) -> TaskRecord | None:
    """The stored record of a task, or None (``ResultStore.read``)."""
    store = app.results
    return ResultStore.decode(await async_backend(store.backend).get(store.key(task_id)))


async def read_many(app: Conveyor, task_ids: Sequence[str]) -> list[TaskRecord | None]:
    store = app.results
    values = await async_backend(store.backend).mget([store.key(t) for t in task_ids])
    return [ResultStore.decode(v) for v in values]


async def wait(app: Conveyor, task_id: str, timeout: float | None) -> TaskRecord | None:
    """Wait until the task's record is ready or ``timeout`` passes; the last record read.
    A success stands once stored; any other outcome a reply gives may be checked against
    the store (``AsyncRedisBackend.wait``)."""
    store = app.results
    decoded = _Decoded()
    face = async_backend(store.backend)
    value = await face.wait(store.key(task_id), decoded.ready, timeout, decoded.succeeded)
    return decoded.record(value)


class _Decoded:
    """A wait's records, each value decoded once however often it is asked about."""

    __slots__ = ("last", "value")

    def __init__(self) -> None:
        self.value: bytes | None = None
        self.last: TaskRecord | None = None

    def record(self, value: bytes | None) -> TaskRecord | None:
        if value is not self.value:
            self.value, self.last = value, ResultStore.decode(value)
        return self.last

    def ready(self, value: bytes | None) -> bool:
        record = self.record(value)
        return record is not None and record.status in states.READY_STATES

    def succeeded(self, value: bytes) -> bool:
        record = self.record(value)
        return record is not None and record.status == states.SUCCESS


async def state_of(app: Conveyor, task_id: str, record: TaskRecord | None) -> str:
    """The state of a record just read: PENDING while the broker holds the message, else
    UNKNOWN (read twice, as ``AsyncResult._state_of`` explains)."""
    if record is not None:
        return record.status
    if await async_broker(app.broker).contains([task_id]):
        return states.PENDING
    record = await read(app, task_id)
    return record.status if record is not None else states.UNKNOWN


async def contains(app: Conveyor, task_ids: Sequence[str]) -> set[str]:
    return await async_broker(app.broker).contains(task_ids)
