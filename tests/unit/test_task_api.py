"""Defining, sending and running tasks the way Celery's docs and the seeds teach."""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Any

import pytest

import conveyor
from conveyor import Conveyor, Ignore, Reject, Task, shared_task, states
from conveyor.exceptions import (
    DuplicateTaskName,
    EncodeError,
    ImproperlyConfigured,
    MaxRetriesExceededError,
    NotRegistered,
    PayloadTooLarge,
    RemoteTaskError,
    TaskRevokedError,
)
from conveyor.testing import FakeClock, memory_app, run_until_empty


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def app(clock: FakeClock) -> Conveyor:
    return memory_app(f"test-{uuid.uuid4().hex[:6]}", clock=clock)


def test_task_with_and_without_parentheses(app: Conveyor) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="custom.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    assert add.name == f"{__name__}.test_task_with_and_without_parentheses.<locals>.add"
    assert mul.name == "custom.mul"
    r1, r2 = add.delay(2, 3), mul.apply_async((4, 5))
    assert r1.state == states.PENDING
    assert run_until_empty(app) == 2
    assert (r1.get(timeout=1), r2.get(timeout=1)) == (5, 20)
    assert add(2, 2) == 4  # calling the task runs it here


def test_unknown_task_option_names_it(app: Conveyor) -> None:
    with pytest.raises(ImproperlyConfigured, match="max_retry.*max_retries"):

        @app.task(max_retry=3)
        def f() -> None: ...


def test_unknown_send_option_names_it(app: Conveyor) -> None:
    @app.task
    def f() -> None: ...

    with pytest.raises(ImproperlyConfigured, match="countdwn.*countdown"):
        f.apply_async(countdwn=3)


def test_two_tasks_with_one_name_is_an_error(app: Conveyor) -> None:
    @app.task(name="dup.name")
    def one() -> None: ...

    with pytest.raises(DuplicateTaskName, match="dup.name"):

        @app.task(name="dup.name")
        def two() -> None: ...


def test_shared_task_uses_the_current_app(clock: FakeClock) -> None:
    @shared_task
    def greet(name: str) -> str:
        return f"hello {name}"

    first = memory_app("first", clock=clock)
    second = memory_app("second", clock=clock)  # now current
    result = greet.delay("ada")
    assert run_until_empty(first) == 0
    assert run_until_empty(second) == 1
    assert result.get(timeout=1) == "hello ada"
    assert greet.name in first.tasks and greet.name in second.tasks


def test_wrong_arity_fails_at_call_time(app: Conveyor) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="missing a required argument: 'y'"):
        add.delay(1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        add.delay(1, 2, z=3)
    assert app.broker.stats() == {}


def test_django_model_instance_argument_says_pass_the_id(app: Conveyor) -> None:
    class User:
        pk = 42
        _meta = object()

    @app.task
    def process_user(user: Any) -> None: ...

    with pytest.raises(EncodeError, match=r"argument 'user'.*Django model.*primary key.*42"):
        process_user.delay(User())


def test_lambda_argument_is_refused_with_a_hint(app: Conveyor) -> None:
    @app.task
    def process(user_id: int, callback_func: Any) -> None: ...

    with pytest.raises(EncodeError, match=r"argument 'callback_func'.*callable.*signature"):
        process.delay(1, lambda: None)
    with pytest.raises(TypeError):  # EncodeError is also a TypeError
        process.delay(1, object())


def test_payload_over_the_limit_is_refused_at_call_time(clock: FakeClock) -> None:
    app = memory_app("limits", clock=clock, max_payload_size=1000)

    @app.task
    def store(blob: str) -> None: ...

    with pytest.raises(PayloadTooLarge, match="over the limit of 1,000"):
        store.delay("x" * 2000)
    store.delay("x" * 10)


def test_priority_out_of_range(app: Conveyor) -> None:
    @app.task
    def f() -> None: ...

    with pytest.raises(ValueError, match="0 to 9"):
        f.apply_async(priority=10)


def test_failure_reraises_the_original_exception(app: Conveyor) -> None:
    @app.task
    def boom() -> None:
        raise KeyError("missing thing")

    result = boom.delay()
    run_until_empty(app)
    assert result.state == states.FAILURE
    assert result.failed() and result.ready() and not result.successful()
    with pytest.raises(KeyError, match="missing thing"):
        result.get(timeout=1)
    assert isinstance(result.result, KeyError)
    assert "raise KeyError" in (result.traceback or "")
    returned = result.get(timeout=1, propagate=False)
    assert isinstance(returned, KeyError) and returned.args == ("missing thing",)


def test_failure_with_an_unimportable_exception_class_gets_a_wrapper(app: Conveyor) -> None:
    @app.task
    def boom() -> None:
        cls = type("LocalError", (Exception,), {})
        raise cls("only here")

    result = boom.delay()
    run_until_empty(app)
    with pytest.raises(RemoteTaskError, match="LocalError: only here"):
        result.get(timeout=1)


def test_unknown_id_is_not_pending(app: Conveyor) -> None:
    assert app.AsyncResult("never-sent").state == states.UNKNOWN

    @app.task
    def f() -> None: ...

    assert f.delay().state == states.PENDING


def test_ignore_result_stores_nothing(app: Conveyor) -> None:
    @app.task(ignore_result=True)
    def f() -> int:
        return 1

    result = f.delay()
    run_until_empty(app)
    assert result.state == states.UNKNOWN


def test_expired_task_is_revoked_not_run(app: Conveyor, clock: FakeClock) -> None:
    ran = []

    @app.task
    def f() -> None:
        ran.append(1)

    result = f.apply_async(expires=10)
    clock.advance(11)
    run_until_empty(app)
    assert ran == []
    assert result.state == states.REVOKED
    assert "expired" in str(result.result)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=1)


def test_countdown_waits_in_the_broker(app: Conveyor, clock: FakeClock) -> None:
    @app.task
    def f() -> str:
        return "done"

    result = f.apply_async(countdown=30)
    assert app.broker.stats()["default"].delayed == 1
    assert run_until_empty(app) == 0
    clock.advance(31)
    assert run_until_empty(app) == 1
    assert result.get(timeout=1) == "done"


def test_bound_task_retries_then_succeeds(app: Conveyor, clock: FakeClock) -> None:
    attempts: list[int] = []
    retried: list[str] = []

    def on_retry(
        self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        retried.append(str(exc))

    @app.task(bind=True, max_retries=3, on_retry=on_retry)
    def flaky(self: Task, x: int) -> int:
        attempts.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(exc=ConnectionError("down"), countdown=5)
        return x * 10

    result = flaky.apply_async((4,), priority=7, headers={"correlation_id": "abc"})
    run_until_empty(app)
    assert result.state == states.RETRY
    clock.advance(6)
    run_until_empty(app)
    clock.advance(6)
    run_until_empty(app)
    assert result.get(timeout=1) == 40
    assert attempts == [0, 1, 2]
    assert retried == ["down", "down"]
    assert result.retries == 2


def test_retry_past_max_retries_fails_with_the_original_exception(
    app: Conveyor, clock: FakeClock
) -> None:
    failures: list[tuple[str, tuple[Any, ...]]] = []

    def on_failure(
        self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        failures.append((type(exc).__name__, args))
        assert "ValueError" in einfo.traceback

    @app.task(bind=True, max_retries=1, on_failure=on_failure)
    def email_send(self: Task, email_id: int) -> None:
        try:
            raise ValueError("smtp down")
        except Exception as exc:
            self.retry(exc=exc, countdown=5)

    result = email_send.delay(7)
    for _ in range(3):
        run_until_empty(app)
        clock.advance(6)
    assert result.state == states.FAILURE
    with pytest.raises(ValueError, match="smtp down"):
        result.get(timeout=1)
    assert failures == [("ValueError", (7,))]


def test_retry_without_exception_past_the_limit(app: Conveyor, clock: FakeClock) -> None:
    @app.task(bind=True, max_retries=0)
    def f(self: Task) -> None:
        raise self.retry(countdown=1)

    result = f.delay()
    run_until_empty(app)
    with pytest.raises(MaxRetriesExceededError):
        result.get(timeout=1)


def test_update_state_progress_is_readable(app: Conveyor) -> None:
    seen: list[Any] = []

    @app.task(bind=True)
    def long_running(self: Task, items: list[int]) -> dict[str, Any]:
        for i, _ in enumerate(items):
            self.update_state(state="PROGRESS", meta={"current": i + 1, "total": len(items)})
            result = app.AsyncResult(self.request.id)
            seen.append((result.state, result.info))
        return {"status": "complete", "processed": len(items)}

    result = long_running.delay([1, 2, 3])
    run_until_empty(app)
    assert seen[-1] == ("PROGRESS", {"current": 3, "total": 3})
    assert result.get(timeout=1) == {"status": "complete", "processed": 3}


def test_request_context(app: Conveyor) -> None:
    seen: dict[str, Any] = {}

    @app.task(bind=True)
    def task_with_context(self: Task, data: int) -> None:
        r = self.request
        seen.update(
            id=r.id,
            task=r.task,
            retries=r.retries,
            hostname=r.hostname,
            queue=r.delivery_info["queue"],
            redelivered=r.delivery_info["redelivered"],
            called_directly=r.called_directly,
            root_id=r.root_id,
            header=r.headers.get("my_header"),
            name=self.name,
        )

    result = task_with_context.apply_async((1,), headers={"my_header": "x"}, queue="q1")
    run_until_empty(app, ["q1"])
    assert seen == {
        "id": result.id,
        "task": task_with_context.name,
        "retries": 0,
        "hostname": "testing@localhost",
        "queue": "q1",
        "redelivered": False,
        "called_directly": False,
        "root_id": result.id,
        "header": "x",
        "name": task_with_context.name,
    }
    task_with_context.run = lambda data: seen.update(
        called_directly=task_with_context.request.called_directly
    )
    task_with_context(1)
    assert seen["called_directly"] is True


def test_parent_and_root_ids_follow_subtasks(app: Conveyor) -> None:
    ids: dict[str, Any] = {}

    @app.task(bind=True)
    def child(self: Task) -> None:
        ids["child"] = (self.request.parent_id, self.request.root_id)

    @app.task(bind=True)
    def parent(self: Task) -> None:
        child.delay()

    result = parent.delay()
    run_until_empty(app)
    assert ids["child"] == (result.id, result.id)


def test_ignore_and_reject(app: Conveyor) -> None:
    @app.task
    def skip() -> None:
        raise Ignore()

    @app.task
    def refuse() -> None:
        raise Reject("bad payload", requeue=False)

    r1, r2 = skip.delay(), refuse.delay()
    run_until_empty(app)
    assert r1.state == states.IGNORED
    assert r2.state == states.REJECTED
    [letter] = app.broker.dead_letters()
    assert letter.id == r2.id and "bad payload" in letter.reason


def test_unknown_task_name_is_dead_lettered_and_fails(app: Conveyor) -> None:
    result = app.send_task("no.such.task", [1])
    run_until_empty(app)
    with pytest.raises(NotRegistered, match="no.such.task"):
        result.get(timeout=1)
    [letter] = app.broker.dead_letters()
    assert "no.such.task" in letter.reason


def test_wrong_arguments_by_name_are_dead_lettered(app: Conveyor) -> None:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="'y'"):
        app.send_task("t.add", [1])  # checked at call time where the task is known
    message = app.build_message(None, (1,), {}, {}, name="t.add")  # a producer that can't check
    app.broker.publish([app.envelope(message)])
    result = app.AsyncResult(message.id)
    run_until_empty(app)
    with pytest.raises(TypeError, match="'y'"):
        result.get(timeout=1)
    assert "t.add" in app.broker.dead_letters()[0].reason


def test_class_based_task_as_in_the_seeds(app: Conveyor) -> None:
    class ProcessImage(Task):
        ignore_result = False

        def run(self, image_url: str) -> str:
            return self.resize(self.download(image_url))

        def download(self, url: str) -> str:
            return f"bytes of {url}"

        def resize(self, image: str) -> str:
            return f"small {image}"

    process_image = ProcessImage()
    result = process_image.delay("http://x/cat.png")
    run_until_empty(app)
    assert result.get(timeout=1) == "small bytes of http://x/cat.png"
    registered = app.register_task(ProcessImage())
    assert registered.name == process_image.name


def test_base_classes_mixins_and_call_override(app: Conveyor) -> None:
    calls: list[str] = []

    class DatabaseTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            calls.append("ensure_connection")
            return super().__call__(*args, **kwargs)

    class NotificationTaskMixin:
        max_retries = 3
        default_retry_delay = 60

        def get_user(self, user_id: int) -> str:
            return f"user-{user_id}"

    class EmailNotificationTask(NotificationTaskMixin, DatabaseTask):
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(f"success {retval}")

    @app.task(base=EmailNotificationTask, bind=True)
    def send_email_notification(self: Any, user_id: int, template: str) -> str:
        return f"{template} to {self.get_user(user_id)} ({self.max_retries}, {self.default_retry_delay})"

    result = send_email_notification.delay(5, "welcome")
    run_until_empty(app)
    assert result.get(timeout=1) == "welcome to user-5 (3, 60)"
    assert calls == ["ensure_connection", "success welcome to user-5 (3, 60)"]


def test_get_task_logger_names_task_and_id(app: Conveyor, caplog: pytest.LogCaptureFixture) -> None:
    logger = conveyor.get_task_logger("shop.tasks")

    @app.task(name="shop.log_me")
    def log_me() -> None:
        logger.warning("hello %s", "there")

    result = log_me.delay()
    with caplog.at_level(logging.INFO):
        run_until_empty(app)
    assert f"shop.log_me[{result.id}]: hello there" in caplog.text


def test_eager_apply_and_always_eager(clock: FakeClock) -> None:
    app = memory_app("eager", clock=clock)

    @app.task(bind=True, max_retries=2)
    def flaky(self: Task) -> int:
        if self.request.retries < 2:
            raise self.retry(countdown=100)
        return self.request.retries

    eager = flaky.apply()
    assert eager.get() == 2 and eager.successful()
    app.conf.task_always_eager = True
    assert flaky.delay().get() == 2
    assert app.broker.stats() == {}


def test_eager_propagates_when_configured(clock: FakeClock) -> None:
    app = memory_app("eager2", clock=clock, task_always_eager=True, task_eager_propagates=True)

    @app.task
    def boom() -> None:
        raise RuntimeError("eager boom")

    with pytest.raises(RuntimeError, match="eager boom"):
        boom.delay()


def test_get_inside_a_task_is_refused(app: Conveyor) -> None:
    @app.task
    def inner() -> int:
        return 1

    @app.task
    def outer() -> Any:
        return inner.delay().get(timeout=1)

    result = outer.delay()
    run_until_empty(app)
    with pytest.raises(RuntimeError, match="never call result.get"):
        result.get(timeout=1)


def test_pickle_only_when_opted_in(clock: FakeClock) -> None:
    app = memory_app("pickly", clock=clock, accept_content=["json", "pickle"])

    @app.task(serializer="pickle")
    def f(x: Any) -> str:
        return repr(x)

    result = f.delay(1 + 2j)
    run_until_empty(app)
    assert result.get(timeout=1) == "(1+2j)"

    strict = memory_app("strict", clock=clock)
    with pytest.raises(EncodeError, match="opt in"):
        strict.send_task(f.name, [1], serializer="pickle")
    body = app.build_message(f, (1,), {}, {"serializer": "pickle"})
    strict.broker.publish([app.envelope(body)])
    strict.register_task(f)
    run_until_empty(strict)
    [letter] = strict.broker.dead_letters()
    assert "pickle" in letter.reason


def test_public_api_is_sorted_and_importable() -> None:
    assert conveyor.__all__ == sorted(conveyor.__all__)
    for name in conveyor.__all__:
        assert getattr(conveyor, name) is not None


def test_received_is_recorded_for_prefetched_tasks_when_asked(clock: FakeClock) -> None:
    from conveyor.testing import _NoTracker
    from conveyor.worker.consumer import Consumer

    app = memory_app("received", clock=clock, task_track_received=True)
    seen: list[str] = []

    @app.task
    def first(other_id: str) -> None:
        seen.append(app.AsyncResult(other_id).state)

    @app.task
    def second() -> None: ...

    later = second.apply_async(priority=0)
    now = first.apply_async((later.id,), priority=9)
    Consumer(app, ["default"], "testing@localhost", _NoTracker(), prefetch=2, max_tasks=2).run()
    assert seen == [states.RECEIVED]  # reserved with the first, waiting its turn
    assert now.state == later.state == states.SUCCESS


def test_annotations_that_nest_object_take_any_value(app: Conveyor) -> None:
    @app.task
    def report(meta: dict[str, object]) -> dict[str, object]:
        return {"seen": meta, "count": len(meta)}

    result = report.delay({"a": 1, "b": [1, 2]})
    run_until_empty(app)
    assert result.get(timeout=1) == {"seen": {"a": 1, "b": [1, 2]}, "count": 2}


def test_the_old_task_decorator_still_works(app: Conveyor) -> None:
    from conveyor.task import task  # was: from celery.task import task

    @task
    def process_image(image_url: str) -> str:
        return f"resized {image_url}"

    @task()
    def some_task(model_name: str, model_id: int) -> str:
        return f"{model_name}:{model_id}"

    first, second = process_image.delay("cat.png"), some_task.delay("alarm", 3)
    run_until_empty(app)
    assert (first.get(timeout=1), second.get(timeout=1)) == ("resized cat.png", "alarm:3")


def test_async_def_tasks_register_and_say_so(app: Conveyor) -> None:
    @app.task
    async def fetch(url: str) -> str:
        return url

    class Poll(Task):
        async def run(self) -> None: ...

    class Plain(Task):
        def run(self) -> None: ...

    assert fetch.is_async and Poll.is_async and not Plain.is_async
    assert app.tasks[fetch.name] is fetch  # see tests/unit/test_async_tasks.py for running


def _passes_through(fun: Any) -> Any:
    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fun(*args, **kwargs)

    return wrapper


def _injects_self(fun: Any) -> Any:
    """A decorator that takes the bound task first and hides it from the function."""

    @functools.wraps(fun)
    def wrapper(task: Any, *args: Any, **kwargs: Any) -> Any:
        return fun(*args, request_id=task.request.id, **kwargs)

    return wrapper


def test_bind_on_wrapped_functions_registers_and_runs(app: Conveyor) -> None:
    @app.task(bind=True)
    @_passes_through
    def checked(self: Any, x: int) -> int:
        return x * 2

    @app.task(bind=True)
    @_injects_self
    def unchecked(x: int, request_id: str | None = None) -> list[Any]:
        return [x, request_id is not None]

    with pytest.raises(TypeError, match="checked"):
        checked.delay(1, 2)  # the wrapped signature with self is trusted: checked at call
    one, two = checked.delay(21), unchecked.delay(5)
    assert run_until_empty(app) == 2
    assert one.get(timeout=1) == 42
    assert two.get(timeout=1) == [5, True]


def test_a_signature_that_cannot_be_read_turns_the_call_check_off(app: Conveyor) -> None:
    class Largest(Task):
        name = "builtin.max"
        run = max  # a C function whose signature inspect cannot read

    task = app.register_task(Largest())
    result = task.delay([1, 5, 3])
    assert run_until_empty(app) == 1
    assert result.get(timeout=1) == 5
