"""Helpers that ported Celery code imports: the backoff interval, ``allow_join_result``,
``AsyncResult._get_task_meta()`` and ``get()``'s parameters in Celery's order."""

from __future__ import annotations

import random
import uuid
from datetime import datetime

import pytest

from conveyor import Conveyor, group
from conveyor.backoff import get_exponential_backoff_interval
from conveyor.result import allow_join_result
from conveyor.testing import memory_app, run_until_empty


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"helpers-{uuid.uuid4().hex[:6]}")


def test_backoff_interval_doubles_up_to_the_maximum() -> None:
    assert [get_exponential_backoff_interval(2, n, 60) for n in range(6)] == [2, 4, 8, 16, 32, 60]
    assert get_exponential_backoff_interval(0, 5, 60) == 0
    assert get_exponential_backoff_interval(1.5, 2, 600.0) == 6.0
    assert get_exponential_backoff_interval(-3, 1, 10) == 0  # never negative


def test_backoff_interval_with_full_jitter_stays_in_range() -> None:
    random.seed(7)
    whole = {get_exponential_backoff_interval(1, 3, 600, full_jitter=True) for _ in range(400)}
    assert whole == set(range(9))  # whole seconds 0..8, as Celery's
    fractions = [get_exponential_backoff_interval(0.5, 2, 600.0, True) for _ in range(50)]
    assert all(0 <= f <= 2.0 for f in fractions)
    assert any(f != int(f) for f in fractions)


def test_a_task_retries_by_hand_with_the_backoff_interval(app: Conveyor) -> None:
    countdowns: list[float] = []

    @app.task(bind=True, max_retries=3)
    def sync_inventory(self, sku: str) -> str:
        if self.request.retries < 3:
            countdown = get_exponential_backoff_interval(
                factor=5, retries=self.request.retries, maximum=60, full_jitter=False
            )
            countdowns.append(countdown)
            raise self.retry(countdown=0)
        return sku

    result = sync_inventory.delay("sku-1")
    run_until_empty(app)
    assert result.get(timeout=1) == "sku-1"
    assert countdowns == [5, 10, 20]


def test_get_inside_a_task_needs_allow_join_result(app: Conveyor) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def total_without() -> int:
        return add.delay(1, 2).get(timeout=1)

    @app.task
    def total_with() -> int:
        pending = add.delay(2, 3)
        run_until_empty(app)  # the memory broker runs the child when asked
        with allow_join_result():
            return pending.get(timeout=1)

    refused = total_without.delay()
    allowed = total_with.delay()
    run_until_empty(app)

    with pytest.raises(RuntimeError, match="allow_join_result"):
        refused.get(timeout=1)
    assert allowed.get(timeout=1) == 5


def test_get_task_meta_has_celerys_keys(app: Conveyor) -> None:
    @app.task
    def double(x: int) -> int:
        return 2 * x

    @app.task
    def explode() -> None:
        raise ValueError("boom")

    waiting = double.delay(21)
    meta = waiting._get_task_meta()
    assert meta == {
        "status": "PENDING",
        "result": None,
        "traceback": None,
        "children": [],
        "date_done": None,
        "task_id": waiting.id,
    }

    failed = explode.delay()
    run_until_empty(app)
    done = waiting._get_task_meta()
    assert (done["status"], done["result"], done["task_id"]) == ("SUCCESS", 42, waiting.id)
    assert datetime.fromisoformat(done["date_done"]).tzinfo is not None
    meta = failed._get_task_meta()
    assert meta["status"] == "FAILURE"
    assert isinstance(meta["result"], ValueError)
    assert "boom" in meta["traceback"]


def test_get_takes_celerys_parameters_in_celerys_order(app: Conveyor) -> None:
    @app.task
    def double(x: int) -> int:
        return 2 * x

    result = double.delay(4)
    run_until_empty(app)
    seen: list[tuple[str, int]] = []

    # timeout, propagate, interval, no_ack, follow_parents, callback: as Celery takes them
    assert result.get(1, True, 0.1, True, True, lambda tid, v: seen.append((tid, v))) == 8
    assert seen == [(result.id, 8)]
    assert double.apply((5,)).get(1, True, 0.5, False) == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((False,), "get() got False for timeout, its 1st parameter"),
        ((10, 0.5), "get() got 0.5 for propagate, its 2nd parameter"),
        ((10, True, None), "get() got None for interval, its 3rd parameter"),
        ((10, True, 0.5, "no"), "get() got 'no' for no_ack, its 4th parameter"),
        ((10, True, 0.5, True, True, "print"), "for callback, its 6th parameter"),
        ((10, True, 0.5, True, True, None, print), "on_message, its 7th parameter"),
    ],
)
def test_a_wrong_positional_argument_to_get_names_the_parameter(
    app: Conveyor, args: tuple[object, ...], message: str
) -> None:
    @app.task
    def double(x: int) -> int:
        return 2 * x

    result = double.delay(4)
    with pytest.raises(TypeError) as caught:
        result.get(*args)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert "(timeout, propagate, interval, ...)" in str(caught.value)
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        double.apply((4,)).get(*args)  # type: ignore[arg-type]


def test_a_groups_get_takes_celerys_order_and_allow_join_result(app: Conveyor) -> None:
    @app.task
    def square(x: int) -> int:
        return x * x

    @app.task
    def gather() -> list[int]:
        pending = group(square.s(i) for i in range(3)).delay()
        run_until_empty(app)
        with allow_join_result():
            return pending.get(timeout=1)

    outer = gather.delay()
    run_until_empty(app)
    assert outer.get(timeout=1) == [0, 1, 4]

    result = group(square.s(i) for i in (2, 3)).delay()
    run_until_empty(app)
    seen: list[int] = []
    # timeout, propagate, interval, callback: a set's order, as Celery's
    result.get(1, True, 0.1, lambda task_id, value: seen.append(value))
    assert seen == [4, 9]
    with pytest.raises(TypeError, match="got 'x' for callback, its 4th parameter"):
        result.join(1, True, 0.1, "x")  # type: ignore[arg-type]
