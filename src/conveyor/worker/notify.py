"""The task signals a worker sends, at the points where the executor reaches them.

The executor calls these only when a signal has receivers (``signal.receivers`` is an
empty list otherwise), so a worker nobody listens to pays one truth test per point.
Outcome signals go out after the outcome is stored: the outbox batches result writes, so
it is flushed first, and a receiver that reads ``AsyncResult(task_id).state`` sees the
final state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import signals, states
from ..brokers.base import Delivery
from ..message import Message
from ..request import ExceptionInfo, Request, push_request
from ..task import AnyTask
from .trace import Outcome

if TYPE_CHECKING:
    from .executor import Executor

__all__ = [
    "after_run",
    "internal_error",
    "listening_after_run",
    "outcome_signals",
    "prerun",
    "received",
    "rejected",
    "revoked",
    "unknown",
]

_success, _failure, _retry, _revoked, _postrun = (
    signals.task_success,
    signals.task_failure,
    signals.task_retry,
    signals.task_revoked,
    signals.task_postrun,
)


def listening_after_run() -> bool:
    """Whether any signal sent after a task's code ran has a receiver (once per task: no
    generator, no loop)."""
    return bool(
        _success.receivers
        or _failure.receivers
        or _retry.receivers
        or _revoked.receivers
        or _postrun.receivers
    )


def prerun(task: AnyTask, context: Request) -> None:
    """task_prerun, with ``task.request`` set as it is while the task runs."""
    with push_request(task, context):
        signals.task_prerun.send(
            sender=task, task_id=context.id, task=task, args=context.args, kwargs=context.kwargs
        )


def after_run(
    executor: Executor,
    task: AnyTask,
    context: Request,
    outcome: Outcome,
    state: str,
    runtime: float,
) -> None:
    """task_success / task_failure / task_retry / task_revoked, then task_postrun, once
    the outcome ``state`` is stored (``task.request`` still set, as in Celery)."""
    executor.outbox.flush_writes()
    outcome_signals(task, context, outcome, state, runtime)


def outcome_signals(
    task: AnyTask, context: Request, outcome: Outcome, state: str, runtime: float
) -> None:
    """The signals of a run that ended in ``state``: also for eager runs, which store nothing."""
    with push_request(task, context):
        _send_outcome(task, context, outcome, state, runtime)


def _send_outcome(
    task: AnyTask, context: Request, outcome: Outcome, state: str, runtime: float
) -> None:
    task_id, args, kwargs = context.id, context.args, context.kwargs
    exc = outcome.exc
    if state == states.SUCCESS:
        signals.task_success.send(sender=task, result=outcome.retval, runtime=runtime)
    elif state == states.FAILURE and exc is not None:
        einfo = outcome.einfo or ExceptionInfo(exc)
        signals.task_failure.send(
            sender=task,
            task_id=task_id,
            exception=exc,
            args=args,
            kwargs=kwargs,
            traceback=einfo.tb,
            einfo=einfo,
        )
    elif state == states.RETRY:
        signals.task_retry.send(
            sender=task, request=context, reason=outcome.retry or exc, einfo=outcome.einfo
        )
    elif state == states.REVOKED:
        signals.task_revoked.send(
            sender=task, request=context, terminated=True, signum=None, expired=False
        )
    signals.task_postrun.send(
        sender=task,
        task_id=task_id,
        task=task,
        args=args,
        kwargs=kwargs,
        retval=outcome.retval if exc is None else exc,
        state=state,
    )


def revoked(executor: Executor, task: AnyTask, request: Request, expired: bool = False) -> None:
    """A task turned away unrun (revoked, or past its ``expires``), once REVOKED is stored."""
    executor.outbox.flush_writes()
    signals.task_revoked.send(
        sender=task, request=request, terminated=False, signum=None, expired=expired
    )


def received(executor: Executor, deliveries: list[Delivery]) -> None:
    """task_received for each reserved message of a known task (``request``: its Request,
    with the arguments as they arrived: typed conversion happens when it runs)."""
    for delivery in deliveries:
        message = executor.peek(delivery)
        if message is None or message.task not in executor.app.tasks:
            continue
        task = executor.app.tasks[message.task]
        request = executor.request(task, message, delivery)
        signals.task_received.send(sender=executor, request=request)


def unknown(executor: Executor, delivery: Delivery, message: Message, exc: Exception) -> None:
    signals.task_unknown.send(
        sender=executor, name=message.task, id=message.id, message=delivery, exc=exc
    )


def rejected(executor: Executor, delivery: Delivery, exc: Exception) -> None:
    signals.task_rejected.send(sender=executor, message=delivery, exc=exc)


def internal_error(
    executor: Executor, delivery: Delivery, message: Message | None, exc: BaseException
) -> None:
    """The worker's own code failed on ``delivery``, outside the task's code."""
    task: Any = None
    request = None
    if message is not None and message.task in executor.app.tasks:
        task = executor.app.tasks[message.task]
        request = executor.request(task, message, delivery)
    einfo = ExceptionInfo(exc)
    signals.task_internal_error.send(
        sender=task,
        task_id=None if message is None else message.id,
        args=() if message is None else tuple(message.args),
        kwargs={} if message is None else dict(message.kwargs),
        request=request,
        exception=exc,
        traceback=einfo.tb,
        einfo=einfo,
    )
