"""Running one task call through its hooks, the same way in a worker and eagerly.

``trace`` turns whatever the task did (return, raise, retry, ignore, reject) into an
Outcome; storing it and answering the broker is the caller's job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .. import states
from ..exceptions import Ignore, Reject, Retry, Terminated
from ..request import ExceptionInfo, Request, push_request
from ..retries import autoretry_options
from ..task import AnyTask

__all__ = ["Outcome", "trace"]

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
        except Retry as retry:
            outcome = Outcome(states.RETRY, exc=retry.exc or retry, retry=retry)
        except Ignore:
            outcome = Outcome(states.IGNORED)
        except Terminated as exc:
            outcome = Outcome(states.REVOKED, exc=exc)
        except Reject as reject:
            outcome = Outcome(states.REJECTED, exc=reject, reject=reject)
        except Exception as exc:
            if (
                task.autoretry_for
                and isinstance(exc, task.autoretry_for)
                and not (task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for))
            ):
                result = _autoretry(task, exc, context)
                if isinstance(result, Retry):
                    outcome = Outcome(states.RETRY, exc=exc, retry=result)
                else:
                    outcome = Outcome(states.FAILURE, exc=result)
            else:
                outcome = Outcome(states.FAILURE, exc=exc)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            outcome = Outcome(states.FAILURE, exc=exc)
        else:
            outcome = Outcome(states.SUCCESS, retval=retval)
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
    return outcome
