"""Routing as a Celery project configures it: ``task_routes`` (dicts with names and glob
patterns, router functions, lists of both), ``task_queues`` with ``Queue`` objects,
``task_default_queue`` and ``task_create_missing_queues``."""

from __future__ import annotations

import re
import sys
import types
import uuid
from typing import Any

import pytest

from conveyor import Conveyor, Queue
from conveyor.exceptions import ImproperlyConfigured
from conveyor.routing import Exchange
from conveyor.testing import memory_app, run_until_empty


def make_app(**settings: Any) -> Conveyor:
    app = memory_app(f"routing-{uuid.uuid4().hex[:6]}", **settings)
    app.set_current()
    return app


def waiting(app: Conveyor) -> dict[str, int]:
    """How many messages wait in each queue that has any."""
    return {name: s.ready for name, s in app.broker.stats().items() if s.ready}


def define_feed_tasks(app: Conveyor) -> dict[str, Any]:
    @app.task(name="feed.tasks.import_feed")
    def import_feed(url: str) -> str:
        return url

    @app.task(name="feed.tasks.refresh")
    def refresh() -> None: ...

    @app.task(name="web.tasks.send_welcome")
    def send_welcome(user_id: int) -> int:
        return user_id

    @app.task(name="web.tasks.resize", queue="images")
    def resize(path: str) -> str:
        return path

    return {
        "import_feed": import_feed,
        "refresh": refresh,
        "send_welcome": send_welcome,
        "resize": resize,
    }


def test_a_dict_of_names_and_glob_patterns_routes_sends() -> None:
    app = make_app(
        task_routes={
            "feed.tasks.*": {"queue": "feeds"},
            "web.tasks.send_welcome": "mail",  # a queue name alone
        }
    )
    t = define_feed_tasks(app)

    t["import_feed"].delay("https://example.com/rss")
    t["refresh"].apply_async()
    t["send_welcome"].delay(7)
    app.send_task("feed.tasks.refresh")
    app.send_task("other.task")

    assert waiting(app) == {"feeds": 3, "mail": 1, "default": 1}


def test_a_worker_of_a_queue_runs_what_was_routed_there() -> None:
    app = make_app(task_routes={"feed.tasks.*": {"queue": "feeds"}})
    t = define_feed_tasks(app)
    result = t["import_feed"].delay("https://example.com/rss")

    assert run_until_empty(app) == 0  # the default queue: nothing there
    assert run_until_empty(app, ["feeds"]) == 1
    assert result.get(timeout=1) == "https://example.com/rss"


def test_an_explicit_queue_and_the_tasks_own_queue_win_over_routes() -> None:
    app = make_app(task_routes={"*": {"queue": "routed", "priority": 2}})
    t = define_feed_tasks(app)

    t["refresh"].apply_async(queue="explicit")
    t["resize"].delay("/tmp/a.png")  # @app.task(queue="images")
    t["refresh"].delay()

    assert waiting(app) == {"explicit": 1, "images": 1, "routed": 1}
    message = app.build_message(t["refresh"], (), {}, {"queue": "explicit"})
    assert (message.queue, message.priority) == ("explicit", 2)  # the route's priority stays
    message = app.build_message(t["refresh"], (), {}, {"priority": 9})
    assert (message.queue, message.priority) == ("routed", 9)


def test_a_router_function_is_called_as_celery_calls_it() -> None:
    calls: list[tuple[Any, ...]] = []

    def route_task(
        name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
    ) -> Any:
        calls.append((name, args, kwargs, dict(options), task))
        if name.startswith("web."):
            return {"queue": "web", "routing_key": "web.welcome", "exchange": "web"}
        if kwargs.get("url", "").endswith(".xml"):
            return "xml"
        return None  # the next router decides

    app = make_app(task_routes=[route_task, {"feed.tasks.*": Queue("feeds")}])
    t = define_feed_tasks(app)

    t["send_welcome"].apply_async((7,), countdown=0)
    t["import_feed"].delay(url="https://example.com/feed.xml")
    t["import_feed"].delay(url="https://example.com/feed.json")
    t["import_feed"].delay(url="https://example.com/other.json")

    assert waiting(app) == {"web": 1, "xml": 1, "feeds": 2}
    name, args, kwargs, options, task = calls[0]
    assert (name, args, kwargs, options) == ("web.tasks.send_welcome", (7,), {}, {"countdown": 0})
    assert task is t["send_welcome"]
    assert len(calls) == 4  # every send, also those without options


def test_routers_named_by_dotted_path_and_old_router_classes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("proj_routers")

    def by_module(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any):
        return {"queue": name.split(".")[0]} if name.startswith("billing.") else None

    class LegacyRouter:  # Celery 3's router classes
        def route_for_task(self, task: str, args: Any = None, kwargs: Any = None) -> Any:
            return {"queue": "legacy"} if task == "old.task" else None

    module.by_module = by_module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "proj_routers", module)
    app = make_app(task_routes=("proj_routers.by_module", LegacyRouter()))

    app.send_task("billing.invoice")
    app.send_task("old.task")
    app.send_task("new.task")

    assert waiting(app) == {"billing": 1, "legacy": 1, "default": 1}


def test_regular_expression_keys_and_the_default_queue_setting() -> None:
    app = make_app(
        task_routes={re.compile(r"(video|image)\.tasks\..*"): {"queue": "media"}},
        task_default_queue="celery",
    )
    app.send_task("video.tasks.encode")
    app.send_task("image.tasks.thumbnail")
    app.send_task("audio.tasks.normalize")

    assert waiting(app) == {"media": 2, "celery": 1}


def test_routes_changed_at_run_time_apply_to_the_next_send() -> None:
    app = make_app()
    t = define_feed_tasks(app)
    t["refresh"].delay()
    app.conf.task_routes = {"feed.tasks.refresh": "feeds"}
    t["refresh"].delay()

    assert waiting(app) == {"default": 1, "feeds": 1}


def test_a_worker_without_queues_consumes_what_task_queues_names() -> None:
    app = make_app(
        task_queues=(
            Queue("default", Exchange("default"), routing_key="default"),
            Queue("videos", Exchange("media"), routing_key="media.video"),
            "images",
        )
    )
    assert app.router.worker_queues() == ["default", "videos", "images"]
    assert app.router.worker_queues(["images"]) == ["images"]
    assert make_app().router.worker_queues() == ["default"]
    assert make_app(task_default_queue="celery").router.worker_queues() == ["celery"]


def test_missing_queues_are_refused_when_they_may_not_be_created() -> None:
    app = make_app(
        task_queues=[Queue("default"), Queue("feeds")],
        task_create_missing_queues=False,
        task_routes={"feed.tasks.*": "feeds", "web.tasks.*": "web"},
    )
    t = define_feed_tasks(app)

    t["import_feed"].delay("https://example.com/rss")  # listed: fine
    with pytest.raises(ImproperlyConfigured) as caught:
        t["send_welcome"].delay(1)
    assert "queue 'web' (task 'web.tasks.send_welcome') is not in task_queues" in str(caught.value)
    assert "task_create_missing_queues" in str(caught.value)
    with pytest.raises(ImproperlyConfigured, match="queue 'elsewhere'"):
        t["refresh"].apply_async(queue="elsewhere")
    with pytest.raises(ImproperlyConfigured, match="queue 'images'"):
        app.router.worker_queues(["feeds", "images"])
    assert waiting(app) == {"feeds": 1}


def test_bad_routes_are_errors_that_say_what_a_route_is() -> None:
    app = make_app(task_routes={"feed.tasks.*": {"queue": "feeds", "countdown": 5}})
    t = define_feed_tasks(app)
    with pytest.raises(ImproperlyConfigured, match="sets \\['countdown'\\]: a route sets queue"):
        t["refresh"].delay()
    app.conf.task_routes = 42
    with pytest.raises(ImproperlyConfigured, match="task_routes holds 42"):
        t["refresh"].delay()
    app.conf.task_routes = "proj_missing.router"
    with pytest.raises(ImproperlyConfigured, match="cannot load the router 'proj_missing.router'"):
        t["refresh"].delay()
    with pytest.raises(ImproperlyConfigured, match="a Queue needs a name"):
        Queue("")
