"""``self.request``: what a running task knows about the message that started it."""

from __future__ import annotations

import traceback as tb
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .message import Message
    from .task import AnyTask

__all__ = ["Context", "ExceptionInfo", "Request", "current_request", "note_child"]


class Request:
    """The request of one task run. Unknown attributes read as None, as in Celery."""

    id: str | None = None
    task: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any]
    retries: int = 0
    hostname: str | None = None
    delivery_info: dict[str, Any]
    called_directly: bool = True
    is_eager: bool = False
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    group_index: int | None = None
    headers: dict[str, Any]
    eta: float | None = None
    expires: float | None = None
    delivery_count: int = 0
    time_limit: float | None = None
    soft_time_limit: float | None = None
    ignore_result: bool = False
    fence: int | None = None
    message: Message | None = None
    _children: list[Any] | None = None
    """The results of what the task sent while it ran (``note_child``); made on the first
    send, so a task that sends nothing pays nothing for it."""

    def __init__(self, **fields: Any) -> None:
        self.kwargs = {}
        self.delivery_info = {}
        self.headers = {}
        self._entered = False
        self.__dict__.update(fields)

    @property
    def children(self) -> list[Any]:
        """The results of the tasks and workflows this task sent while it ran, in order
        (Celery's ``request.children``); stored with its outcome, read back as
        ``AsyncResult.children``."""
        if self._children is None:
            self._children = []
        return self._children

    @property
    def sent(self) -> list[Any] | None:
        """``children`` as they stand, None while the task has sent nothing."""
        return self._children

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    @property
    def correlation_id(self) -> str | None:
        return self.id

    @property
    def argsrepr(self) -> str:
        """The positional arguments as logs show them (the sender's ``argsrepr``)."""
        return self.message.shown_args() if self.message is not None else repr(self.args)

    @property
    def kwargsrepr(self) -> str:
        """The keyword arguments as logs show them (the sender's ``kwargsrepr``)."""
        return self.message.shown_kwargs() if self.message is not None else repr(self.kwargs)

    @property
    def stamped_headers(self) -> list[str]:
        """The names of the stamps the message carries (``Signature.stamp``)."""
        return list(self.headers.get("stamped_headers") or ())

    @property
    def stamps(self) -> dict[str, Any]:
        """The message's stamps by name."""
        return {name: self.headers[name] for name in self.stamped_headers if name in self.headers}

    def __repr__(self) -> str:
        return f"<Context {self.task}[{self.id}] retries={self.retries}>"


Context = Request
"""Celery's name for ``self.request``'s class (``celery.app.task.Context``), kept for imports."""


class ExceptionInfo:
    """The ``einfo`` given to on_failure / on_retry / after_return."""

    def __init__(self, exc: BaseException, traceback: TracebackType | None = None):
        self.exception = exc
        self.type = type(exc)
        self.tb = traceback if traceback is not None else exc.__traceback__
        self.traceback = "".join(tb.format_exception(self.type, exc, self.tb))

    def __str__(self) -> str:
        return self.traceback


_stack: ContextVar[tuple[tuple[AnyTask, Request], ...]] = ContextVar(
    "conveyor_requests", default=()
)
"""The tasks running here, innermost last. A context variable, not a thread-local: each
thread starts with its own, and each coroutine of an ``async def`` task sees the requests
pushed in its own context, so interleaved coroutines on one event loop never see each
other's. A tuple, never changed in place, because a new asyncio task copies the context."""


class _Pushed:
    """``with push_request(...)``: a class, not a generator's context manager, which costs
    a task ~1 us more in the worker."""

    __slots__ = ("pushed", "token")

    def __init__(self, task: AnyTask, context: Request) -> None:
        self.pushed = (task, context)

    def __enter__(self) -> Request:
        self.token = _stack.set((*_stack.get(), self.pushed))
        return self.pushed[1]

    def __exit__(self, *exc: object) -> None:
        _stack.reset(self.token)


def push_request(task: AnyTask, context: Request) -> _Pushed:
    """``context`` is the request of ``task`` inside the ``with`` block."""
    return _Pushed(task, context)


def request_for(task: AnyTask) -> Request | None:
    for owner, context in reversed(_stack.get()):
        if owner is task:
            return context
    return None


def current_request() -> Request | None:
    """The request of the innermost task run by a worker (or eagerly) in this thread, or in
    this coroutine for an ``async def`` task."""
    for _, context in reversed(_stack.get()):
        if not context.called_directly:
            return context
    return None


def note_child(result: Any, parent_id: str | None = None) -> None:
    """A send made now: its result joins the running task's children (Celery's trail).

    ``parent_id``: the parent the sent message names; when given, the result is noted
    only if that is the running task (a send that named another parent is not its child).
    """
    request = current_request()
    if request is None or (parent_id is not None and request.id != parent_id):
        return
    if request.ignore_result:
        return  # nothing would store them: the task keeps no result
    request.children.append(result)


def enter(task: AnyTask) -> bool:
    """Claim the context the worker pushed for this call; False when the call is direct."""
    stack = _stack.get()
    if stack:
        owner, context = stack[-1]
        if owner is task and not context._entered and not context.called_directly:
            context._entered = True
            return True
    return False
