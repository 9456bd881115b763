"""Conveyor: the application object. Settings, the task registry, and the wiring to storage."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from . import signals
from .aio_client import asend
from .backends import backend_from_url
from .backends.base import ResultBackend
from .brokers import broker_from_url, redact_url
from .brokers.base import Broker, Envelope
from .builtin_tasks import BUILTIN_TASKS
from .config import Settings
from .control import Control
from .coordination import Coordinator, coordinator_from_url
from .current import (
    current_app,
    register,
    set_current,
    set_default_app,
    shared_tasks,
)
from .define import make_task
from .discovery import Discovery, Packages
from .events import Events
from .exceptions import ImproperlyConfigured, NotRegistered
from .freeze import freeze_result
from .keys import idempotency_key
from .locks import Lock
from .message import Message, broker_key
from .messages import build_message
from .options import check_task_options
from .plan import send as send_workflow
from .publish_signals import after_publish, before_publish
from .records import ResultStore
from .request import Request, note_child
from .result import AnyResult, AsyncResult, GroupResult, ResultSet
from .routing import ROUTING_SETTINGS, Router
from .serialization import encode_message
from .signatures import Signature
from .task import (
    AnyTask,
    AsyncTask,
    BoundTaskDecorator,
    SharedTask,
    Task,
    TaskDecorator,
    format_key,
    shared_task,
)

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

__all__ = ["Conveyor", "current_app", "shared_task"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T", bound=AnyTask)
U = TypeVar("U")

DEFAULT_URL = "sqlite:///conveyor.db"


class TaskRegistry(Mapping[str, AnyTask]):
    """The app's own tasks, then the shared ones. ``finalize`` runs pending discovery
    (``autodiscover_tasks``) before a name is found missing or the tasks are listed."""

    def __init__(self, finalize: Callable[[], object] | None = None) -> None:
        self.own: dict[str, AnyTask] = {}
        self.finalize = finalize

    def __getitem__(self, name: str) -> AnyTask:
        task = self.own.get(name) or shared_tasks.get(name)
        if task is None and self.finalize is not None and self.finalize():
            task = self.own.get(name) or shared_tasks.get(name)
        if task is None:
            raise NotRegistered(
                f"no task named {name!r} is registered: import the module that defines it in "
                "the worker (-A module, or the include setting) or check the name"
            )
        return task

    def __iter__(self) -> Iterator[str]:
        if self.finalize is not None:
            self.finalize()
        return iter({**shared_tasks, **self.own})

    def __len__(self) -> int:
        return len(list(iter(self)))


class Conveyor:
    """``Conveyor("shop")`` keeps broker and results in ./conveyor.db; pass URLs for others."""

    def __init__(
        self,
        main: str | None = None,
        *,
        broker: str | Broker | None = None,
        backend: str | ResultBackend | None = None,
        include: Sequence[str] | None = None,
        set_as_current: bool = True,
        clock: Callable[[], float] = time.time,
        coordinator: Coordinator | None = None,
        **settings: Any,
    ) -> None:
        self.main = main
        self.clock = clock
        self.conf = Settings()
        self.conf.load_environment()
        self.conf.update(settings)
        if include:
            self.conf.include = list(include)
        self._broker: Broker | None = None
        self._backend: ResultBackend | None = None
        if isinstance(broker, Broker):
            self._broker = broker
        elif broker is not None:
            self.conf.broker_url = broker
        if isinstance(backend, ResultBackend):
            self._backend = backend
        elif backend is not None:
            self.conf.result_backend = backend
        self._discovery = Discovery()
        self.tasks = TaskRegistry(self._discovery.run)
        self._router: Router | None = None
        self._results: ResultStore | None = None
        self._replies: bool | None = None
        """Whether the backend hands outcomes back to their senders (``ResultBackend.replies``)."""
        self._coordinator: Coordinator | None = coordinator
        given = (("broker", broker), ("backend", backend), ("coordinator", coordinator))
        self._given = {part for part, value in given if not isinstance(value, str | None)}
        self.conf.on_change(self._settings_changed)
        self._lock = threading.RLock()
        self._batch = threading.local()
        self.Task: type[AnyTask] = type("Task", (Task,), {"_app": self, "abstract": True})
        for fun, name in BUILTIN_TASKS:
            task = make_task(fun, self, {"name": name, "typing": False}, self.Task)
            register(self.tasks.own, task)
        # Hooks for integrations (conveyor.contrib.django adds to them); each list is run in order.
        self.on_worker_child_start: list[Callable[[], None]] = []
        """Run in each forked worker child before it consumes: drop what must not be shared
        across a fork, such as inherited database connections."""
        self.on_worker_stopping: list[Callable[[], None]] = []
        """Run when a worker's shutdown begins (warm or cold): the scheduler beside it
        (``worker --beat``) stops sending while the running tasks finish."""
        self.on_task_start: list[Callable[[AnyTask, Request], None]] = []
        """Run by a worker just before a task's code (never for eager runs)."""
        self.on_task_end: list[Callable[[AnyTask, Request], None]] = []
        """Run by a worker just after a task's code, whatever its outcome."""
        self.defer_publish: Callable[[Callable[[], None]], bool] | None = None
        """Offered every publish of sent tasks as a callable; returning True means it will
        call it later (the Django integration: when the open transaction commits)."""
        if set_as_current:
            self.set_current()

    def worker_stopping(self) -> None:
        """Run the ``on_worker_stopping`` hooks (the worker's shutdown began)."""
        for hook in list(self.on_worker_stopping):
            try:
                hook()
            except Exception:
                logging.getLogger("conveyor.worker").exception("a worker-stopping hook failed")

    def set_current(self) -> None:
        set_current(self)

    def set_default(self) -> None:
        """Celery's name: make this the app that ``current_app`` and shared tasks use when
        none is given (Conveyor keeps one current app for the whole process)."""
        set_current(self)

    def __repr__(self) -> str:
        return f"<Conveyor {self.main or '__main__'} broker={redact_url(self.broker_url)}>"

    # -- configuration ------------------------------------------------------------------

    def config_from_object(self, obj: object | str, namespace: str | None = None) -> None:
        """Read settings from an object or dotted path when first needed (see ``Settings``)."""
        self.conf.load_object(obj, namespace)

    def _settings_changed(self, names: set[str]) -> None:
        """Settings stay live: a new broker or backend URL (Django's override_settings in a
        test, say) is used from the next send; new routes from the next route."""
        with self._lock:
            if "broker_url" in names:
                self._broker = None if "broker" not in self._given else self._broker
                self._coordinator = None if "coordinator" not in self._given else self._coordinator
            if names & {"broker_url", "result_backend"} and "backend" not in self._given:
                self._backend, self._results, self._replies = None, None, None
            if names & ROUTING_SETTINGS:
                self._router = None

    @property
    def router(self) -> Router:
        """Where sends go and what a worker consumes (``task_routes``, ``task_queues``)."""
        router = self._router
        if router is None:
            router = self._router = Router(self.conf)
        return router

    def autodiscover_tasks(
        self, packages: Packages = None, related_name: str = "tasks", force: bool = False
    ) -> None:
        """Import ``<package>.tasks`` of each package (Django's installed apps without
        packages) when a worker or scheduler starts, or a task name is not found; at once
        with ``force``. ``packages`` may be a callable (``lambda: settings.INSTALLED_APPS``)."""
        self._discovery.add(packages, related_name)
        if force:
            self._discovery.run()

    @property
    def broker_url(self) -> str:
        if self._broker is not None:
            return self._broker.url or type(self._broker).__name__
        return self.conf.broker_url or DEFAULT_URL

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            with self._lock:
                if self._broker is None:
                    broker = _built("broker_url", broker_from_url, self.broker_url)
                    broker.configure_publish_retries(
                        self.conf.broker_publish_retries, self.conf.broker_publish_retry_delay
                    )
                    self._broker = broker
        return self._broker

    @property
    def backend(self) -> ResultBackend:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    url = self.conf.result_backend
                    setting = "broker_url" if url is None else "result_backend"
                    if url is None:
                        url = self.broker_url if "://" in self.broker_url else "memory://"
                    self._backend = _built(setting, backend_from_url, url)
        return self._backend

    @property
    def coordinator(self) -> Coordinator:
        """Cluster-wide state (revocations, limits, locks, dedup keys), beside the broker."""
        if self._coordinator is None:
            with self._lock:
                if self._coordinator is None:
                    url = self.broker_url if "://" in self.broker_url else "memory://"
                    self._coordinator = _built(
                        "broker_url", lambda url: coordinator_from_url(url, self.clock), url
                    )
        return self._coordinator

    @property
    def control(self) -> Control:
        return Control(self)

    @property
    def events(self) -> Events:
        """The event stream the broker keeps: ``app.events.tail(since="15m")``."""
        return Events(self.broker, self.conf, self.clock, self.hostname)

    def lock(
        self,
        name: str,
        timeout: float = 60.0,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
    ) -> Lock:
        """A distributed lock: ``with app.lock("nightly-report", timeout=600) as acquired:``
        (False while another holder has it: it does not wait unless ``blocking=True``)."""
        return Lock(self.coordinator, name, timeout, blocking, blocking_timeout)

    @property
    def results(self) -> ResultStore:
        if self._results is None:
            self._results = ResultStore(self.backend, self.conf.result_expires, self.clock)
        return self._results

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()
        if self._backend is not None:
            self._backend.close()
        if self._coordinator is not None:
            self._coordinator.close()

    # -- defining tasks -----------------------------------------------------------------

    @overload
    def task(self, fun: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...
    @overload
    def task(self, fun: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self, fun: None = None, /, *, bind: Literal[True], **options: Any
    ) -> BoundTaskDecorator: ...
    @overload
    def task(
        self, fun: None = None, /, *, bind: Literal[False] = False, **options: Any
    ) -> TaskDecorator: ...
    @overload
    def task(
        self, fun: None = None, /, *, bind: bool, **options: Any
    ) -> Callable[[Callable[..., Any]], AnyTask]: ...

    def task(self, fun: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """``@app.task`` or ``@app.task(bind=True, ...)``: register a function as a task."""
        check_task_options(options)

        def decorate(f: Callable[..., Any]) -> AnyTask:
            if options.get("shared"):
                return make_task(f, None, options, SharedTask)
            return self.register_task(make_task(f, self, options, self.Task))

        return decorate(fun) if fun is not None else decorate

    def register_task(self, task: T | type[T]) -> T:
        """Register a class-based task on this app; returns it. Given the class, as Celery's
        test fixtures pass it, an instance is made and registered."""
        if isinstance(task, type) and issubclass(task, Task):
            task = task()
        if not isinstance(task, Task):
            raise ImproperlyConfigured(f"register_task() takes a Task instance, not {task!r}")
        task.bind(self)
        register(self.tasks.own, task)
        return task

    def periodic_task(self, schedule: Any, **entry: Any) -> Callable[[Any], AnyTask]:
        """``@app.periodic_task(crontab(minute=0), name=...)``: a task that beat sends on a
        schedule (also name=, args=, kwargs=, options=, catch_up=, and task options)."""
        from .beat.periodic import periodic_task

        return periodic_task(self, schedule, **entry)

    # -- sending ------------------------------------------------------------------------

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AnyResult:
        """Send a task by name, without importing it."""
        if options.get("link") or options.get("link_error"):  # callbacks ride in the message
            from .canvas import signature

            result: AnyResult = signature(name, args, kwargs, app=self, **options).apply_async()
            return result
        task = self.tasks.own.get(name) or shared_tasks.get(name)
        return self.send(task, tuple(args or ()), dict(kwargs or {}), options, name=name)

    async def asend_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AnyResult:
        """``send_task`` for coroutines: publishes without blocking the event loop
        (``conveyor.aio_client``)."""
        if options.get("link") or options.get("link_error"):  # a workflow: sent in a thread
            return await asyncio.to_thread(self.send_task, name, args, kwargs, **options)
        task = self.tasks.own.get(name) or shared_tasks.get(name)
        return await asend(self, task, tuple(args or ()), dict(kwargs or {}), options, name)

    def send_canvas(
        self, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        """Send a workflow (``Signature.apply_async``): the app knows the planner, the
        signature does not."""
        return send_workflow(sig, self, args, kwargs, options)

    def freeze_canvas(self, sig: Signature, task_id: str | None = None) -> AnyResult | GroupResult:
        """Give every node of ``sig`` its id now, in place; the result it will have
        (``Signature.freeze``)."""
        result: AnyResult | GroupResult = freeze_result(sig, self, task_id)
        return result

    build_message = build_message

    def envelope(self, message: Message, task: AnyTask | None = None) -> Envelope:
        if signals.before_task_publish.receivers:
            message = before_publish(message)
        spec = task.spec if task is not None and task.typing else None
        names = spec.param_names if spec is not None else ()
        body = encode_message(message, self.conf.max_payload_size, names, spec)
        return Envelope(broker_key(message), message.queue, body, message.priority, message.eta)

    def send(
        self,
        task: AnyTask | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: Mapping[str, Any],
        name: str | None = None,
    ) -> AnyResult:
        replies = self._replies
        if replies is None:
            replies = self._replies = self.backend.replies
        reply: bool | str = False
        if replies and not getattr(self._batch, "stack", None):
            reply = self.backend.reply_address() or True
        message = self.build_message(task, args, kwargs, options, name, reply)
        key = message.idempotency_key
        if key is None and task is not None and task.idempotency_key:
            key = format_key(task.idempotency_key, task, args, kwargs)
            message = message.replace(idempotency_key=key)
        if key is not None:
            if message.reply:
                message = message.replace(reply=False, reply_to=None)
            sent: AnyResult = AsyncResult(
                self._send_once(idempotency_key(key), message, task), self, task
            )
            if message.parent_id is not None:  # sent by a running task: one of its children
                note_child(sent, message.parent_id)
            return sent
        if message.reply:
            self._publish_replied(message, task)
        else:
            self.publish([(message, task)])
        result: AnyResult = AsyncResult(message.id, app=self, task=task)
        result.ignored = message.ignore_result  # get() returns None at once, as in Celery
        if message.parent_id is not None:  # sent by a running task: one of its children
            note_child(result, message.parent_id)
        return result

    def _publish_replied(self, message: Message, task: AnyTask | None) -> None:
        """Publish one message whose outcome the worker also hands back, so a ``get()``
        that follows blocks at once instead of registering first (a round trip fewer)."""
        envelope = self.envelope(message, task)
        gate = self.defer_publish
        if gate is not None and gate(lambda: self.publish_envelopes([envelope])):
            return
        since = time.monotonic()
        self.publish_envelopes([envelope])
        self.results.expect(message.id, since, message.reply_to)

    def _send_once(self, claim: str, message: Message, task: AnyTask | None) -> str:
        """Publish a message unless another id holds its idempotency key; the id that runs.

        The key is claimed when the message is published, so a send that never happens (a
        rolled-back transaction, a ``batch()`` whose block raised) leaves it free.
        """
        window = float(self.conf.idempotency_window)
        coordinator = self.coordinator
        claims: list[list[tuple[str, str]]] | None = getattr(self._batch, "claims", None)
        if claims:
            first = coordinator.put_if_absent(claim, message.id, window)
            if first is not None:
                return first
            claims[-1].append((claim, message.id))
            self.publish([(message, task)])
            return message.id
        envelope = self.envelope(message, task)
        holder: list[str] = []

        def publish() -> None:
            first = coordinator.put_if_absent(claim, message.id, window)
            if first is not None:
                holder.append(first)
                return
            try:
                self.publish_envelopes([envelope])
            except BaseException:
                coordinator.delete(claim, message.id)
                raise

        gate = self.defer_publish
        if gate is not None and gate(publish):
            return coordinator.get(claim) or message.id  # the commit publishes unless taken
        publish()
        return holder[0] if holder else message.id

    def publish(self, items: Sequence[tuple[Message, AnyTask | None]]) -> None:
        """Encode and publish messages: at once, or when the enclosing ``batch()`` ends."""
        envelopes = [self.envelope(message, task) for message, task in items]
        batch: list[list[Envelope]] | None = getattr(self._batch, "stack", None)
        if batch:
            batch[-1].extend(envelopes)
            return
        self._publish_now(envelopes)

    def _publish_now(self, envelopes: list[Envelope]) -> None:
        gate = self.defer_publish
        if gate is not None and gate(lambda: self.publish_envelopes(envelopes)):
            return
        self.publish_envelopes(envelopes)

    def publish_envelopes(self, envelopes: list[Envelope]) -> None:
        """Hand encoded messages to the broker, then to after_task_publish receivers."""
        self.broker.publish(envelopes)
        if self.conf.task_send_sent_event:
            self.events.sent(envelopes)
        if signals.after_task_publish.receivers:
            after_publish(envelopes)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Collect every send inside the block and publish them together when it ends."""
        stack: list[list[Envelope]] | None = getattr(self._batch, "stack", None)
        if stack is None:
            stack = self._batch.stack = []
            self._batch.claims = []
        claims: list[list[tuple[str, str]]] = self._batch.claims
        stack.append([])
        claims.append([])
        try:
            yield
        except BaseException:
            stack.pop()
            self._release(claims.pop())
            raise
        envelopes, mine = stack.pop(), claims.pop()
        try:
            if envelopes:
                self._publish_now(envelopes)
        except BaseException:
            self._release(mine)
            raise

    def _release(self, claims: list[tuple[str, str]]) -> None:
        """Free the idempotency keys of messages that were never published."""
        for claim, message_id in claims:
            self.coordinator.delete(claim, message_id)

    def AsyncResult(self, task_id: str, task: AnyTask | None = None) -> AnyResult:
        return AsyncResult(task_id, app=self, task=task)

    def ResultSet(self, results: Iterable[AnyResult]) -> ResultSet:
        return ResultSet(results, app=self)

    @functools.cached_property
    def GroupResult(self) -> type[GroupResult]:
        """``app.GroupResult(id, results)``; ``app.GroupResult.restore(id)`` reads this app."""
        from .groupresult import bound_group_result

        return bound_group_result(self)

    def now(self) -> datetime:
        """Now on the app's clock, in its ``timezone`` setting (Celery's ``app.now()``)."""
        from zoneinfo import ZoneInfo  # here: its import costs every process's start ~4 ms

        return datetime.fromtimestamp(self.clock(), ZoneInfo(self.conf.timezone))

    @property
    def timezone(self) -> ZoneInfo:
        """The ``timezone`` setting as a zone (Celery's ``app.timezone``); assigning a name
        or a zone changes the setting, which schedules read."""
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.conf.timezone)

    @timezone.setter
    def timezone(self, value: str | tzinfo) -> None:
        self.conf.timezone = str(value)

    # -- worker-side helpers ------------------------------------------------------------

    def import_includes(self) -> None:
        """Import the ``include`` and ``imports`` modules, then run pending discovery."""
        import importlib

        for module in [*self.conf.include, *self.conf.imports]:
            importlib.import_module(module)
        self._discovery.run()

    @property
    def hostname(self) -> str:
        import socket

        return f"conveyor@{socket.gethostname()}"


def _built(setting: str, build: Callable[[str], U], url: str) -> U:
    """``build(url)``; a bad URL's error says which setting held it."""
    try:
        return build(url)
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"the {setting} setting: {exc}") from None


set_default_app(lambda: Conveyor("default"))
