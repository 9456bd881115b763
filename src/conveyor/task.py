"""Task: the unit of work, defined by decorator or by subclassing, sent with delay/apply_async."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    Protocol,
    TypeAlias,
    TypeVar,
    overload,
)

from .aio_client import asend
from .current import current_app, register_shared
from .define import make_task
from .exceptions import ImproperlyConfigured, Retry
from .options import ALL_SEND_OPTIONS, check_options, check_task_options
from .request import Request, enter, push_request, request_for
from .retries import check_attempts_left, new_retry
from .runtime_hooks import runtime
from .serialization import ArgumentSpec

if TYPE_CHECKING:
    from .app import Conveyor
    from .result import AsyncResult, EagerResult

__all__ = [
    "AnyTask",
    "AsyncTask",
    "BoundTaskDecorator",
    "SharedTask",
    "Task",
    "TaskDecorator",
    "shared_task",
    "task",
]

P = ParamSpec("P")
R = TypeVar("R", covariant=True)

_UNSET: Any = object()


def check_time_limits(name: str | None, soft: float | None, hard: float | None) -> None:
    """Refuse a soft time limit above the hard one, as Celery does at send: the soft limit
    is the warning the task gets before the hard one ends it."""
    if soft and hard and soft > hard:
        raise ValueError(
            f"{name}: soft_time_limit must be less than or equal to time_limit (got "
            f"soft_time_limit={soft}, time_limit={hard}); lower the soft one or raise the hard one"
        )


def format_key(template: str, task: AnyTask, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """``"process-{resource_id}"`` filled from a call's arguments, by parameter name."""
    try:
        bound = task.spec.signature.bind_partial(*args, **kwargs)
        bound.apply_defaults()
        return template.format(**bound.arguments)
    except (KeyError, IndexError, AttributeError, ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"{task.name}: cannot fill {template!r} from the call's arguments "
            f"({type(exc).__name__}: {exc}); name parameters of the task in braces"
        ) from None


logger = logging.getLogger("conveyor.task")


def _any_call(*args: Any, **kwargs: Any) -> Any: ...


class Task(Generic[P, R]):
    """Subclass and implement ``run``, or let ``@app.task`` build one from a function.

    For type checkers a task is ``Task[P, R]``: called with the parameters ``P`` of the
    function it wraps, returning ``R``; ``delay`` takes the same parameters and gives an
    ``AsyncResult[R]``. Class-based tasks subclass plain ``Task`` (``Task[..., Any]``).
    """

    name: str | None = None
    typing: bool = True
    max_retries: int | None = _UNSET
    default_retry_delay: float = _UNSET
    ignore_result: bool | None = None
    acks_late: bool = True
    track_started: bool | None = None
    queue: str | None = None
    priority: int | None = None
    serializer: str | None = None
    expires: float | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    rate_limit: str | None = None
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: ClassVar[dict[str, Any]] = {}
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    dead_letter: bool = False
    concurrency_limit: int | None = None
    concurrency_key: str | None = None
    lock: str | None = None
    on_locked: str = "skip"
    lock_timeout: float | None = None
    idempotency_key: str | None = None
    abstract: ClassVar[bool] = False
    is_async: ClassVar[bool] = False
    """``run`` is an ``async def``: workers run it on their event loop (worker/aio.py),
    ``apply()`` with ``asyncio.run``; calling the task directly gives the coroutine."""

    _app: Conveyor | None = None
    _spec: ArgumentSpec | None = None

    def __init__(self) -> None:
        cls = type(self)
        if (
            cls.run is not Task.run
            and not cls.__dict__.get("abstract")
            and "__wrapped__" not in cls.__dict__
        ):
            register_shared(self)
        soft, hard = self.soft_time_limit, self.time_limit
        if soft and hard and soft > hard:  # Celery refuses it at send; say so at definition
            logger.warning(
                "%s: soft_time_limit %s is above time_limit %s: every send of it will be "
                "refused; lower the soft one or raise the hard one",
                self.name or cls.default_name(),
                soft,
                hard,
            )

    # -- identity -----------------------------------------------------------------------

    @property
    def app(self) -> Conveyor:
        """The app this task was defined on; for shared tasks, the current app."""
        if self._app is not None:
            return self._app
        return current_app()

    def bind(self, app: Conveyor) -> None:
        self._app = app

    @classmethod
    def default_name(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None:  # a subclass that does not define run() inherits is_async
            cls.is_async = inspect.iscoroutinefunction(
                inspect.unwrap(getattr(run, "__func__", run))
            )

    @property
    def spec(self) -> ArgumentSpec:
        """The parameters calls are checked against. A signature that cannot be read
        (a C function, a decorator that hides the parameters) turns the check off."""
        if self._spec is None:
            spec = None
            try:
                if self._hides_parameters():
                    logger.debug("%s: its decorators hide its parameters: no call check", self.name)
                else:
                    spec = ArgumentSpec.from_callable(self.run)
            except (ValueError, TypeError) as exc:
                logger.debug("%s: signature unreadable (%s): no call check", self.name, exc)
            self._spec = spec or ArgumentSpec.from_callable(_any_call)
        return self._spec

    def _hides_parameters(self) -> bool:
        """``bind=True`` on a function wrapped by a decorator (functools.wraps): the wrapped
        function's first parameter is only ``self`` if it is called so."""
        run = type(self).__dict__.get("run")
        if not inspect.isfunction(run) or inspect.unwrap(run) is run:
            return False
        params = list(inspect.signature(inspect.unwrap(run)).parameters.values())
        return not params or params[0].name != "self"

    @property
    def request(self) -> Request:
        return request_for(self) or Request(task=self.name, called_directly=True)

    # -- running ------------------------------------------------------------------------

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R
        if enter(self):
            result = self.run(*args, **kwargs)
            return result
        context = Request(task=self.name, args=args, kwargs=kwargs, called_directly=True)
        with push_request(self, context):
            result = self.run(*args, **kwargs)
            return result

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Runs in the worker just before the task."""

    def on_success(
        self, retval: Any, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Runs in the worker after the task returned."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        """Runs in the worker after the task failed for good."""

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        """Runs in the worker when the task is to be retried."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        """Runs in the worker after every run, whatever its outcome."""

    # -- sending ------------------------------------------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send the task. Options: countdown, eta, expires, queue, priority, task_id, headers ..."""
        args = tuple(args or ())
        kwargs = dict(kwargs or {})
        app = self.app
        if app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        if options.get("link") or options.get("link_error"):  # workflow: callbacks ride along
            result: AsyncResult[R] = self.signature(args, kwargs, **options).apply_async()
            return result
        return app.send(self, args, kwargs, options)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """``delay`` for coroutines: ``result = await task.adelay(...)``."""
        return await self.aapply_async(args, kwargs)

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """``apply_async`` for coroutines: the same options and checks, published without
        blocking the event loop (``conveyor.aio_client``). Eager mode runs the task in a
        worker thread, so neither a sync task nor an ``async def`` one stalls the loop."""
        args = tuple(args or ())
        kwargs = dict(kwargs or {})
        app = self.app
        if app.conf.task_always_eager:
            return await asyncio.to_thread(self.apply, args, kwargs, **options)
        if options.get("link") or options.get("link_error"):  # a workflow: sent in a thread
            return await asyncio.to_thread(self.apply_async, args, kwargs, **options)
        result: AsyncResult[R] = await asend(app, self, args, kwargs, options)
        return result

    if TYPE_CHECKING:  # methods of DjangoTask, which the Django integration installs beneath
        # a project's tasks (conveyor.contrib.django.task); declared for type checkers,
        # which see @app.task and @shared_task give a Task[P, R]

        def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]: ...

        def apply_async_on_commit(
            self,
            args: Sequence[Any] | None = None,
            kwargs: Mapping[str, Any] | None = None,
            using: str | None = None,
            **options: Any,
        ) -> AsyncResult[R]: ...

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Run the task here and now, through the same hooks a worker uses."""
        return runtime.run_eagerly(self, tuple(args or ()), dict(kwargs or {}), options)

    def signature(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        from .canvas import Signature

        return Signature(self.name or "", args, kwargs, options, app=self._app)

    def s(self, *args: Any, **kwargs: Any) -> Any:
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Any:
        return self.signature(args, kwargs, immutable=True)

    # -- workflows (conveyor.canvas / conveyor.workflow) ---------------------------------

    def map(self, it: Any) -> Any:
        """One task that calls this task with each item in turn."""
        from .canvas import xmap

        return xmap(self.s(), it, app=self._app)

    def starmap(self, it: Any) -> Any:
        """One task that calls this task with each item's elements as arguments."""
        from .canvas import xstarmap

        return xstarmap(self.s(), it, app=self._app)

    def chunks(self, it: Any, n: int) -> Any:
        """The items split in parts of ``n``, each part one starmap task (a group)."""
        from .canvas import chunks

        return chunks(self.s(), it, n, app=self._app)

    def replace(self, sig: Any) -> Any:
        """Hand the rest of this task's work to ``sig`` and end this task (Celery's replace).

        The chain continuation, chord membership and callbacks move to ``sig``; this task's
        id gets ``sig``'s final result. Raises Ignore to end the task.
        """
        return runtime.replace(self, sig)

    def add_to_chord(self, sig: Any, lazy: bool = False) -> Any:
        """Add ``sig`` to the chord this task is a member of (Celery's ``add_to_chord``):
        the callback waits for it and gets its result after the header's. Returns its
        result, or with ``lazy`` the signature, to send yourself."""
        return runtime.add_to_chord(self, sig, lazy)

    def AsyncResult(self, task_id: str) -> AsyncResult[R]:
        from .result import AsyncResult

        return AsyncResult(task_id, app=self.app, task=self)

    # -- inside a running task ----------------------------------------------------------

    def resolved_max_retries(self) -> int | None:
        if self.max_retries is _UNSET:
            return self.app.conf.task_default_max_retries
        return self.max_retries

    def resolved_retry_delay(self) -> float:
        if self.default_retry_delay is _UNSET:
            return float(self.app.conf.task_default_retry_delay)
        return float(self.default_retry_delay)

    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = _UNSET,
        **options: Any,
    ) -> Retry:
        """Ask the worker to run this task again; always raises (``raise self.retry()`` reads well).

        Past ``max_retries`` it raises ``exc`` (or MaxRetriesExceededError) instead, and the
        task ends in FAILURE.
        """
        limit = self.resolved_max_retries() if max_retries is _UNSET else max_retries
        check_attempts_left(self, self.request, limit, exc)
        check_options(options, ALL_SEND_OPTIONS, "retry option")
        error = new_retry(self, args, kwargs, exc, eta, countdown, options)
        if throw:
            raise error
        return error

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Any = None,
        **kwargs: Any,
    ) -> None:
        """Record a state (e.g. PROGRESS with current/total), readable from any process."""
        from .records import LEVEL_PROGRESS, TaskRecord, at_level

        request = self.request
        task_id = task_id or request.id
        if task_id is None:
            return
        from .serialization import tag_values

        record = TaskRecord(
            status=state or "PROGRESS",
            result=tag_values(meta),  # custom-state meta keeps Celery's JSON types
            task=self.name,
            retries=request.retries,
            worker=request.hostname,
        )
        if task_id == request.id:  # its own state: it keeps its lineage, as its outcome will
            record.parent_id = request.parent_id
            record.root_id = None if request.root_id == task_id else request.root_id
        fence = None
        if task_id == request.id and request.fence is not None:
            fence = at_level(request.fence, LEVEL_PROGRESS)  # never below a late STARTED
        self.app.results.write(task_id, record, fence)

    def is_aborted(self) -> bool:
        """True once the running task was revoked or aborted: long loops should stop cleanly."""
        request = self.request
        if request.id is None:
            return False
        control = self.app.control
        if control.is_revoked(request.id):
            return True
        return bool(request.stamps) and control.stamp_revocation(request.headers) is not None

    def send_event(self, *args: Any, **kwargs: Any) -> None:
        """Accepted for Celery compatibility; Conveyor has no event stream yet."""

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"


AnyTask: TypeAlias = Task[..., Any]
"""A task of any signature: what code that handles tasks in general annotates with."""


def now() -> float:
    return time.time()


class SharedTask(Task[P, R]):
    """The base of ``@shared_task`` tasks. An integration may put its own Task class
    beneath it, as the Django one does (``conveyor.contrib.django.task``)."""

    abstract = True


class AsyncTask(Task[P, R]):
    """How a type checker sees a task made from an ``async def`` returning ``R``: ``delay()``
    gives an ``AsyncResult[R]`` (the coroutine's value, not a coroutine) and a direct call
    gives the coroutine to await. For annotations only: at run time ``@app.task`` makes the
    same task class as for a ``def`` (with ``is_async`` true), not an ``AsyncTask``."""

    abstract = True

    if TYPE_CHECKING:  # a direct call gives what ``run`` gives: the coroutine

        def __call__(  # type: ignore[override]
            self, *args: P.args, **kwargs: P.kwargs
        ) -> Coroutine[Any, Any, R]: ...


_P = ParamSpec("_P")
_R = TypeVar("_R")


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` and ``@shared_task(...)`` return: a decorator that gives an
    ``AsyncTask`` for an ``async def`` and a ``Task`` for a ``def``."""

    @overload
    def __call__(self, fun: Callable[_P, Coroutine[Any, Any, _R]], /) -> AsyncTask[_P, _R]: ...
    @overload
    def __call__(self, fun: Callable[_P, _R], /) -> Task[_P, _R]: ...


class BoundTaskDecorator(Protocol):
    """``TaskDecorator`` for ``bind=True``: the function's first parameter is the task."""

    @overload
    def __call__(
        self, fun: Callable[Concatenate[Any, _P], Coroutine[Any, Any, _R]], /
    ) -> AsyncTask[_P, _R]: ...
    @overload
    def __call__(self, fun: Callable[Concatenate[Any, _P], _R], /) -> Task[_P, _R]: ...


@overload
def shared_task(fun: Callable[_P, Coroutine[Any, Any, _R]], /) -> AsyncTask[_P, _R]: ...
@overload
def shared_task(fun: Callable[_P, _R], /) -> Task[_P, _R]: ...
@overload
def shared_task(
    fun: None = None, /, *, bind: Literal[True], **options: Any
) -> BoundTaskDecorator: ...
@overload
def shared_task(
    fun: None = None, /, *, bind: Literal[False] = False, **options: Any
) -> TaskDecorator: ...
@overload
def shared_task(
    fun: None = None, /, *, bind: bool, **options: Any
) -> Callable[[Callable[..., Any]], AnyTask]: ...


def shared_task(fun: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Define a task that belongs to whichever app is current when it is used."""
    check_task_options(options)

    def decorate(f: Callable[..., Any]) -> AnyTask:
        return make_task(f, None, options, SharedTask)

    return decorate(fun) if fun is not None else decorate


task = shared_task
"""Celery's old ``from celery.task import task`` decorator: ``@task`` or ``@task(...)``,
the same as ``shared_task``; kept so code written that way ports by its imports alone."""
