"""Running one task call through its hooks, the same way in a worker and eagerly, for
``def`` tasks (``trace``) and ``async def`` tasks (``atrace``, awaited on an event loop).

``trace`` turns whatever the task did (return, raise, retry, ignore, reject) into an
Outcome; storing it and answering the broker is the caller's job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import states
from ..exceptions import Ignore, Reject, Retry, Terminated
from ..request import ExceptionInfo, Request, push_request
from ..retries import autoretry_options
from ..task import AnyTask

__all__ = ["Outcome", "atrace", "trace"]

logger = logging.getLogger("conveyor.worker")


@dataclass(slots=True)
class Outcome:
    state: str
    retval: Any = None
    exc: BaseException | None = None
    einfo: ExceptionInfo | None = None
    retry: Retry | None = None
    reject: Reject | None = None


def _autoretry(task: AnyTask, exc: Exception, context: Request) -> Retry | BaseException:
    """The Retry to schedule for an exception listed in autoretry_for, or the final error."""
    try:
        task.retry(exc=exc, **autoretry_options(task, context.retries))
    except Retry as retry:
        return retry
    except BaseException as final:
        return final
    raise AssertionError("retry() always raises")  # pragma: no cover


def _hook(name: str, task: AnyTask, task_id: str, *args: Any) -> None:
    try:
        getattr(task, name)(*args)
    except Exception:
        logger.exception("%s[%s]: %s() raised", task.name, task_id, name)


def trace(
    task: AnyTask, context: Request, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Outcome:
    task_id = context.id or ""
    with push_request(task, context):
        try:
            task.before_start(task_id, args, kwargs)
            retval = task(*args, **kwargs)
        except BaseException as exc:
            outcome = _caught(task, context, exc)
        else:
            outcome = Outcome(states.SUCCESS, retval=retval)
        _after(task, task_id, args, kwargs, outcome)
    return outcome


async def atrace(
    task: AnyTask,
    context: Request,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    interrupted: Callable[[BaseException], BaseException] = lambda exc: exc,
) -> Outcome:
    """``trace`` for an ``async def`` task: the same hooks and outcomes, the coroutine
    awaited. ``interrupted`` names what a cancellation of the coroutine stands for (a time
    limit, a terminate); a cancellation it leaves as is propagates (the loop is stopping).
    The request is pushed in the asyncio task's own context (``request.py``)."""
    task_id = context.id or ""
    with push_request(task, context):
        try:
            task.before_start(task_id, args, kwargs)
            retval = await task(*args, **kwargs)
        except asyncio.CancelledError as cancelled:
            cause = interrupted(cancelled)
            if cause is cancelled:
                raise
            outcome = _caught(task, context, cause)
        except BaseException as exc:
            outcome = _caught(task, context, exc)
        else:
            outcome = Outcome(states.SUCCESS, retval=retval)
        _after(task, task_id, args, kwargs, outcome)
    return outcome


def _caught(task: AnyTask, context: Request, exc: BaseException) -> Outcome:
    """The outcome of a task that raised ``exc``."""
    if isinstance(exc, Retry):
        return Outcome(states.RETRY, exc=exc.exc or exc, retry=exc)
    if isinstance(exc, Ignore):
        return Outcome(states.IGNORED)
    if isinstance(exc, Terminated):
        return Outcome(states.REVOKED, exc=exc)
    if isinstance(exc, Reject):
        return Outcome(states.REJECTED, exc=exc, reject=exc)
    if isinstance(exc, Exception):
        if (
            task.autoretry_for
            and isinstance(exc, task.autoretry_for)
            and not (task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for))
        ):
            result = _autoretry(task, exc, context)
            if isinstance(result, Retry):
                return Outcome(states.RETRY, exc=exc, retry=result)
            return Outcome(states.FAILURE, exc=result)
        return Outcome(states.FAILURE, exc=exc)
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        raise exc
    return Outcome(states.FAILURE, exc=exc)


def _after(
    task: AnyTask, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], outcome: Outcome
) -> None:
    """Run the hooks that follow a run (on_success, on_retry, on_failure, after_return)."""
    if outcome.exc is not None:
        outcome.einfo = ExceptionInfo(outcome.exc)
    if outcome.state == states.SUCCESS:
        _hook("on_success", task, task_id, outcome.retval, task_id, args, kwargs)
    elif outcome.state == states.RETRY:
        _hook("on_retry", task, task_id, outcome.exc, task_id, args, kwargs, outcome.einfo)
    elif outcome.state == states.FAILURE:
        _hook("on_failure", task, task_id, outcome.exc, task_id, args, kwargs, outcome.einfo)
    _hook(
        "after_return",
        task,
        task_id,
        outcome.state,
        outcome.retval if outcome.exc is None else outcome.exc,
        task_id,
        args,
        kwargs,
        outcome.einfo,
    )
