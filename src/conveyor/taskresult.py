"""Result handles for one task, readable from any process that knows the id.

``AsyncResult`` is one task; ``.parent`` walks back along a chain (``EagerResult``, the
outcome of ``Task.apply()``, known at once, is in ``conveyor.eagerresult``). The helpers
that turn a stored record into a value or an exception are shared with
``conveyor.groupresult``, which holds the results of several tasks. ``conveyor.result``
offers them all, as ``celery.result`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from . import aio_client, states
from .current import current_app
from .exceptions import Retry, TaskRevokedError, TimeoutError
from .joins import check_get_arguments, check_join
from .records import TaskRecord
from .serialization import convert

if TYPE_CHECKING:
    from .app import Conveyor
    from .task import AnyTask

__all__ = [
    "GET_ORDER",
    "AnyResult",
    "AsyncResult",
    "lend_group_rebuilder",
    "record_error",
    "record_value",
]

R = TypeVar("R", covariant=True)

GET_ORDER = (
    "timeout",
    "propagate",
    "interval",
    "no_ack",
    "follow_parents",
    "callback",
    "on_message",
    "on_interval",
    "disable_sync_subtasks",
)
"""``get()``'s parameters in Celery's positional order."""


class AsyncResult(Generic[R]):
    """State and result of a task by id. Every property reads the result store afresh.

    For type checkers, ``AsyncResult[R]``: ``get()`` returns the task's return type ``R``.
    """

    ignored: bool = False
    """Set on the handle a send returns when the task keeps no result: ``get()`` then
    returns None at once instead of waiting for a result that is never stored (Celery's)."""
    reads_parent: bool = True
    """Whether ``parent``, when not given, is read from the stored record (a task's is)."""

    def __init__(
        self,
        id: str,
        app: Conveyor | None = None,
        task: AnyTask | None = None,
        parent: AnyResult | None = None,
    ):
        self.id = id
        self._app = app
        self._task = task
        self.known_parent: AnyResult | None = parent
        """The parent this handle was made with (whoever sent the workflow set it); None
        when not given. Reading it costs nothing, unlike ``parent``."""

    @property
    def parent(self) -> AnyResult | None:
        """The result before this one: the step before it in a chain, or the task that sent
        it. Given when the handle was made; else read from the task's stored record (its
        message's ``parent_id``), so a handle rebuilt from its id in another process finds
        it too once the task has an outcome."""
        if self.known_parent is None and self.reads_parent:
            record = self._record()
            if record is not None and record.parent_id is not None:
                self.known_parent = AsyncResult(record.parent_id, app=self._app)
        return self.known_parent

    @parent.setter
    def parent(self, value: AnyResult | None) -> None:
        self.known_parent = value

    @property
    def root_id(self) -> str:
        """The id of the first task of this one's workflow (itself when sent alone), from
        its stored record (Celery keeps it with ``result_extended``)."""
        record = self._record()
        return (record.root_id if record is not None else None) or self.id

    @property
    def children(self) -> list[AnyResult] | None:
        """The results of the tasks (and groups) this task sent while it ran, in the order
        it sent them, as Celery's: None until the task's outcome is stored."""
        record = self._record()
        if record is None or record.status not in states.READY_STATES:
            return None
        return [_rebuild(child, self._app) for child in record.children]

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def app(self) -> Conveyor:
        if self._app is None:
            self._app = current_app()
        return self._app

    def _record(self) -> TaskRecord | None:
        return self.app.results.read(self.id)

    @property
    def state(self) -> str:
        """The stored state; PENDING while the broker holds the message; else UNKNOWN."""
        return self._state_of(self._record())

    def _state_of(self, record: TaskRecord | None) -> str:
        """The state of a record read just now, PENDING or UNKNOWN where there is none.

        A worker stores the outcome before it acks, so a message gone from the broker
        after the first read has its outcome stored already: a second read finds it, and
        a reader never sees UNKNOWN between PENDING and the outcome.
        """
        if record is not None:
            return record.status
        if self.app.broker.contains([self.id]):
            return states.PENDING
        record = self._record()
        return record.status if record is not None else states.UNKNOWN

    status = state

    @property
    def name(self) -> str | None:
        record = self._record()
        return record.task if record else (self._task.name if self._task else None)

    @property
    def result(self) -> Any:
        """The return value; the exception for FAILURE; the meta of a custom state."""
        record = self._record()
        return record_value(record, self._typed_by(record), self.id)

    info = result

    @property
    def traceback(self) -> str | None:
        record = self._record()
        return record.traceback if record else None

    @property
    def retries(self) -> int:
        record = self._record()
        return record.retries if record else 0

    @property
    def date_done(self) -> datetime | None:
        record = self._record()
        if record is None or record.date_done is None:
            return None
        return datetime.fromtimestamp(record.date_done, tz=UTC)

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[[str, Any], None] | None = None,
        on_message: None = None,
        on_interval: None = None,
        disable_sync_subtasks: bool = True,
    ) -> R:
        """Wait for the task to finish and return its value (or raise its exception).

        Celery's parameters in Celery's order, each checked (see ``conveyor.joins``).
        ``interval`` and ``no_ack`` are accepted for Celery compatibility: the wait wakes
        as soon as the result is stored. ``callback(task_id, value)`` is called with the
        value before it is returned. As in Celery, a failure raises the error of the first
        failed result before it in its workflow (``follow_parents``): a chord whose member
        failed raises that member's exception, not the ChordError stored for its callback.
        """
        check_get_arguments(
            GET_ORDER,
            timeout=timeout,
            propagate=propagate,
            interval=interval,
            no_ack=no_ack,
            follow_parents=follow_parents,
            callback=callback,
            on_message=on_message,
            on_interval=on_interval,
            disable_sync_subtasks=disable_sync_subtasks,
        )
        if self.ignored:
            return None  # type: ignore[return-value]
        aio_client.refuse_blocking("result.get()", "await result.aget()")
        check_join(disable_sync_subtasks)
        record = self.app.results.wait(self.id, timeout)
        if record is None or record.status not in states.READY_STATES:
            state = self._state_of(record)
            raise TimeoutError(f"task {self.id} not ready after {timeout}s (state {state})")
        if propagate:
            error = record_error(record, self.id)
            if error is not None:
                if follow_parents:
                    self._raise_parent_error()
                raise error
        value: R = record_value(record, self._typed_by(record), self.id)
        if callback is not None:
            callback(self.id, value)
        return value

    # -- from a coroutine (conveyor.aio_client): the same answers, never blocking the loop

    async def aget(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[[str, Any], None] | None = None,
        on_message: None = None,
        on_interval: None = None,
        disable_sync_subtasks: bool = True,
    ) -> R:
        """``get()`` for coroutines (also ``await result``): waits without blocking the
        event loop; the same parameters, value, exceptions and TimeoutError.

        Unlike ``get()`` it may be awaited inside an ``async def`` task: the wait holds
        one of the worker's async slots, not its process.
        """
        check_get_arguments(
            GET_ORDER,
            timeout=timeout,
            propagate=propagate,
            interval=interval,
            no_ack=no_ack,
            follow_parents=follow_parents,
            callback=callback,
            on_message=on_message,
            on_interval=on_interval,
            disable_sync_subtasks=disable_sync_subtasks,
        )
        if self.ignored:
            return None  # type: ignore[return-value]
        record = await aio_client.wait(self.app, self.id, timeout)
        if record is None or record.status not in states.READY_STATES:
            state = await aio_client.state_of(self.app, self.id, record)
            raise TimeoutError(f"task {self.id} not ready after {timeout}s (state {state})")
        if propagate:
            error = record_error(record, self.id)
            if error is not None:
                if follow_parents:
                    await self._araise_parent_error()
                raise error
        value: R = record_value(record, self._typed_by(record), self.id)
        if callback is not None:
            callback(self.id, value)
        return value

    def __await__(self) -> Generator[Any, None, R]:
        """``await result`` is ``await result.aget()``."""
        return self.aget().__await__()

    async def astate(self) -> str:
        """``state`` for coroutines: read afresh without blocking the event loop."""
        return await aio_client.state_of(
            self.app, self.id, await aio_client.read(self.app, self.id)
        )

    async def aresult(self) -> Any:
        """``result`` (also ``info``) for coroutines: the value, the exception for a
        failure, the meta of a custom state such as PROGRESS."""
        record = await aio_client.read(self.app, self.id)
        return record_value(record, self._typed_by(record), self.id)

    ainfo = aresult

    async def aready(self) -> bool:
        return await self.astate() in states.READY_STATES

    async def asuccessful(self) -> bool:
        return await self.astate() == states.SUCCESS

    async def afailed(self) -> bool:
        return await self.astate() == states.FAILURE

    async def amaybe_throw(self, propagate: bool = True) -> None:
        """``maybe_throw()`` for coroutines."""
        record = await aio_client.read(self.app, self.id)
        error = record_error(record) if record is not None and propagate else None
        if error is not None:
            raise error

    async def _araise_parent_error(self) -> None:
        for parent in self._ancestors():
            await parent.amaybe_throw()

    def _get_task_meta(self) -> dict[str, Any]:
        """Celery's meta dict, read afresh: status, result (the exception for a failure),
        traceback, children, date_done (ISO 8601, None until ready) and task_id."""
        record = self._record()
        done = None if record is None or record.date_done is None else record.date_done
        return {
            "status": self._state_of(record),
            "result": record_value(record, self._typed_by(record), self.id),
            "traceback": record.traceback if record is not None else None,
            "children": self.children or [],
            "date_done": None if done is None else datetime.fromtimestamp(done, UTC).isoformat(),
            "task_id": self.id,
        }

    def _typed_by(self, record: TaskRecord | None) -> AnyTask | None:
        """The task whose return annotation types the value: the one this result was made
        with, else the task of that name registered here (a result rebuilt from its id,
        such as a restored group's member, comes back typed too)."""
        if self._task is not None or record is None or not record.task:
            return self._task
        return self.app.tasks.get(record.task)

    wait = get

    def maybe_throw(self, propagate: bool = True) -> None:
        """Raise the task's exception if it has failed (was revoked, rejected)."""
        record = self._record()
        error = record_error(record) if record is not None and propagate else None
        if error is not None:
            raise error

    def _raise_parent_error(self) -> None:
        """Raise the error of the earliest failed result this one follows in a workflow."""
        for parent in self._ancestors():
            parent.maybe_throw()

    def _ancestors(self) -> list[AsyncResult[Any]]:
        """The results this one follows in its workflow, the earliest first."""
        parents = []
        node = self.known_parent
        while node is not None:
            parents.append(node)
            node = node.known_parent
        return parents[::-1]

    def forget(self) -> None:
        """Delete the stored result."""
        self.app.results.forget([self.id])

    def revoke(self, terminate: bool = False, signal: str | int = "SIGTERM") -> None:
        """Stop the task from starting, on every worker; ``terminate`` kills it if running."""
        self.app.control.revoke(self.id, terminate=terminate, signal=signal)

    async def arevoke(self, terminate: bool = False, signal: str | int = "SIGTERM") -> None:
        """``revoke()`` for coroutines: it writes to the coordinator (and, to terminate,
        to the workers' mailboxes) with the sync client, in a worker thread."""
        await asyncio.to_thread(self.revoke, terminate, signal)

    def abort(self) -> None:
        """Ask a running task to stop: its ``self.is_aborted()`` becomes True."""
        self.app.control.revoke(self.id, reason="aborted")

    def revoke_by_stamped_headers(
        self,
        headers: Mapping[str, Any] | Sequence[str],
        terminate: bool = False,
        signal: str | int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Revoke every task carrying one of these stamps, as Celery's result offers it:
        ``app.control.revoke_by_stamped_headers`` (this result's own task needs not be
        stamped)."""
        return self.app.control.revoke_by_stamped_headers(
            headers, terminate=terminate, signal=signal or "SIGTERM", **kwargs
        )

    def as_tuple(self) -> tuple[Any, ...]:
        """``((id, parent), None)``, Celery's shape: plain data that ``result_from_tuple``
        rebuilds (also from its JSON form, where the tuples are lists)."""
        parent = self.known_parent
        return ((self.id, parent.as_tuple() if parent is not None else None), None)

    def as_list(self) -> list[str]:
        """This result's id, then its parents', nearest first (Celery's)."""
        ids = [self.id]
        if self.known_parent is not None:
            ids.extend(self.known_parent.as_list())
        return ids

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"


AnyResult: TypeAlias = AsyncResult[Any]
"""A result of any task: what code that handles results in general annotates with."""


_group_rebuilder: list[Callable[[Any, Conveyor | None], AnyResult]] = []
"""``conveyor.groupresult.result_from_tuple``, lent when that module loads (it imports this
one, so this one may not import it): how a stored child that is a group is rebuilt."""


def lend_group_rebuilder(rebuild: Callable[[Any, Conveyor | None], AnyResult]) -> None:
    _group_rebuilder[:] = [rebuild]


def _rebuild(data: Any, app: Conveyor | None) -> AnyResult:
    """A stored child (``as_tuple()`` data, or a bare id) as a result handle."""
    if isinstance(data, str):
        return AsyncResult(data, app=app)
    head, members = data
    if members is not None and _group_rebuilder:
        return _group_rebuilder[0](data, app)
    task_id, parent = head if isinstance(head, list | tuple) else (head, None)
    return AsyncResult(task_id, app=app, parent=_rebuild(parent, app) if parent else None)


def record_error(record: TaskRecord, task_id: str = "") -> BaseException | None:
    """The exception a finished record stands for (failed, revoked, rejected), else None."""
    if record.status == states.FAILURE and record.exception is not None:
        return record.exception.rebuild(record.traceback)
    what = f"task {record.task or ''}[{task_id}]" if task_id else f"task {record.task}"
    if record.status == states.REVOKED:
        return TaskRevokedError(f"{what} was revoked: {record.result or 'revoked'}")
    if record.status == states.REJECTED:
        return TaskRevokedError(f"{what} was rejected: {record.result}")
    return None


def record_value(record: TaskRecord | None, task: AnyTask | None, task_id: str = "") -> Any:
    """What ``get()`` gives for a record: its result (typed by ``task``) or its exception."""
    if record is None:
        return None
    error = record_error(record, task_id)
    if error is not None:
        return error
    if record.status == states.SUCCESS and task is not None and task.typing:
        return convert(record.result, task.spec.returns)
    if record.status == states.RETRY and record.exception is not None:
        when = None if record.retry_at is None else datetime.fromtimestamp(record.retry_at, UTC)
        cause = record.exception.rebuild(record.traceback)
        return Retry(str(record.result) if record.result else None, cause, when)
    return record.result
