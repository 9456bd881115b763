"""before_task_publish and after_task_publish: a message being sent, as Celery shows it.

Celery hands these receivers its wire format (task message protocol 2): ``headers`` with
the task's name, id, eta, retries..., ``body`` as ``(args, kwargs, embed)``, and AMQP
``exchange``, ``routing_key``, ``properties``, ``declare`` and ``retry_policy``. The same
shapes are built here from a Message, and only while a receiver is connected. Keys a
before_task_publish receiver adds to ``headers`` (a trace id, a tenant) travel in the
message's own headers and reach the task as ``self.request.headers``; changes to the
protocol's keys, ``properties`` and ``declare`` have no effect here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from . import signals
from .brokers.base import Envelope
from .exceptions import DecodeError
from .message import Message
from .serialization import decode_message

__all__ = ["after_publish", "before_publish", "body_of", "headers_of"]

_PROTOCOL = frozenset(
    {
        "lang",
        "task",
        "id",
        "shadow",
        "eta",
        "expires",
        "group",
        "group_index",
        "retries",
        "timelimit",
        "root_id",
        "parent_id",
        "argsrepr",
        "kwargsrepr",
        "origin",
        "ignore_result",
        "stamps",
    }
)
"""Celery's protocol 2 header keys; every other key is a user header."""


def _iso(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, UTC).isoformat()


def headers_of(message: Message) -> dict[str, Any]:
    """Celery's message headers for ``message``, its own headers merged in (a stamped
    task's stamps also under ``stamps``, by name, as Celery 5.3+ sends them)."""
    stamped = message.headers.get("stamped_headers") or ()
    return {
        "lang": "py",
        "task": message.task,
        "id": message.id,
        "shadow": None,
        "eta": _iso(message.eta),
        "expires": _iso(message.expires),
        "group": message.group_id,
        "group_index": message.group_index,
        "retries": message.retries,
        "timelimit": [message.time_limit, message.soft_time_limit],
        "root_id": message.root_id,
        "parent_id": message.parent_id,
        "argsrepr": repr(tuple(message.args)),
        "kwargsrepr": repr(message.kwargs),
        "origin": f"{os.getpid()}@{socket.gethostname()}",
        "ignore_result": message.ignore_result,
        "stamps": {k: message.headers[k] for k in stamped if k in message.headers},
        **message.headers,
    }


def body_of(message: Message) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Protocol 2's body: (args, kwargs, embed)."""
    embed = {
        "callbacks": message.callbacks or None,
        "errbacks": message.errbacks or None,
        "chain": message.chain or None,
        "chord": message.chord,
    }
    return list(message.args), dict(message.kwargs), embed


def before_publish(message: Message) -> Message:
    """Send before_task_publish; the message with the headers its receivers added."""
    headers = headers_of(message)
    signals.before_task_publish.send(
        sender=message.task,
        body=body_of(message),
        exchange="",
        routing_key=message.queue,
        headers=headers,
        properties={
            "correlation_id": message.id,
            "priority": message.priority,
            "content_type": f"application/{message.content_type}",
            "content_encoding": "utf-8",
        },
        declare=[],
        retry_policy=None,
    )
    own = {key: value for key, value in headers.items() if key not in _PROTOCOL}
    return message if own == message.headers else message.replace(headers=own)


def after_publish(envelopes: Sequence[Envelope]) -> None:
    """Send after_task_publish for each published message."""
    for envelope in envelopes:
        try:
            message = decode_message(envelope.body)
        except DecodeError:
            continue
        signals.after_task_publish.send(
            sender=message.task,
            body=body_of(message),
            exchange="",
            routing_key=message.queue,
            headers=headers_of(message),
        )
