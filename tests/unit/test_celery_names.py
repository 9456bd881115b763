"""Names and small behaviours real Celery task modules use: ``states.state``,
``Retry.humanize()``, ``uuid()``, ``app.GroupResult`` / ``app.ResultSet`` / ``app.now()``,
``get()`` on a result that is not kept, and the soft-above-hard time limit check."""

from __future__ import annotations

import logging
import uuid as uuid_module
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import Conveyor, Retry, Task, states
from conveyor.states import PENDING, RECEIVED, RETRY, REVOKED, STARTED, SUCCESS, state
from conveyor.testing import FakeClock, memory_app, run_until_empty
from conveyor.utils import uuid


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"names-{uuid_module.uuid4().hex[:6]}")


def test_states_compare_by_celerys_precedence() -> None:
    assert state(PENDING) < state(SUCCESS)
    assert state("PROGRESS") > state(STARTED)  # a custom state outranks the built-in ones
    assert not state("PROGRESS") > state(SUCCESS)
    assert state(states.FAILURE) > state(REVOKED) > state(STARTED) > state(RECEIVED)
    assert state(RETRY) > state(PENDING) >= state(PENDING)
    assert sorted(map(state, [SUCCESS, PENDING, "PROGRESS", STARTED])) == [
        PENDING,
        STARTED,
        "PROGRESS",
        SUCCESS,
    ]
    assert state(SUCCESS) == SUCCESS and isinstance(state(SUCCESS), str)
    assert states.precedence(SUCCESS) == 0 and states.precedence("PROGRESS") == 2


def test_retry_humanize() -> None:
    assert Retry(when=30).humanize() == "in 30s"
    due = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert Retry(when=due).humanize() == f"at {due}"
    assert str(Retry(exc=KeyError("k"), when=5)) == "Retry in 5s: KeyError('k')"


def test_uuid_makes_a_task_id_to_send_with(app: Conveyor) -> None:
    @app.task
    def ping() -> str:
        return "pong"

    task_id = uuid()
    assert uuid_module.UUID(task_id).version == 4
    result = ping.apply_async(task_id=task_id)
    run_until_empty(app)
    assert result.id == task_id and app.AsyncResult(task_id).get(timeout=1) == "pong"


def test_app_result_classes_and_now() -> None:
    clock = FakeClock(datetime(2026, 3, 1, 9, 30, tzinfo=UTC).timestamp())
    app = memory_app("results", clock=clock, timezone="Europe/Paris")

    @app.task
    def square(x: int) -> int:
        return x * x

    saved = app.GroupResult(uuid(), [square.delay(i) for i in range(3)]).save()
    run_until_empty(app)
    restored = app.GroupResult.restore(saved.id)
    assert restored is not None and restored.get(timeout=1) == [0, 1, 4]
    assert app.ResultSet([app.AsyncResult(r.id) for r in saved]).get(timeout=1) == [0, 1, 4]
    now = app.now()
    assert now == datetime(2026, 3, 1, 10, 30, tzinfo=now.tzinfo)
    assert now.utcoffset() == timedelta(hours=1)


def test_get_on_a_result_not_kept_returns_none_at_once(app: Conveyor) -> None:
    @app.task(ignore_result=True)
    def log_visit(path: str) -> str:
        return path

    @app.task
    def count(x: int) -> int:
        return x

    assert log_visit.delay("/home").get(timeout=0.01) is None  # nothing sent was run yet
    assert count.apply_async((1,), ignore_result=True).get(timeout=0.01) is None
    kept = count.delay(2)
    run_until_empty(app)
    assert kept.get(timeout=1) == 2


def test_soft_time_limit_above_the_hard_one(
    app: Conveyor, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="conveyor.task"):

        @app.task(soft_time_limit=2, time_limit=1)
        def report() -> None: ...

    assert "soft_time_limit 2 is above time_limit 1" in caplog.text

    @app.task(time_limit=10)
    def export() -> None: ...

    message = "soft_time_limit must be less than or equal to time_limit"
    with pytest.raises(ValueError, match=message):
        report.delay()
    with pytest.raises(ValueError, match=message):
        export.apply_async(soft_time_limit=20)
    with pytest.raises(ValueError, match=message):
        export.s().set(soft_time_limit=11).delay()
    export.apply_async(soft_time_limit=10, time_limit=10)  # equal is fine


def test_argsrepr_and_kwargsrepr_replace_the_arguments_where_they_are_shown(
    app: Conveyor,
) -> None:
    seen: list[tuple[str, str]] = []

    @app.task(bind=True)
    def charge_card(self: Task, number: str, cvc: str, amount: int = 0) -> None:  # type: ignore[type-arg]
        seen.append((self.request.argsrepr, self.request.kwargsrepr))
        raise ValueError("declined")

    hidden = charge_card.apply_async(
        ("4111 1111 1111 1111", "123"),
        {"amount": 5},
        argsrepr="('4111 ****', '***')",
        kwargsrepr="{'amount': 5}",
    )
    shown = charge_card.delay("5500 0000 0000 0004", "999")
    run_until_empty(app)
    assert seen == [
        ("('4111 ****', '***')", "{'amount': 5}"),
        ("('5500 0000 0000 0004', '999')", "{}"),
    ]
    record = app.results.read(hidden.id)
    assert record is not None and (record.argsrepr, record.kwargsrepr) == seen[0]
    assert "4111 1111" not in str(app.backend.get(app.results.key(hidden.id)))
    failed = app.results.read(shown.id)
    assert failed is not None and failed.argsrepr == "('5500 0000 0000 0004', '999')"
