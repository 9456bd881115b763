"""Retries with backoff, rate and concurrency limits, revocation, locks and idempotency keys."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from conveyor import Conveyor, Task, states
from conveyor.exceptions import ImproperlyConfigured, TaskRevokedError
from conveyor.records import LEVEL_STARTED, TaskRecord, fence
from conveyor.testing import FakeClock, memory_app, run_until_empty


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def app(clock: FakeClock) -> Conveyor:
    return memory_app(f"control-{uuid.uuid4().hex[:6]}", clock=clock)


def _delayed_etas(app: Conveyor, clock: FakeClock) -> list[float]:
    """Seconds from now until each delayed message is due, via a probe of the broker."""
    etas = []
    probe = FakeClock(clock.now)
    while app.broker.stats().get("default") and app.broker.stats()["default"].delayed:
        probe.advance(0.5)
        saved = clock.now
        clock.now = probe.now
        batch = app.broker.reserve(["default"], 1, 30)
        clock.now = saved
        if batch:
            etas.append(probe.now - saved)
            app.broker.nack(batch[0])
            break
    return etas


def test_autoretry_with_exponential_backoff(app: Conveyor, clock: FakeClock) -> None:
    attempts: list[int] = []

    @app.task(
        bind=True,
        autoretry_for=(ConnectionError,),
        retry_backoff=True,
        retry_jitter=False,
        retry_kwargs={"max_retries": 3},
    )
    def call_api(self: Task) -> str:
        attempts.append(self.request.retries)
        if self.request.retries < 3:
            raise ConnectionError("reset")
        return "ok"

    result = call_api.delay()
    waits = []
    for _ in range(3):
        run_until_empty(app)
        assert result.state == states.RETRY
        waits.extend(_delayed_etas(app, clock))
        clock.advance(waits[-1])
    run_until_empty(app)
    assert result.get(timeout=1) == "ok"
    assert attempts == [0, 1, 2, 3]
    assert waits == [1.0, 2.0, 4.0]


def test_autoretry_gives_up_after_max_retries(app: Conveyor, clock: FakeClock) -> None:
    @app.task(autoretry_for=(ConnectionError,), retry_kwargs={"max_retries": 2, "countdown": 1})
    def call_api() -> None:
        raise ConnectionError("still down")

    result = call_api.delay()
    for _ in range(4):
        run_until_empty(app)
        clock.advance(2)
    with pytest.raises(ConnectionError, match="still down"):
        result.get(timeout=1)
    assert result.retries == 2


def test_dont_autoretry_for(app: Conveyor) -> None:
    @app.task(autoretry_for=(Exception,), dont_autoretry_for=(ValueError,))
    def f() -> None:
        raise ValueError("permanent")

    result = f.delay()
    run_until_empty(app)
    assert result.state == states.FAILURE


def test_exhausted_retries_go_to_dead_letters_when_asked(app: Conveyor, clock: FakeClock) -> None:
    @app.task(bind=True, max_retries=1, dead_letter=True)
    def f(self: Task) -> None:
        raise self.retry(exc=RuntimeError("nope"), countdown=1)

    result = f.delay()
    for _ in range(3):
        run_until_empty(app)
        clock.advance(2)
    assert result.state == states.FAILURE
    [letter] = app.broker.dead_letters()
    assert "RuntimeError" in letter.reason


def test_a_resent_dead_letter_stores_its_outcome_and_fences_the_attempt_before(
    app: Conveyor, clock: FakeClock
) -> None:
    fixed = False

    @app.task(dead_letter=True)
    def charge() -> str:
        if not fixed:
            raise ConnectionError("gateway down")
        return "charged"

    result = charge.delay()
    # The first delivery's worker freezes past its lease; the second fails for good.
    [frozen] = app.broker.reserve(["default"], 1, 30)
    clock.advance(31)
    app.broker.recover_expired()
    run_until_empty(app)
    assert result.state == states.FAILURE
    assert app.broker.dead_letters()[0].reason == "failed: ConnectionError: gateway down"

    fixed = True
    assert app.broker.requeue_dead_letters() == 1
    # The re-send's first worker dies before writing anything: its redelivery must run
    # the task, not take the failure from before the re-send for its own outcome.
    app.broker.reserve(["default"], 1, 30)
    clock.advance(31)
    app.broker.recover_expired()
    run_until_empty(app)
    assert result.state == states.SUCCESS
    assert result.get() == "charged"
    record = app.results.read(result.id)
    assert record is not None and record.resends == 1

    # The frozen worker wakes up: its outcome (and its ack) are refused.
    stale = fence(0, frozen.delivery_count, resends=frozen.resends)
    assert not app.results.write(result.id, TaskRecord(status=states.FAILURE), stale)
    assert not app.broker.ack(frozen)
    assert result.get() == "charged"


def test_a_worker_error_on_a_resent_message_is_stored_over_its_last_state(
    app: Conveyor, clock: FakeClock
) -> None:
    from conveyor.testing import _NoTracker
    from conveyor.worker.executor import Executor

    app.conf.task_max_deliveries = 2

    @app.task
    def sync() -> None:
        pass

    result = sync.delay()
    [first] = app.broker.reserve(["default"], 1, 30)
    app.broker.dead_letter(first, "gave up")
    app.results.write(result.id, TaskRecord(status=states.FAILURE), fence(0, 3))
    app.broker.requeue_dead_letters()
    # The re-send's first delivery started, then its process died.
    [resent] = app.broker.reserve(["default"], 1, 30)
    started = fence(0, 1, LEVEL_STARTED, resends=resent.resends)
    app.results.write(result.id, TaskRecord(status=states.STARTED), started)
    clock.advance(31)
    app.broker.recover_expired()
    [again] = app.broker.reserve(["default"], 1, 30)

    Executor(app, "testing@localhost", _NoTracker()).worker_error(again, RuntimeError("boom"))

    assert result.state == states.FAILURE
    assert "boom" in str(result.result)
    assert [letter.id for letter in app.broker.dead_letters()] == [result.id]


def test_rate_limit_postpones_in_the_broker(app: Conveyor, clock: FakeClock) -> None:
    ran: list[float] = []

    @app.task(rate_limit="2/s")
    def limited() -> None:
        ran.append(clock.now)

    @app.task
    def free() -> None:
        ran.append(-1)

    for _ in range(3):
        limited.delay()
    free.delay()
    run_until_empty(app)
    assert ran.count(-1) == 1  # the unlimited task was not stuck behind the limited ones
    assert len([t for t in ran if t > 0]) == 1
    assert app.broker.stats()["default"].delayed == 2
    for _ in range(4):
        clock.advance(0.5)
        run_until_empty(app)
    times = [t for t in ran if t > 0]
    assert len(times) == 3
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(times))


def test_rate_limit_can_change_at_run_time(app: Conveyor, clock: FakeClock) -> None:
    ran: list[int] = []

    @app.task(rate_limit="1/h")
    def limited(n: int) -> None:
        ran.append(n)

    limited.delay(1)
    limited.delay(2)
    run_until_empty(app)
    assert ran == [1]  # the second waits an hour for its token
    app.control.rate_limit(limited.name, "10/s")
    clock.advance(0.5)
    limited.delay(3)
    run_until_empty(app)
    assert ran == [1, 3]  # new sends follow the new rate at once
    app.control.rate_limit(limited.name, None)
    clock.advance(0.5)
    limited.delay(4)
    run_until_empty(app)
    assert ran == [1, 3]  # back to 1/h


def test_bad_rate_limit_is_an_error(app: Conveyor) -> None:
    with pytest.raises(ValueError, match="10/s"):

        @app.task(rate_limit="ten per second")
        def f() -> None: ...


def test_concurrency_limit_keyed_by_argument(app: Conveyor) -> None:
    ran: list[str] = []

    @app.task(concurrency_limit=1, concurrency_key="tenant_id")
    def sync(tenant_id: str) -> None:
        ran.append(tenant_id)

    # another worker is running tenant "a": its slot is taken
    assert app.coordinator.acquire(f"concurrency:{sync.name}:a", "other-worker", 1, 30)
    sync.delay("a")
    sync.delay("b")
    run_until_empty(app)
    assert ran == ["b"]
    app.coordinator.release(f"concurrency:{sync.name}:a", "other-worker")
    app.clock.advance(1)  # type: ignore[attr-defined]
    run_until_empty(app)
    assert ran == ["b", "a"]


def test_revoke_before_start(app: Conveyor) -> None:
    ran: list[int] = []

    @app.task
    def f() -> None:
        ran.append(1)

    result = f.delay()
    result.revoke()
    assert result.state == states.REVOKED
    run_until_empty(app)
    assert ran == []
    with pytest.raises(TaskRevokedError):
        result.get(timeout=1)
    assert app.broker.stats() == {}


def test_revoke_many_by_id_and_before_sending(app: Conveyor) -> None:
    @app.task
    def f() -> int:
        return 1

    app.control.revoke(["later-1", "later-2"])
    first = f.apply_async(task_id="later-1")
    second = f.delay()
    run_until_empty(app)
    assert first.state == states.REVOKED
    assert second.get(timeout=1) == 1


def test_abort_is_seen_by_the_running_task(app: Conveyor) -> None:
    seen: list[bool] = []

    @app.task(bind=True)
    def cancelable(self: Task, items: list[int]) -> str:
        for item in items:
            if self.is_aborted():
                seen.append(True)
                return "cleaned up"
            if item == 2:
                app.AsyncResult(self.request.id).abort()
        return "finished"

    result = cancelable.delay([1, 2, 3])
    run_until_empty(app)
    assert seen == [True]
    assert result.get(timeout=1) == "cleaned up"


def test_lock_option_skips_a_second_run(app: Conveyor) -> None:
    @app.task(lock="process-{resource_id}")
    def process(resource_id: int) -> str:
        return f"done {resource_id}"

    assert app.coordinator.acquire("task-lock:process-7", "another-run", 1, 60)
    skipped, other = process.delay(7), process.delay(8)
    run_until_empty(app)
    assert skipped.state == states.IGNORED
    assert "process-7" in str(skipped.info)
    assert other.get(timeout=1) == "done 8"


def test_lock_option_retry_waits_for_the_lock(app: Conveyor, clock: FakeClock) -> None:
    @app.task(lock="report", on_locked="retry")
    def report() -> str:
        return "written"

    assert app.coordinator.acquire("task-lock:report", "another-run", 1, 60)
    result = report.delay()
    run_until_empty(app)
    assert result.state == states.PENDING
    app.coordinator.release("task-lock:report", "another-run")
    clock.advance(2)
    run_until_empty(app)
    assert result.get(timeout=1) == "written"


def test_bad_on_locked(app: Conveyor) -> None:
    with pytest.raises(ImproperlyConfigured, match="on_locked"):

        @app.task(lock="x", on_locked="wait")
        def f() -> None: ...


def test_app_lock_context_manager(app: Conveyor, clock: FakeClock) -> None:
    with app.lock("nightly", timeout=60, blocking=False) as acquired:
        assert acquired
        with app.lock("nightly", blocking=False) as again:
            assert not again
    with app.lock("nightly", blocking=False) as after_release:
        assert after_release
    held = app.lock("crashy", timeout=10)
    assert held.acquire()
    clock.advance(11)  # the holder crashed: the lock expires
    assert app.lock("crashy", blocking=False).acquire()
    assert held.release() is False  # an expired holder cannot release the new holder's lock


def test_app_lock_in_the_task_lock_shape_does_not_wait(
    app: Conveyor, monkeypatch: pytest.MonkeyPatch
) -> None:
    processed: list[int] = []

    @app.task
    def deduplicated_task(resource_id: int) -> str:
        with app.lock(f"task-lock-{resource_id}", timeout=600) as acquired:
            if not acquired:
                return "already running"
            processed.append(resource_id)
            return "processed"

    attempts: list[str] = []
    acquire = app.coordinator.acquire

    def counted(key: str, token: str, limit: int, timeout: float) -> bool:
        attempts.append(key)
        if len(attempts) > 1:
            raise AssertionError("app.lock() asked again: it waited for the lock")
        return acquire(key, token, limit, timeout)

    other_run = app.lock("task-lock-42", timeout=600)
    assert other_run.acquire()
    monkeypatch.setattr(app.coordinator, "acquire", counted)

    assert deduplicated_task.apply((42,)).get() == "already running"
    assert attempts == ["lock:task-lock-42"]  # asked once, did not wait
    monkeypatch.undo()
    assert deduplicated_task.apply((7,)).get() == "processed"
    other_run.release()
    assert deduplicated_task.apply((42,)).get() == "processed"
    assert processed == [7, 42]
    with app.lock("task-lock-42", timeout=600) as acquired:
        assert acquired  # each block released its lock


def test_app_lock_waits_only_when_asked(app: Conveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    holder = app.lock("report", timeout=600)
    assert holder.acquire()
    acquire = app.coordinator.acquire
    refused: list[str] = []

    def release_after_first_refusal(key: str, token: str, limit: int, timeout: float) -> bool:
        if acquire(key, token, limit, timeout):
            return True
        refused.append(key)
        holder.release()  # the other holder finishes while this one waits
        return False

    monkeypatch.setattr(app.coordinator, "acquire", release_after_first_refusal)
    waiter = app.lock("report", timeout=600, blocking=True)
    waiter.poll = 0.001
    with waiter as acquired:
        assert acquired is True
    assert refused == ["lock:report"]


def test_idempotency_key_enqueues_once(app: Conveyor) -> None:
    @app.task
    def confirm(order_id: int) -> str:
        return f"confirmed {order_id}"

    first = confirm.apply_async((42,), idempotency_key="order-42:confirm")
    second = confirm.apply_async((42,), idempotency_key="order-42:confirm")
    assert second.id == first.id
    assert app.broker.stats()["default"].ready == 1
    assert run_until_empty(app) == 1
    assert confirm.apply_async((42,), idempotency_key="order-42:confirm").id == first.id


def test_idempotency_key_of_a_batch_that_raised_is_free_again(app: Conveyor) -> None:
    @app.task
    def confirm(order_id: int) -> None: ...

    with pytest.raises(RuntimeError), app.batch():
        dropped = confirm.apply_async((7,), idempotency_key="order-7")
        raise RuntimeError("the request failed before the batch was sent")
    assert not app.broker.contains([dropped.id])
    with app.batch():
        again = confirm.apply_async((7,), idempotency_key="order-7")
        assert confirm.apply_async((7,), idempotency_key="order-7").id == again.id
    assert again.id != dropped.id
    assert app.broker.contains([again.id]) == {again.id}
    assert app.broker.stats()["default"].ready == 1


def test_idempotency_key_from_arguments(app: Conveyor, clock: FakeClock) -> None:
    @app.task(idempotency_key="charge-{order_id}")
    def charge(order_id: int, amount: int) -> None: ...

    a = charge.delay(1, 100)
    b = charge.delay(1, 100)
    c = charge.delay(2, 100)
    assert a.id == b.id != c.id
    clock.advance(86_401)  # past the window
    assert charge.delay(1, 100).id != a.id


def test_retry_can_set_its_own_expiry(app: Conveyor, clock: FakeClock) -> None:
    @app.task(bind=True)
    def f(self: Task) -> Any:
        raise self.retry(countdown=10, expires=5)

    result = f.delay()
    run_until_empty(app)
    clock.advance(11)
    run_until_empty(app)
    assert result.state == states.REVOKED
