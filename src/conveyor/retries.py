"""What the next attempt of a task is: whether there is one, when it is due, and its message.

``Task.retry()`` and ``autoretry_for`` make a ``Retry`` here; the worker turns it into the
next message here, and ``Task.apply()`` into the next eager call. Times are unix seconds
from the caller's clock, so tests drive them with ``conveyor.testing.FakeClock``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .backoff import get_exponential_backoff_interval
from .exceptions import MaxRetriesExceededError, Retry
from .message import Message, to_timestamp

if TYPE_CHECKING:
    from .request import Request
    from .task import AnyTask

__all__ = [
    "autoretry_options",
    "backoff_delay",
    "check_attempts_left",
    "new_retry",
    "next_call",
    "next_message",
]

COPIED_OPTIONS = ("queue", "priority", "time_limit", "soft_time_limit", "headers")
"""Send options of ``retry(**options)`` that the next message takes as they are."""


def check_attempts_left(
    task: AnyTask, request: Request, limit: int | None, exc: BaseException | None
) -> None:
    """Raise ``exc`` (else MaxRetriesExceededError) when no attempt is left: ``limit``
    retries were used, or the task was called directly, outside a worker."""
    if request.called_directly:
        if exc is not None:
            raise exc
        raise MaxRetriesExceededError(
            f"{task.name}: retry() outside a worker (the task was called directly)"
        )
    if limit is not None and request.retries >= limit:
        if exc is not None:
            raise exc
        raise MaxRetriesExceededError(
            f"{task.name}[{request.id}]: can't retry: {request.retries} of {limit} retries used"
        )


def new_retry(
    task: AnyTask,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    exc: BaseException | None,
    eta: datetime | None,
    countdown: float | None,
    options: dict[str, Any],
) -> Retry:
    """The Retry that ``Task.retry()`` raises: due at ``eta``, else in ``countdown``
    seconds, else after the task's ``default_retry_delay``."""
    when: float | datetime
    if eta is not None:
        when = eta
    elif countdown is not None:
        when = float(countdown)
    else:
        when = task.resolved_retry_delay()
    request = task.request
    sig_options = {"retries": request.retries + 1, **options}
    sig_options["eta" if eta is not None else "countdown"] = when
    next_sig = task.signature(  # Celery's Retry.sig: the next attempt as a signature
        tuple(args) if args is not None else request.args,
        dict(kwargs) if kwargs is not None else request.kwargs,
        **sig_options,
    )
    return Retry(
        exc=exc,
        when=when,
        is_eager=bool(request.is_eager),
        sig=next_sig,
        args_override=tuple(args) if args is not None else None,
        kwargs_override=dict(kwargs) if kwargs is not None else None,
        options=options,
    )


def backoff_delay(task: AnyTask, retries: int) -> float | None:
    """Exponential backoff for autoretry: base * 2**retries, capped, with full jitter."""
    if not task.retry_backoff:
        return None
    base = 1.0 if task.retry_backoff is True else float(task.retry_backoff)
    maximum = float(task.retry_backoff_max)
    return get_exponential_backoff_interval(base, retries, maximum, bool(task.retry_jitter))


def autoretry_options(task: AnyTask, retries: int) -> dict[str, Any]:
    """The ``retry()`` arguments for an exception in ``autoretry_for``: ``retry_kwargs``,
    with the backoff as the countdown unless they give one."""
    options = dict(task.retry_kwargs)
    countdown = backoff_delay(task, retries)
    if countdown is not None:
        options.setdefault("countdown", countdown)
    return options


def next_message(message: Message, retry: Retry, task: AnyTask, now: float) -> Message:
    """The message of the next attempt: one more retry, due when ``retry`` says (a
    ``countdown`` among its options wins), with its new arguments and options."""
    when = retry.when if retry.when is not None else task.resolved_retry_delay()
    eta = to_timestamp(when if isinstance(when, datetime) else float(when), now)
    changes: dict[str, Any] = {"retries": message.retries + 1, "eta": eta, "sent_at": now}
    if retry.args_override is not None:
        changes["args"] = list(retry.args_override)
    if retry.kwargs_override is not None:
        changes["kwargs"] = retry.kwargs_override
    options = retry.options
    if (expires := options.get("expires")) is not None:
        changes["expires"] = to_timestamp(expires, now)
    for key in COPIED_OPTIONS:
        value = options.get(key)
        if value is not None:
            changes[key] = value
    if (countdown := options.get("countdown")) is not None:
        changes["eta"] = now + float(countdown)
    return message.replace(**changes)


def next_call(
    retry: Retry, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of the next eager attempt (``Task.apply()`` retries at once)."""
    if retry.args_override is not None:
        args = tuple(retry.args_override)
    if retry.kwargs_override is not None:
        kwargs = dict(retry.kwargs_override)
    return args, kwargs
