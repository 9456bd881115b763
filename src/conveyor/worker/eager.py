"""``Task.apply()`` and ``task_always_eager``: run in this process through the worker's hooks.

Arguments still make the round trip through the encoder, so a value that could not be
sent fails here too, and typed arguments arrive converted exactly as on a worker.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from .. import signals, states
from ..ids import new_id
from ..message import Message
from ..options import ALL_SEND_OPTIONS, check_options
from ..request import Request, current_request
from ..result import EagerResult
from ..retries import next_call
from ..runtime_hooks import runtime
from ..serialization import (
    decode_message,
    decode_value,
    encode_message,
    encode_value,
    tag_result,
    untag_values,
)
from ..task import AnyTask
from . import notify
from .trace import atrace, trace

__all__ = ["run_eagerly"]


def run_eagerly(
    task: AnyTask, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
) -> EagerResult[Any]:
    check_options(options, ALL_SEND_OPTIONS | {"throw"}, "option")
    app = task.app
    name = task.name or type(task).default_name()
    task.spec.check(name, args, kwargs)
    spec = task.spec if task.typing else None
    wire = Message(id="eager", task=name, args=list(args), kwargs=kwargs)
    names = spec.param_names if spec is not None else ()
    wire = decode_message(encode_message(wire, None, names, spec))  # as a worker gets them
    args, kwargs = tuple(wire.args), dict(wire.kwargs)
    if task.typing:
        args, kwargs = task.spec.convert(args, kwargs)
    task_id = options.get("task_id") or new_id()
    parent = current_request()
    throw = options.get("throw")
    if throw is None:
        throw = app.conf.task_eager_propagates
    retries = int(options.get("retries", 0))
    while True:
        context = Request(
            id=task_id,
            task=name,
            args=args,
            kwargs=kwargs,
            retries=retries,
            called_directly=False,
            is_eager=True,
            hostname="eager",
            delivery_info={
                "queue": options.get("queue") or task.queue,
                "priority": options.get("priority"),
                "redelivered": False,
                "is_eager": True,
            },
            parent_id=parent.id if parent else None,
            root_id=(parent.root_id if parent else None) or task_id,
            headers=dict(options.get("headers") or {}),
            delivery_count=1,
        )
        if signals.task_prerun.receivers:
            notify.prerun(task, context)
        started = time.monotonic()
        if task.is_async:  # asyncio.run; refused inside a running loop
            from .aio import run_to_end  # the loop machinery, only for async tasks

            outcome = run_to_end(partial(atrace, task, context, args, kwargs), name)
        else:
            outcome = trace(task, context, args, kwargs)
        if notify.listening_after_run():
            runtime = time.monotonic() - started
            notify.outcome_signals(task, context, outcome, outcome.state, runtime)
        if outcome.state == states.RETRY and outcome.retry is not None:
            retries += 1
            args, kwargs = next_call(outcome.retry, args, kwargs)
            continue
        break
    einfo = outcome.einfo.traceback if outcome.einfo else None
    if outcome.state == states.SUCCESS:
        retval = outcome.retval
        try:
            retval = untag_values(decode_value(encode_value(tag_result(retval, spec))))
            if task.typing:
                from ..serialization import convert

                retval = convert(retval, task.spec.returns)
        except Exception:
            pass
        return EagerResult(task_id, retval, states.SUCCESS, None, task, retries)
    if outcome.exc is not None and throw:
        raise outcome.exc
    return EagerResult(task_id, outcome.exc, outcome.state, einfo, task, retries)


runtime.run_eagerly = run_eagerly
