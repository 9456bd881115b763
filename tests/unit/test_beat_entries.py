"""Declaring entries in code (beat_schedule, @app.periodic_task) and choosing a store."""

from __future__ import annotations

import sys
import types

import pytest

from conveyor.beat import MemoryStore, code_entries, resolve_store, schedule
from conveyor.exceptions import ImproperlyConfigured
from conveyor.testing import memory_app


@pytest.fixture
def app():
    made = memory_app()
    yield made
    made.close()


@pytest.fixture
def store():
    return MemoryStore()


def test_periodic_task_on_an_existing_task_and_by_default_name(app):
    @app.periodic_task(30)
    @app.task(name="tasks.ping")
    def ping() -> None: ...

    assert ping.name == "tasks.ping"
    assert code_entries(app)["tasks.ping"].schedule == schedule(30)


def test_one_name_declared_twice_is_an_error(app):
    app.conf.beat_schedule = {"dup": {"task": "tasks.a", "schedule": 30}}

    @app.periodic_task(30, name="dup")
    def other() -> None: ...

    with pytest.raises(ImproperlyConfigured, match="declared twice"):
        code_entries(app)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"task": "t", "schedule": 30, "relative": True}, "relative"),
        ({"task": "t"}, "needs 'schedule'"),
        ({"task": "t", "schedule": "61 * * * *"}, "minute"),
        ({"task": "t", "schedule": 30, "catch_up": "sometimes"}, "catch_up"),
        ({"task": "t", "schedule": 30, "options": {"task_id": "x"}}, "task_id"),
        ({"task": "t", "schedule": 30, "options": {"colour": "red"}}, "colour"),
    ],
)
def test_bad_beat_schedule_items_are_reported_by_name(app, config, match):
    app.conf.beat_schedule = {"bad": config}

    with pytest.raises(ImproperlyConfigured, match=match):
        code_entries(app)


def test_resolve_store_takes_a_url_or_a_factory(app, monkeypatch, store):
    plugin = types.ModuleType("beat_store_plugin")
    plugin.factory = lambda given: store if given is app else None
    monkeypatch.setitem(sys.modules, "beat_store_plugin", plugin)

    assert resolve_store(app, "beat_store_plugin:factory") is store
    assert isinstance(resolve_store(app, "memory://"), MemoryStore)
    assert resolve_store(app, None) is resolve_store(app, None)
    with pytest.raises(ImproperlyConfigured):
        resolve_store(app, "beat_store_plugin:missing")
