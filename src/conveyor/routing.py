"""Routing, as Celery's ``task_routes`` and ``task_queues`` settings describe it.

Where a send goes, first match wins: an explicit ``queue=`` (on the call, or the task's
own ``queue`` option); then each router in ``task_routes`` in order, a dict mapping exact
task names and glob patterns (``"feed.tasks.*"``) to a queue name or a dict of options,
or a function called as Celery calls it, ``route_task(name, args, kwargs, options,
task=task)``, returning a queue name, a dict or None; then ``task_default_queue``. A route
may also set ``priority``; Celery's AMQP keys (``exchange``, ``routing_key``, ...) are
accepted and mean nothing on Conveyor's brokers.

``task_queues`` lists the queues a worker started without ``-Q`` consumes (names or
``Queue`` objects). With ``task_create_missing_queues = False`` a route, a ``queue=`` or a
``-Q`` naming a queue not listed there is an error.

Routes that depend on the name alone are resolved once per task name: a send without
options (``delay``) pays one dictionary lookup for them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .config import Settings
    from .task import AnyTask

__all__ = ["ROUTING_SETTINGS", "Exchange", "Queue", "Router"]

ROUTING_SETTINGS = frozenset(
    {"task_routes", "task_queues", "task_default_queue", "task_create_missing_queues"}
)
"""The settings a Router is built from: a change to any of them makes a new one."""

ROUTE_KEYS = frozenset({"queue", "priority"})
"""What a route sets on a send."""
IGNORED_ROUTE_KEYS = frozenset(
    {"exchange", "exchange_type", "routing_key", "delivery_mode", "immediate", "mandatory"}
)
"""Celery's AMQP keys in a route: accepted, meaningless on Conveyor's brokers."""


class Exchange:
    """Kombu's ``Exchange``, accepted where Celery code passes one: only its name is kept."""

    def __init__(self, name: str = "", type: str = "direct", **options: Any) -> None:
        self.name = name
        self.type = type
        self.options = options

    def __repr__(self) -> str:
        return f"<Exchange {self.name}({self.type})>"


class Queue:
    """A queue in ``task_queues`` or a route (kombu's ``Queue`` in Celery code).

    Only the name matters here; ``exchange``, ``routing_key`` and kombu's other options are
    accepted so that a Celery project's queue list needs no change.
    """

    def __init__(
        self,
        name: str,
        exchange: Exchange | str | None = None,
        routing_key: str | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ImproperlyConfigured(f"a Queue needs a name (a non-empty string), not {name!r}")
        self.name = name
        self.exchange = exchange
        self.routing_key = routing_key
        self.options = options

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Queue) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"


RouterFunction = Callable[..., Any]


class _MapRoute:
    """A dict of routes: exact names first, then glob patterns (and compiled regular
    expressions) in the order given. Celery's matching: ``*`` matches any run of
    characters and a pattern matches from the start of the name."""

    def __init__(self, table: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> None:
        pairs = list(table.items()) if isinstance(table, Mapping) else list(table)
        self.exact: dict[str, Any] = {}
        self.patterns: list[tuple[re.Pattern[str], Any]] = []
        for key, route in pairs:
            if isinstance(key, re.Pattern):
                self.patterns.append((key, route))
            elif isinstance(key, str) and "*" in key:
                regex = ".*?".join(re.escape(part) for part in key.split("*"))
                self.patterns.append((re.compile(regex), route))
            elif isinstance(key, str):
                self.exact[key] = route
            else:
                raise ImproperlyConfigured(
                    f"task_routes keys are task names, glob patterns or compiled regular "
                    f"expressions, not {key!r}"
                )

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name in self.exact:
            return self.exact[name]
        for regex, route in self.patterns:
            if regex.match(name):
                return route
        return None


class Router:
    """The routes, queues and defaults of one set of settings (a new Router when they
    change)."""

    def __init__(self, conf: Settings) -> None:
        self.default_queue: str = conf.task_default_queue
        self.queues: tuple[str, ...] = _queue_names(conf.task_queues)
        self.create_missing: bool = bool(conf.task_create_missing_queues)
        self.routers: list[Any] = _routers(conf.task_routes)
        self.static = all(isinstance(r, _MapRoute) for r in self.routers)
        """True when routes depend on the task name alone (no router functions)."""
        self._by_name: dict[str, dict[str, Any]] = {}
        self._plain: dict[str, tuple[str | None, str]] = {}

    # -- sending

    def plain_queue(self, name: str, own: str | None) -> str | None:
        """The queue of a send without options, by task name and the task's own ``queue``
        option (remembered per name); None when the send must take the full path: a
        router function must see the call, or the route sets more than the queue."""
        hit = self._plain.get(name)
        if hit is not None and hit[0] == own:
            return hit[1]
        if not self.static:
            return None
        route = self._static_route(name)
        if len(route) > 1:
            return None
        queue = self.checked(_queue_name(own) if own else route["queue"], name)
        self._plain[name] = (own, queue)
        return queue

    def route(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        task: AnyTask | None,
    ) -> dict[str, Any]:
        """What the routes set on one send: ``queue``, and ``priority`` if a route gives
        one. An explicit queue (the call's, else the task's own) wins, as in Celery."""
        if self.static:
            route = self._static_route(name)
        else:
            route = self._lookup(name, args, kwargs, options, task)
        explicit = options.get("queue") or (task.queue if task is not None else None)
        queue = self.checked(_queue_name(explicit) if explicit else route["queue"], name)
        return {**route, "queue": queue}

    def _static_route(self, name: str) -> dict[str, Any]:
        route = self._by_name.get(name)
        if route is None:
            route = self._by_name[name] = self._lookup(name, (), {}, {}, None)
        return route

    def _lookup(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        task: AnyTask | None,
    ) -> dict[str, Any]:
        for index, router in enumerate(self.routers):
            if isinstance(router, str):
                router = self.routers[index] = _import_router(router)
            if isinstance(router, _MapRoute):
                found = router(name)
            elif hasattr(router, "route_for_task"):  # a router class from before Celery 4
                found = router.route_for_task(name, args, kwargs)
            else:
                found = router(name, args, kwargs, options, task=task)
            if found:
                return self._expanded(found, name)
        return {"queue": self.default_queue}

    def _expanded(self, found: Any, name: str) -> dict[str, Any]:
        """A router's answer (a queue name, a Queue, or a dict of options) as options."""
        if not isinstance(found, Mapping):
            found = {"queue": found}
        unknown = set(found) - ROUTE_KEYS - IGNORED_ROUTE_KEYS
        if unknown:
            raise ImproperlyConfigured(
                f"the route for task {name!r} sets {sorted(unknown)}: a route sets queue and "
                "priority (Celery's exchange and routing_key are accepted and ignored)"
            )
        route = {key: found[key] for key in ROUTE_KEYS & set(found)}
        route["queue"] = _queue_name(route.get("queue") or self.default_queue)
        return route

    def checked(self, queue: str, task_name: str | None = None) -> str:
        """``queue``, unless task_create_missing_queues is off and task_queues lacks it."""
        if self.create_missing or not self.queues or queue in self.queues:
            return queue
        what = f" (task {task_name!r})" if task_name else ""
        raise ImproperlyConfigured(
            f"queue {queue!r}{what} is not in task_queues ({', '.join(self.queues)}) and "
            "task_create_missing_queues is False: add it to task_queues, or set "
            "task_create_missing_queues = True"
        )

    # -- consuming

    def worker_queues(self, requested: Sequence[str] | None = None) -> list[str]:
        """The queues a worker consumes: ``-Q``'s (each checked), else those task_queues
        lists, else the default queue (Celery's choice)."""
        if requested:
            return [self.checked(queue) for queue in requested]
        return list(self.queues) if self.queues else [self.default_queue]


def _queue_name(queue: Any) -> str:
    if isinstance(queue, Queue):
        return queue.name
    if isinstance(queue, str) and queue:
        return queue
    raise ImproperlyConfigured(f"a queue is a name or a Queue, not {queue!r}")


def _queue_names(queues: Any) -> tuple[str, ...]:
    """task_queues as names: a list of names or Queues, or Celery's old dict form."""
    if not queues:
        return ()
    if isinstance(queues, str):
        queues = [part.strip() for part in queues.split(",") if part.strip()]
    return tuple(dict.fromkeys(_queue_name(q) for q in queues))


def _routers(routes: Any) -> list[Any]:
    """task_routes as a list of routers (Celery's ``prepare``)."""
    if routes is None:
        return []
    if not isinstance(routes, list | tuple):
        routes = [routes]
    prepared: list[Any] = []
    for route in routes:
        if isinstance(route, Mapping | list | tuple):
            prepared.append(_MapRoute(route))
        elif isinstance(route, str) or callable(route) or hasattr(route, "route_for_task"):
            prepared.append(route)
        else:
            raise ImproperlyConfigured(
                f"task_routes holds {route!r}: use a dict of names and patterns, a router "
                "function, or the dotted path of one"
            )
    return prepared


def _import_router(path: str) -> Any:
    module_name, colon, attr = path.partition(":")
    if not colon:
        module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        message = f"cannot load the router {path!r} in task_routes: {exc}"
        raise ImproperlyConfigured(message) from exc
