"""The Signal class, as Celery projects connect to it, and the publish signals it carries."""

from __future__ import annotations

import gc
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import Conveyor, states
from conveyor.brokers.base import Envelope
from conveyor.signals import (
    Signal,
    after_task_publish,
    before_task_publish,
    task_failure,
    task_internal_error,
    task_postrun,
    task_prerun,
    task_rejected,
    task_revoked,
    task_success,
)
from conveyor.testing import FakeClock, memory_app, run_until_empty


@pytest.fixture
def order_placed() -> Signal:
    return Signal(name="order_placed")


@pytest.fixture
def app() -> Iterator[Conveyor]:
    app = memory_app(f"signals-{uuid.uuid4().hex[:6]}")
    yield app
    app.close()


def test_connect_as_a_call_and_as_both_decorator_forms(order_placed: Signal) -> None:
    seen: list[tuple[str, Any, dict[str, Any]]] = []

    def audit(sender: Any = None, **kwargs: Any) -> str:
        seen.append(("audit", sender, kwargs))
        return "audited"

    assert order_placed.connect(audit) is audit

    @order_placed.connect
    def notify(sender: Any = None, **kwargs: Any) -> None:
        seen.append(("notify", sender, kwargs))

    @order_placed.connect(sender="shop.orders")
    def only_orders(sender: Any = None, **kwargs: Any) -> None:
        seen.append(("only_orders", sender, kwargs))

    responses = order_placed.send(sender="shop.orders", order_id=7)
    assert [name for name, _, _ in seen] == ["audit", "notify", "only_orders"]
    assert seen[0][2] == {"signal": order_placed, "order_id": 7}
    assert responses == [(audit, "audited"), (notify, None), (only_orders, None)]

    seen.clear()
    order_placed.send(sender="shop.refunds", order_id=8)
    assert [name for name, _, _ in seen] == ["audit", "notify"]


def test_sender_filter_matches_a_task_by_object_or_by_name(app: Conveyor) -> None:
    signal = Signal(name="task_done")

    @app.task(name="shop.tasks.charge")
    def charge() -> None: ...

    @app.task(name="shop.tasks.refund")
    def refund() -> None: ...

    calls: list[str] = []

    @signal.connect(sender=charge)
    def by_object(sender: Any = None, **kwargs: Any) -> None:
        calls.append("by_object")

    @signal.connect(sender="shop.tasks.charge")
    def by_name(sender: Any = None, **kwargs: Any) -> None:
        calls.append("by_name")

    signal.send(sender=refund)
    assert calls == []
    signal.send(sender=charge)
    assert calls == ["by_object", "by_name"]
    calls.clear()
    signal.send(sender="shop.tasks.charge")  # publish signals send the task's name
    assert calls == ["by_object", "by_name"]


def test_dispatch_uid_connects_once(order_placed: Signal) -> None:
    calls: list[str] = []

    def first(**kwargs: Any) -> None:
        calls.append("first")

    def second(**kwargs: Any) -> None:
        calls.append("second")

    order_placed.connect(first, dispatch_uid="audit-orders")
    order_placed.connect(second, dispatch_uid="audit-orders")  # a module imported twice
    order_placed.connect(first)
    order_placed.connect(first)
    order_placed.send(sender=None)
    assert calls == ["first", "first"]  # once by its uid, once by itself

    assert order_placed.disconnect(dispatch_uid="audit-orders") is True
    assert order_placed.disconnect(dispatch_uid="audit-orders") is False
    assert order_placed.disconnect(first) is True
    assert order_placed.receivers == []


def test_receivers_are_weak_unless_asked(order_placed: Signal) -> None:
    calls: list[str] = []

    def make_receiver(name: str) -> Any:
        def receiver(**kwargs: Any) -> None:
            calls.append(name)

        return receiver

    order_placed.connect(make_receiver("weak"))
    order_placed.connect(make_receiver("strong"), weak=False)
    gc.collect()
    order_placed.send(sender=None)
    assert calls == ["strong"]
    assert len(order_placed.receivers) == 1  # the collected one is gone, not just skipped


def test_bound_methods_live_as_long_as_their_object(order_placed: Signal) -> None:
    calls: list[int] = []

    class Counter:
        def __init__(self, label: int) -> None:
            self.label = label

        def on_order(self, **kwargs: Any) -> None:
            calls.append(self.label)

    one, two = Counter(1), Counter(2)
    order_placed.connect(one.on_order)  # a fresh bound method object: held weakly by parts
    order_placed.connect(two.on_order)
    order_placed.send(sender=None)
    assert calls == [1, 2]
    del one
    gc.collect()
    calls.clear()
    order_placed.send(sender=None)
    assert calls == [2]
    assert order_placed.disconnect(two.on_order) is True


def test_a_raising_receiver_is_logged_and_the_others_still_run(
    order_placed: Signal, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    @order_placed.connect
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("mail server down")

    @order_placed.connect
    def working(**kwargs: Any) -> None:
        calls.append("working")

    with caplog.at_level(logging.ERROR, logger="conveyor.signals"):
        responses = order_placed.send(sender=None)
    assert calls == ["working"]
    assert isinstance(responses[0][1], RuntimeError)
    assert "order_placed receiver" in caplog.text
    assert "broken raised RuntimeError: mail server down" in caplog.text


def test_a_receiver_without_keyword_arguments_is_refused(order_placed: Signal) -> None:
    def handler(sender: Any) -> None: ...

    with pytest.raises(ValueError, match=r"must accept keyword arguments.*\*\*kwargs"):
        order_placed.connect(handler)
    with pytest.raises(TypeError, match="receiver or its dispatch_uid"):
        order_placed.disconnect()


def test_a_raising_receiver_never_breaks_the_task(app: Conveyor) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    def explode(**kwargs: Any) -> None:
        raise RuntimeError("metrics backend down")

    task_prerun.connect(explode)
    task_success.connect(explode)
    task_postrun.connect(explode)
    try:
        result = add.delay(2, 3)
        run_until_empty(app)
    finally:
        for signal in (task_prerun, task_success, task_postrun):
            signal.disconnect(explode)
    assert result.get(timeout=1) == 5


def test_task_success_receiver_reads_the_stored_state(app: Conveyor) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    seen: list[tuple[str, Any]] = []

    @task_success.connect(sender=add)
    def check(sender: Any = None, result: Any = None, **kwargs: Any) -> None:
        task_id = sender.request.id
        seen.append((app.AsyncResult(task_id).state, result))

    try:
        add.delay(20, 22)
        run_until_empty(app)
    finally:
        task_success.disconnect(check, sender=add)
    assert seen == [(states.SUCCESS, 42)]


def test_publish_signals_see_celerys_headers_and_added_headers_travel(app: Conveyor) -> None:
    @app.task(bind=True)
    def report(self: Any) -> Any:
        return self.request.headers.get("trace_id")

    before: list[dict[str, Any]] = []
    after: list[tuple[Any, dict[str, Any], Any]] = []

    @before_task_publish.connect(sender=report.name)
    def stamp(sender: Any = None, headers: Any = None, **kwargs: Any) -> None:
        before.append(dict(headers))
        headers["trace_id"] = "trace-77"

    @after_task_publish.connect
    def sent(sender: Any = None, headers: Any = None, body: Any = None, **kwargs: Any) -> None:
        after.append((sender, headers, body))

    try:
        result = report.apply_async(queue="default", countdown=0)
        run_until_empty(app)
    finally:
        before_task_publish.disconnect(stamp, sender=report.name)
        after_task_publish.disconnect(sent)
    info = before[0]
    assert (info["task"], info["id"], info["retries"]) == (report.name, result.id, 0)
    assert after[0][0] == report.name
    assert after[0][1]["trace_id"] == "trace-77"
    assert after[0][2][:2] == ([], {})
    assert result.get(timeout=1) == "trace-77"


def test_eager_runs_send_the_task_signals(app: Conveyor) -> None:
    app.conf.task_always_eager = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def broken() -> None:
        raise KeyError("sku-9")

    seen: list[tuple[str, Any]] = []

    def on_prerun(sender: Any = None, args: Any = None, **kwargs: Any) -> None:
        seen.append(("prerun", args))

    def on_success(sender: Any = None, result: Any = None, **kwargs: Any) -> None:
        seen.append(("success", result))

    def on_failure(sender: Any = None, exception: Any = None, **kwargs: Any) -> None:
        seen.append(("failure", repr(exception)))

    def on_postrun(sender: Any = None, state: Any = None, **kwargs: Any) -> None:
        seen.append(("postrun", state))

    pairs = [
        (task_prerun, on_prerun),
        (task_success, on_success),
        (task_failure, on_failure),
        (task_postrun, on_postrun),
    ]
    for signal, receiver in pairs:
        signal.connect(receiver)
    try:
        assert add.delay(1, 2).get() == 3
        assert broken.apply().state == states.FAILURE
    finally:
        for signal, receiver in pairs:
            signal.disconnect(receiver)
    assert seen == [
        ("prerun", (1, 2)),
        ("success", 3),
        ("postrun", "SUCCESS"),
        ("prerun", ()),
        ("failure", "KeyError('sku-9')"),
        ("postrun", "FAILURE"),
    ]


def test_messages_that_cannot_run_send_their_signals() -> None:
    """A body that is not a task message, a task whose checks fail before it runs, and
    one past its ``expires``, each with its signal once its outcome is stored."""
    clock = FakeClock(1_700_000_000.0)
    app = memory_app(f"signals-{uuid.uuid4().hex[:6]}", clock=clock)

    @app.task(lock="report-{region}")  # the call has no ``region``: the lock check fails
    def build_report(day: str) -> str:
        return day

    @app.task
    def send_digest() -> None: ...

    seen: list[tuple[str, Any]] = []

    def on_rejected(message: Any = None, exc: Any = None, **kwargs: Any) -> None:
        seen.append(("rejected", (message.id, type(exc).__name__)))

    def on_internal_error(sender: Any = None, task_id: Any = None, **kwargs: Any) -> None:
        exception = kwargs["exception"]
        seen.append(("internal_error", (sender, task_id, type(exception).__name__)))

    def on_revoked(
        sender: Any = None, request: Any = None, expired: Any = None, **kwargs: Any
    ) -> None:
        stored = app.AsyncResult(request.id).state
        seen.append(("revoked", (sender, request.id, expired, stored)))

    pairs = [
        (task_rejected, on_rejected),
        (task_internal_error, on_internal_error),
        (task_revoked, on_revoked),
    ]
    for signal, receiver in pairs:
        signal.connect(receiver)
    try:
        app.broker.publish([Envelope("not-a-task", "default", b"\x00 garbage")])
        run_until_empty(app)
        report = build_report.delay("mon")
        run_until_empty(app)
        digest = send_digest.apply_async(expires=60)
        clock.advance(120)
        run_until_empty(app)
    finally:
        for signal, receiver in pairs:
            signal.disconnect(receiver)
    assert seen == [
        ("rejected", ("not-a-task", "DecodeError")),
        ("internal_error", (build_report, report.id, "ImproperlyConfigured")),
        ("revoked", (send_digest, digest.id, True, states.REVOKED)),
    ]
