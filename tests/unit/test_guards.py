"""The guards' verdicts before a task starts: revoked, skipped, postponed, or admitted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.brokers.base import Delivery
from conveyor.keys import task_lock_key
from conveyor.message import Message
from conveyor.serialization import decode_message
from conveyor.task import AnyTask
from conveyor.testing import FakeClock, memory_app
from conveyor.worker.guards import POSTPONE, REVOKE, SKIP, Admission, Guards

NOW = 1_900_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def app(clock: FakeClock) -> Conveyor:
    return memory_app(f"guards-{uuid.uuid4().hex[:6]}", clock=clock)


@pytest.fixture
def guards(app: Conveyor, clock: FakeClock) -> Guards:
    return Guards(app, clock=clock)


def _admit(app: Conveyor, guards: Guards, task: AnyTask, *args: Any) -> Admission:
    """Send ``task(*args)``, reserve its message and ask the guards about it."""
    task.delay(*args)
    [delivery] = app.broker.reserve(["default"], 1, 30.0)
    message = decode_message(delivery.body)
    return guards.admit(task, message, delivery, tuple(message.args), dict(message.kwargs))


def _reserved(app: Conveyor) -> tuple[Delivery, Message]:
    [delivery] = app.broker.reserve(["default"], 1, 30.0)
    return delivery, decode_message(delivery.body)


def test_an_unlimited_task_is_admitted(app: Conveyor, guards: Guards) -> None:
    @app.task
    def ping() -> str:
        return "pong"

    admission = _admit(app, guards, ping)
    assert admission.verdict is None
    assert admission.slots == []


def test_a_revoked_task_is_turned_away_with_the_reason(app: Conveyor, guards: Guards) -> None:
    @app.task
    def send_newsletter(issue: int) -> None:
        pass

    result = send_newsletter.delay(12)
    app.control.revoke(result.id, reason="sent by hand")
    delivery, message = _reserved(app)
    admission = guards.admit(send_newsletter, message, delivery, (12,), {})
    assert admission.verdict is not None
    assert (admission.verdict.action, admission.verdict.reason) == (REVOKE, "sent by hand")


def test_a_held_lock_skips_the_task(app: Conveyor, guards: Guards) -> None:
    @app.task(lock="report-{account}")
    def build_report(account: int) -> None:
        pass

    key = task_lock_key("report-42")
    assert app.coordinator.acquire(key, "another run", 1, 60.0)
    admission = _admit(app, guards, build_report, 42)
    assert admission.verdict is not None
    assert admission.verdict.action == SKIP
    assert admission.verdict.reason == f"skipped: {key} is held by another run"


def test_a_held_lock_postpones_the_task_with_on_locked_retry(app: Conveyor, guards: Guards) -> None:
    @app.task(lock="report-{account}", on_locked="retry")
    def build_report(account: int) -> None:
        pass

    assert app.coordinator.acquire(task_lock_key("report-42"), "another run", 1, 60.0)
    admission = _admit(app, guards, build_report, 42)
    assert admission.verdict is not None
    assert admission.verdict.action == POSTPONE
    assert admission.verdict.delay > 0
    other = _admit(app, guards, build_report, 43)  # another account: another lock
    assert other.verdict is None
    assert [key for key, _ in other.slots] == [task_lock_key("report-43")]


def test_the_concurrency_limit_postpones_until_a_slot_is_released(
    app: Conveyor, guards: Guards
) -> None:
    @app.task(concurrency_limit=1)
    def export(batch: int) -> None:
        pass

    first = _admit(app, guards, export, 1)
    assert first.verdict is None
    second = _admit(app, guards, export, 2)
    assert second.verdict is not None
    assert second.verdict.action == POSTPONE
    assert "is at its limit" in second.verdict.reason
    guards.release(first)
    assert first.slots == []
    assert _admit(app, guards, export, 3).verdict is None


def test_the_rate_limit_postpones_and_admits_again_once_the_clock_moves(
    app: Conveyor, guards: Guards, clock: FakeClock
) -> None:
    @app.task(rate_limit="1/m")
    def notify(user_id: int) -> None:
        pass

    assert _admit(app, guards, notify, 1).verdict is None
    limited = _admit(app, guards, notify, 2)
    assert limited.verdict is not None
    assert limited.verdict.action == POSTPONE
    assert limited.verdict.reason == f"rate limit of {notify.name}"
    assert limited.verdict.delay > 0
    clock.advance(60)
    assert _admit(app, guards, notify, 3).verdict is None
