"""A send without options takes a shorter path; it must build the message the full path
builds (``retries=0`` is an option that changes nothing, so it forces the full path)."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import Conveyor, Task
from conveyor.message import Message
from conveyor.testing import FakeClock
from conveyor.worker.eager import run_eagerly

NOW = 1_800_000_000.0


def same_but_ids(a: Message, b: Message) -> None:
    assert a.id != b.id
    assert a.root_id in (a.id, b.root_id)
    assert a.replace(id="x", root_id="r") == b.replace(id="x", root_id="r")


def make_app(**settings: Any) -> Conveyor:
    return Conveyor(
        "compose", broker="memory://", clock=FakeClock(NOW), set_as_current=False, **settings
    )


@pytest.mark.parametrize(
    ("settings", "task_options"),
    [
        ({}, {}),
        ({}, {"priority": 7, "queue": "mail", "expires": 60, "time_limit": 5.0}),
        ({}, {"soft_time_limit": 3.0, "ignore_result": True}),
        ({}, {"ignore_result": False, "expires": 30.5}),
        ({"task_default_queue": "low", "task_default_priority": 2}, {}),
        ({"task_ignore_result": True}, {}),
        ({"task_ignore_result": True}, {"ignore_result": False}),
        ({"task_routes": {"t.*": "routed"}}, {}),
        ({"task_routes": {"t.send": {"queue": "mail", "priority": 3}}}, {}),
        ({"task_routes": {"t.send": "routed"}}, {"queue": "own", "priority": 5}),
        ({"task_routes": [lambda name, *a, **k: {"queue": name}]}, {}),
        ({"task_queues": ["default", "mail"], "task_create_missing_queues": False}, {}),
    ],
)
def test_plain_send_builds_what_the_full_path_builds(
    settings: dict[str, Any], task_options: dict[str, Any]
) -> None:
    app = make_app(**settings)

    @app.task(name="t.send", **task_options)
    def send(to: str, n: int = 1) -> None:
        return None

    for args, kwargs in (((), {"to": "a@b.c"}), (("a@b.c", 2), {})):
        plain = app.build_message(send, args, kwargs, {})
        full = app.build_message(send, args, kwargs, {"retries": 0})
        same_but_ids(plain, full)
        assert plain.root_id == plain.id
        assert plain.sent_at == NOW
        assert not plain.reply
        plain = app.build_message(send, args, kwargs, {}, reply=True)
        full = app.build_message(send, args, kwargs, {"retries": 0}, reply=True)
        same_but_ids(plain, full)
        assert plain.reply is not plain.ignore_result  # no reply for an ignored result


def test_plain_send_from_inside_a_task_carries_the_parent() -> None:
    app = make_app()
    built: list[tuple[Message, Message]] = []

    @app.task(name="t.child")
    def child() -> None:
        return None

    @app.task(name="t.parent")
    def parent() -> None:
        built.append(
            (app.build_message(child, (), {}, {}), app.build_message(child, (), {}, {"retries": 0}))
        )

    run_eagerly(parent, (), {}, {"task_id": "p-1"})
    [(plain, full)] = built
    same_but_ids(plain, full)
    assert (plain.parent_id, plain.root_id) == ("p-1", "p-1")


def test_plain_send_still_checks_arguments_and_priority() -> None:
    app = make_app()

    @app.task(name="t.two")
    def two(x: int, y: int) -> None:
        return None

    with pytest.raises(TypeError, match="'y'"):
        app.build_message(two, (1,), {}, {})

    class Loud(Task):
        name = "t.loud"
        priority = 11

        def run(self) -> None:
            return None

    loud = app.register_task(Loud())
    with pytest.raises(ValueError, match="priority must be an integer from 0 to 9"):
        app.build_message(loud, (), {}, {})


def test_pickle_tasks_take_the_full_path() -> None:
    app = make_app(accept_content=["json", "pickle"])

    @app.task(name="t.pickled", serializer="pickle")
    def pickled(x: object) -> None:
        return None

    message = app.build_message(pickled, ({1, 2},), {}, {})
    assert message.content_type == "pickle"
    assert message.payload is not None and message.args == []
