"""A send's message: its arguments, options, and the task's and the app's defaults.

A send without options, the common ``delay(...)``, takes a shorter path that reads only
the defaults and the queue its routes give the task's name (``Router.plain_queue``);
``build_message`` gives the same message either way (a test compares them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .exceptions import EncodeError, ImproperlyConfigured
from .ids import new_id
from .message import Message, to_timestamp
from .options import ALL_SEND_OPTIONS, check_options
from .request import current_request
from .serialization import pickle_arguments
from .stamps import stamps_into_headers
from .task import AnyTask, check_time_limits

if TYPE_CHECKING:
    from .app import Conveyor

__all__ = ["build_message"]


def build_message(
    app: Conveyor,
    task: AnyTask | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: Mapping[str, Any],
    name: str | None = None,
    reply: bool | str = False,
) -> Message:
    """The message a send publishes; raises on an unknown option or bad arguments.
    ``reply``: ask for the outcome to be handed back (``Message.reply``) unless the
    result is ignored; a string also says where (``Message.reply_to``)."""
    if options and "stamped_headers" in options:
        options = stamps_into_headers(options)  # a stamped signature's stamps ride as headers
    if options:
        check_options(options, ALL_SEND_OPTIONS, "option")
    name = name or (task.name if task else None)
    if not name:
        raise ImproperlyConfigured("the task has no name")
    if task is not None and task.typing:
        task.spec.check(name, args, kwargs)
    if task is not None or options:
        check_time_limits(
            name,
            options.get("soft_time_limit", task.soft_time_limit if task else None),
            options.get("time_limit", task.time_limit if task else None),
        )
    if not options and task is not None:
        message = _optionless(app, task, name, args, kwargs, reply)
        if message is not None:
            return message
    return _general(app, task, args, kwargs, options, name, reply)


def _optionless(
    app: Conveyor,
    task: AnyTask,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    reply: bool | str,
) -> Message | None:
    """A send without options (None unless it is JSON-encoded)."""
    conf = app.conf
    if (task.serializer or conf.task_serializer) != "json":
        return None
    queue = app.router.plain_queue(name, task.queue)
    if queue is None:
        return None
    priority = task.priority if task.priority is not None else conf.task_default_priority
    _check_priority(priority)
    ignore = bool(conf.task_ignore_result if task.ignore_result is None else task.ignore_result)
    now = app.clock()
    task_id = new_id()
    parent = current_request()
    return Message(
        id=task_id,
        task=name,
        args=list(args),
        kwargs=kwargs,
        queue=queue,
        priority=priority,
        expires=to_timestamp(task.expires, now),
        root_id=(parent.root_id if parent else None) or task_id,
        parent_id=parent.id if parent else None,
        time_limit=task.time_limit,
        soft_time_limit=task.soft_time_limit,
        ignore_result=ignore,
        sent_at=now,
        reply=bool(reply) and not ignore,
        reply_to=reply if isinstance(reply, str) and reply and not ignore else None,
    )


def _check_priority(priority: object) -> None:
    if not isinstance(priority, int) or not 0 <= priority <= 9:
        raise ValueError(
            f"priority must be an integer from 0 to 9 (higher runs first), not {priority!r}"
        )


def _general(
    app: Conveyor,
    task: AnyTask | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: Mapping[str, Any],
    name: str,
    reply: bool | str,
) -> Message:
    conf = app.conf
    now = app.clock()
    eta: float | None
    if options.get("countdown") is not None:
        eta = now + float(options["countdown"])
    else:
        eta = to_timestamp(options.get("eta"), now)
    expires = options.get("expires", task.expires if task else None)
    route = app.router.route(name, args, kwargs, options, task)
    priority = options.get("priority")
    if priority is None:
        priority = task.priority if task and task.priority is not None else route.get("priority")
    if priority is None:
        priority = conf.task_default_priority
    _check_priority(priority)
    ignore_result = options.get("ignore_result")
    if ignore_result is None:
        ignore_result = (
            task.ignore_result
            if task and task.ignore_result is not None
            else conf.task_ignore_result
        )
    parent = current_request()
    task_id = options.get("task_id") or new_id()
    serializer = (
        options.get("serializer") or (task.serializer if task else None) or conf.task_serializer
    )
    payload = None
    if serializer == "pickle":
        if "pickle" not in conf.accept_content:
            raise EncodeError(
                "serializer='pickle' needs the app to opt in: accept_content=['json', 'pickle']"
            )
        payload, args, kwargs = pickle_arguments(args, kwargs), (), {}
    elif serializer != "json":
        raise ImproperlyConfigured(f"unknown serializer {serializer!r}: use 'json' or 'pickle'")
    return Message(
        id=task_id,
        task=name,
        args=list(args),
        kwargs=kwargs,
        payload=payload,
        content_type=serializer,
        queue=route["queue"],
        priority=priority,
        eta=eta if eta is not None and eta > now else None,
        expires=to_timestamp(expires, now),
        retries=options.get("retries", 0),
        root_id=options.get("root_id") or (parent.root_id if parent else None) or task_id,
        parent_id=options.get("parent_id") or (parent.id if parent else None),
        group_id=options.get("group_id"),
        group_index=options.get("group_index"),
        headers=dict(options.get("headers") or {}),
        time_limit=options.get("time_limit", task.time_limit if task else None),
        soft_time_limit=options.get("soft_time_limit", task.soft_time_limit if task else None),
        ignore_result=bool(ignore_result),
        idempotency_key=options.get("idempotency_key"),
        argsrepr=options.get("argsrepr"),
        kwargsrepr=options.get("kwargsrepr"),
        sent_at=now,
        reply=bool(reply) and not ignore_result,
        reply_to=reply if isinstance(reply, str) and reply and not ignore_result else None,
    )
