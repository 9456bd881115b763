"""A tasks module that hooks Celery's signals the way Celery projects do, for the signal
tests. Every receiver appends one JSON line to $SIGNAL_LOG (with the signal's name and
the pid it ran in), so a test reads which signals fired, in which order, in which process.

The broker comes from CONVEYOR_BROKER_URL, set by the test to a file of its own.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from conveyor import Conveyor
from conveyor.signals import (
    after_setup_logger,
    after_setup_task_logger,
    after_task_publish,
    beat_init,
    before_task_publish,
    heartbeat_sent,
    task_failure,
    task_postrun,
    task_prerun,
    task_received,
    task_retry,
    task_revoked,
    task_success,
    task_unknown,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError(f"signal_tasks needs CONVEYOR_BROKER_URL set by the test ({BROKER_URL!r})")

app = Conveyor("signals", broker=BROKER_URL, broker_lease=2)


def record(signal: str, **fields: Any) -> None:
    path = os.environ.get("SIGNAL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"signal": signal, "pid": os.getpid(), **fields}) + "\n")


def stored_state(task_id: str | None) -> str:
    return app.AsyncResult(task_id or "").state


# -- tasks ----------------------------------------------------------------------------------


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def reject_order(order_id: int) -> None:
    raise ValueError(f"order {order_id} has no lines")


@app.task(bind=True, max_retries=3)
def call_partner(self: Any, order_id: int) -> str:
    if self.request.retries == 0:
        raise self.retry(exc=ConnectionError("partner down"), countdown=0)
    return f"sent {order_id}"


@app.task
def wait_for(gate: str) -> None:
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)


# -- publishing (in the process that sends) -------------------------------------------------


@before_task_publish.connect
def on_before_publish(
    sender: Any = None, headers: Any = None, routing_key: Any = None, **kwargs: Any
) -> None:
    record(
        "before_task_publish",
        id=headers["id"],
        task=sender,
        retries=headers["retries"],
        routing_key=routing_key,
    )


@after_task_publish.connect
def on_after_publish(sender: Any = None, headers: Any = None, body: Any = None, **kw: Any) -> None:
    record("after_task_publish", id=headers["id"], task=sender, args=body[0])


# -- running (in the process that runs the task) --------------------------------------------


@task_received.connect
def on_received(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    record("task_received", id=request.id, task=request.task, args=list(request.args))


@task_prerun.connect
def on_prerun(
    sender: Any = None,
    task_id: Any = None,
    task: Any = None,
    args: Any = None,
    kwargs: Any = None,
    **extra: Any,
) -> None:
    record(
        "task_prerun",
        id=task_id,
        task=task.name,
        sender_is_task=sender is task,
        request_id=task.request.id,
        args=list(args),
        kwargs=kwargs,
        retries=task.request.retries,
    )


@task_success.connect
def on_success(sender: Any = None, result: Any = None, **kwargs: Any) -> None:
    task_id = sender.request.id
    record(
        "task_success",
        id=task_id,
        task=sender.name,
        result=result,
        has_runtime=kwargs["runtime"] >= 0,
        stored=stored_state(task_id),
    )


@task_failure.connect
def on_failure(
    sender: Any = None,
    task_id: Any = None,
    exception: Any = None,
    args: Any = None,
    kwargs: Any = None,
    traceback: Any = None,
    einfo: Any = None,
    **extra: Any,
) -> None:
    record(
        "task_failure",
        id=task_id,
        task=sender.name,
        exception=repr(exception),
        args=list(args),
        has_traceback=traceback is not None,
        einfo_names_it="order 9 has no lines" in str(einfo),
        stored=stored_state(task_id),
    )


@task_retry.connect
def on_retry(
    sender: Any = None, request: Any = None, reason: Any = None, einfo: Any = None, **kw: Any
) -> None:
    record(
        "task_retry",
        id=request.id,
        task=sender.name,
        reason=str(reason),
        stored=stored_state(request.id),
    )


@task_postrun.connect
def on_postrun(
    sender: Any = None,
    task_id: Any = None,
    retval: Any = None,
    state: Any = None,
    **kwargs: Any,
) -> None:
    record(
        "task_postrun", id=task_id, state=state, retval=repr(retval), stored=stored_state(task_id)
    )


@task_revoked.connect
def on_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: Any = None,
    signum: Any = None,
    expired: Any = None,
    **kwargs: Any,
) -> None:
    record(
        "task_revoked",
        id=request.id,
        task=sender.name,
        terminated=terminated,
        expired=expired,
        stored=stored_state(request.id),
    )


@task_unknown.connect
def on_unknown(
    sender: Any = None,
    name: Any = None,
    id: Any = None,
    message: Any = None,
    exc: Any = None,
    **kwargs: Any,
) -> None:
    record("task_unknown", id=id, name=name, exc=type(exc).__name__)


# -- the worker, beat and logging -------------------------------------------------------------


@worker_init.connect
def on_worker_init(sender: Any = None, **kwargs: Any) -> None:
    record("worker_init", hostname=sender.hostname)


@worker_ready.connect
def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    record("worker_ready", app=sender.app.main)


@worker_process_init.connect
def on_process_init(**kwargs: Any) -> None:
    record("worker_process_init")


@worker_process_shutdown.connect
def on_process_shutdown(pid: Any = None, exitcode: Any = None, **kwargs: Any) -> None:
    record("worker_process_shutdown", child=pid, exitcode=exitcode)


@worker_shutting_down.connect
def on_shutting_down(sender: Any = None, sig: Any = None, how: Any = None, **kw: Any) -> None:
    record("worker_shutting_down", hostname=sender, sig=sig, how=how, exitcode=kw["exitcode"])


@worker_shutdown.connect
def on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    record("worker_shutdown")


_beats: list[int] = []


@heartbeat_sent.connect
def on_heartbeat(**kwargs: Any) -> None:
    if not _beats:  # one line is enough: it comes every few hundred milliseconds
        _beats.append(1)
        record("heartbeat_sent")


@beat_init.connect
def on_beat_init(sender: Any = None, **kwargs: Any) -> None:
    record("beat_init", sender=type(sender).__name__)


@after_setup_logger.connect
def on_setup_logger(logger: Any = None, loglevel: Any = None, **kwargs: Any) -> None:
    record("after_setup_logger", logger=logger.name, loglevel=loglevel)


@after_setup_task_logger.connect
def on_setup_task_logger(logger: Any = None, loglevel: Any = None, **kwargs: Any) -> None:
    record("after_setup_task_logger", logger=logger.name, loglevel=loglevel)
