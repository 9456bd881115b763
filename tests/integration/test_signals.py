"""Celery's signals in real workers: which fire, in which order, with which arguments, in
which process (apps/signal_tasks.py records each one as a JSON line)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conveyor import signals, states
from conveyor.exceptions import NotRegistered

from .support import Workers, project_afresh, read_jsonl, wait_until

APP = "signal_tasks:app"
SENT = ["before_task_publish", "after_task_publish"]
"""A task's signals in the process that sends it (the worker may receive it in between)."""


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where every receiver writes, in this process and in the workers (they inherit it)."""
    path = tmp_path / "signals.jsonl"
    monkeypatch.setenv("SIGNAL_LOG", str(path))
    return path


@contextlib.contextmanager
def app_module(name: str) -> Iterator[ModuleType]:
    """An apps/ module imported afresh; its receivers are disconnected afterwards (the
    next test imports it again, and this process must not keep recording)."""
    with project_afresh(name) as module:
        try:
            yield module
        finally:
            receivers = [f for f in vars(module).values() if getattr(f, "__module__", "") == name]
            for signal_name in signals.__all__:
                connected = getattr(signals, signal_name)
                if isinstance(connected, signals.Signal):
                    for receiver in receivers:
                        connected.disconnect(receiver)


@pytest.fixture
def sig(tasks: ModuleType, log: Path) -> Iterator[ModuleType]:
    """apps/signal_tasks.py on this test's broker (``tasks`` points CONVEYOR_BROKER_URL)."""
    with app_module("signal_tasks") as module:
        yield module


def lines(log: Path, task_id: str | None = None) -> list[dict[str, Any]]:
    return [line for line in read_jsonl(log) if task_id is None or line.get("id") == task_id]


def names(found: list[dict[str, Any]]) -> list[str]:
    return [line["signal"] for line in found]


def order(line: dict[str, Any]) -> bool:
    """Sort key: this process's lines first (sorted() keeps each process's own order)."""
    return line["pid"] != os.getpid()


def here_and_there(found: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The signals sent in this (the sending) process, and those sent in the worker."""
    here = [line for line in found if line["pid"] == os.getpid()]
    return names(here), names([line for line in found if line not in here])


def wait_for_signal(log: Path, name: str, task_id: str | None = None) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((x for x in lines(log, task_id) if x["signal"] == name), None)

    result: dict[str, Any] = wait_until(found, what=f"{name} for {task_id}")
    return result


def test_a_task_that_succeeds(sig: ModuleType, workers: Workers, log: Path) -> None:
    workers.start(app=APP)
    result = sig.add.delay(2, 3)
    assert result.get(timeout=15) == 5
    wait_for_signal(log, "task_postrun", result.id)
    found = lines(log, result.id)
    assert here_and_there(found) == (
        SENT,
        ["task_received", "task_prerun", "task_success", "task_postrun"],
    )
    publish, published, received, prerun, success, postrun = sorted(found, key=order)
    assert (publish["task"], publish["retries"], publish["routing_key"]) == (
        "signal_tasks.add",
        0,
        "default",
    )
    assert published["args"] == [2, 3]
    assert received["task"] == "signal_tasks.add" and received["args"] == [2, 3]
    assert prerun["pid"] != os.getpid()
    assert prerun["sender_is_task"] and prerun["request_id"] == result.id
    assert (prerun["args"], prerun["kwargs"]) == ([2, 3], {})
    # after the outcome is stored: a receiver reading the result sees the final state
    assert (success["result"], success["stored"], success["has_runtime"]) == (5, "SUCCESS", True)
    assert (postrun["state"], postrun["retval"], postrun["stored"]) == ("SUCCESS", "5", "SUCCESS")


def test_a_task_that_fails(sig: ModuleType, workers: Workers, log: Path) -> None:
    workers.start(app=APP)
    result = sig.reject_order.delay(9)
    with pytest.raises(ValueError, match="order 9 has no lines"):
        result.get(timeout=15)
    wait_for_signal(log, "task_postrun", result.id)
    found = lines(log, result.id)
    assert here_and_there(found) == (
        SENT,
        ["task_received", "task_prerun", "task_failure", "task_postrun"],
    )
    failure, postrun = found[-2:]
    assert failure["exception"] == "ValueError('order 9 has no lines')"
    assert failure["args"] == [9]
    assert failure["has_traceback"] and failure["einfo_names_it"]
    assert failure["stored"] == states.FAILURE
    assert (postrun["state"], postrun["stored"]) == ("FAILURE", "FAILURE")
    assert postrun["retval"] == "ValueError('order 9 has no lines')"


def test_a_task_that_retries_then_succeeds(sig: ModuleType, workers: Workers, log: Path) -> None:
    worker = workers.start(app=APP)
    result = sig.call_partner.delay(4)
    assert result.get(timeout=15) == "sent 4"
    wait_until(lambda: names(lines(log, result.id)).count("task_postrun") == 2, what="two postruns")
    found = lines(log, result.id)
    assert here_and_there(found) == (
        SENT,
        [
            "task_received",
            "task_prerun",
            *SENT,  # the retry is sent, from the worker, before task_retry
            "task_retry",
            "task_postrun",
            "task_received",
            "task_prerun",
            "task_success",
            "task_postrun",
        ],
    )
    ran = [line for line in found if line["pid"] != os.getpid()]
    resend, retry, first_end = ran[2], ran[4], ran[5]
    assert resend["retries"] == 1 and resend["pid"] != worker.pid  # in the child
    assert retry["reason"].startswith("Retry in ")
    assert retry["reason"].endswith("ConnectionError('partner down')")
    assert retry["stored"] == states.RETRY
    assert (first_end["state"], first_end["stored"]) == ("RETRY", "RETRY")
    assert ran[7]["retries"] == 1
    assert ran[8]["stored"] == states.SUCCESS


def test_a_task_revoked_before_it_runs(sig: ModuleType, workers: Workers, log: Path) -> None:
    result = sig.add.delay(1, 1)
    result.revoke()
    workers.start(app=APP)
    revoked = wait_for_signal(log, "task_revoked", result.id)
    assert result.state == states.REVOKED
    assert (revoked["task"], revoked["terminated"], revoked["expired"]) == (
        "signal_tasks.add",
        False,
        False,
    )
    assert revoked["stored"] == states.REVOKED
    assert "task_prerun" not in names(lines(log, result.id))


def test_a_running_task_terminated(
    sig: ModuleType, workers: Workers, log: Path, tmp_path: Path
) -> None:
    workers.start(app=APP)
    result = sig.wait_for.delay(str(tmp_path / "never"))
    wait_for_signal(log, "task_prerun", result.id)
    result.revoke(terminate=True)
    postrun = wait_for_signal(log, "task_postrun", result.id)
    revoked = wait_for_signal(log, "task_revoked", result.id)
    assert revoked["terminated"] is True and revoked["stored"] == states.REVOKED
    assert postrun["state"] == states.REVOKED
    assert names(lines(log, result.id))[-2:] == ["task_revoked", "task_postrun"]


def test_an_unknown_task_name(sig: ModuleType, workers: Workers, log: Path) -> None:
    workers.start(app=APP)
    result = sig.app.send_task("signal_tasks.no_such_task", args=[1])
    unknown = wait_for_signal(log, "task_unknown", result.id)
    assert (unknown["name"], unknown["exc"]) == ("signal_tasks.no_such_task", "NotRegistered")
    assert unknown["pid"] != os.getpid()
    with pytest.raises(NotRegistered):
        result.get(timeout=15)
    assert "task_received" not in names(lines(log, result.id))


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_worker_signals_around_a_start_and_a_warm_stop(
    sig: ModuleType, workers: Workers, log: Path, pool: str
) -> None:
    worker = workers.start("-P", pool, "-c", "2", "--beat", app=APP)
    wait_for_signal(log, "heartbeat_sent")
    wait_until(
        lambda: names(lines(log)).count("worker_process_init") == worker.processes,
        what="every child's worker_process_init",
    )
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    found = lines(log)
    supervisor = [x["signal"] for x in found if x["pid"] == worker.pid]
    assert {"heartbeat_sent", "beat_init"} <= set(supervisor)  # the beat runs beside: any time
    supervisor = [x for x in supervisor if x not in ("heartbeat_sent", "beat_init")]
    assert supervisor[:3] == ["after_setup_logger", "after_setup_task_logger", "worker_init"]
    assert supervisor[-2:] == ["worker_shutting_down", "worker_shutdown"]
    assert supervisor[3:-2] == ["worker_ready"]

    by_name = {x["signal"]: x for x in found}
    assert (by_name["after_setup_logger"]["logger"], by_name["after_setup_logger"]["loglevel"]) == (
        "root",
        20,
    )
    assert by_name["after_setup_task_logger"]["logger"] == "conveyor.task"
    assert by_name["worker_init"]["hostname"] == worker.hostname
    assert by_name["worker_ready"]["app"] == "signals"
    assert by_name["beat_init"]["sender"] == "Scheduler"
    assert {k: by_name["worker_shutting_down"][k] for k in ("hostname", "sig", "how")} == {
        "hostname": worker.hostname,
        "sig": "SIGTERM",
        "how": "Warm",
    }

    children = [x for x in found if x["pid"] != worker.pid]
    starts = {x["pid"] for x in children if x["signal"] == "worker_process_init"}
    ends = [x for x in children if x["signal"] == "worker_process_shutdown"]
    assert len(starts) == worker.processes
    assert {x["child"] for x in ends} == starts and all(x["exitcode"] == 0 for x in ends)
    shutting_down = names(found).index("worker_shutting_down")
    assert all(found.index(x) > shutting_down for x in ends)


def test_a_setup_logging_receiver_leaves_logging_to_the_application(
    tasks: ModuleType, workers: Workers
) -> None:
    """The application's handler prints each line once: the worker adds none of its own."""
    with app_module("own_logging_tasks") as shop:
        worker = workers.start(app="own_logging_tasks:app", ready=False)
        assert shop.restock.delay("sku-1").get(timeout=15) == "sku-1"
        assert worker.stop() == 0
    printed = [line for line in worker.log().splitlines() if "restocking sku-1" in line]
    assert printed == ["SHOP WARNING shop.tasks: restocking sku-1"]
    assert "conveyor worker" not in worker.log()  # no handler of the worker's: no banner
