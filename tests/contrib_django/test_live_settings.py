"""Django settings reach the app when they change, and are read only once complete.

pytest-django's ``settings`` fixture changes a setting with ``override_settings(...)``'s
``enable()`` and undoes it with ``disable()`` when the test ends; ``SettingsChanges``
below does the same, so these tests hold for that fixture as for ``override_settings``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from conveyor import Conveyor, shared_task
from conveyor.brokers import MemoryBroker
from conveyor.exceptions import ImproperlyConfigured


@shared_task(name="live_settings.explode")
def explode() -> None:
    raise LookupError("no such order")


@shared_task(name="live_settings.double")
def double(x: int) -> int:
    return 2 * x


class SettingsChanges:
    """pytest-django's ``settings`` fixture: ``change(NAME=value)`` for ``settings.NAME =
    value`` enables an override at once; ``undo()`` (the fixture's teardown) disables them,
    last first."""

    def __init__(self) -> None:
        self.enabled: list[Any] = []

    def change(self, **values: Any) -> None:
        for name, value in values.items():
            override = override_settings(**{name: value})
            override.enable()
            self.enabled.append(override)

    def undo(self) -> None:
        while self.enabled:
            self.enabled.pop().disable()


@pytest.fixture
def settings_fixture() -> Iterator[SettingsChanges]:
    changes = SettingsChanges()
    yield changes
    changes.undo()


@pytest.fixture
def celery_layout_app() -> Iterator[Conveyor]:
    """An app made the way Celery's Django guide makes it (``proj/celery.py``)."""
    app = Conveyor("proj", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    yield app
    app.close()


IDLE = "live-settings-idle"
"""A queue no worker reads: the session's worker (a fixture of other tests, still running)
would take a message sent to the default queue, and fail it, since these tasks are not
in its project."""


def test_override_settings_makes_the_project_app_eager_at_once(project_app: Conveyor) -> None:
    sent = double.apply_async((4,), queue=IDLE)
    assert sent.state == "PENDING"  # the broker holds it: not eager

    with override_settings(CONVEYOR_TASK_ALWAYS_EAGER=True, CONVEYOR_TASK_EAGER_PROPAGATES=True):
        assert double.delay(21).get() == 42
        with pytest.raises(LookupError, match="no such order"):
            explode.delay()

    assert project_app.conf.task_always_eager is False
    assert double.apply_async((1,), queue=IDLE).state == "PENDING"
    project_app.broker.purge()


def test_the_settings_fixture_changes_reach_the_app_and_are_undone(
    project_app: Conveyor, settings_fixture: SettingsChanges
) -> None:
    settings_fixture.change(CONVEYOR_TASK_ALWAYS_EAGER=True)
    assert double.delay(5).get() == 10
    failed = explode.delay()  # eager, not propagating: the failure is in the result
    assert failed.state == "FAILURE"

    settings_fixture.change(CONVEYOR_TASK_EAGER_PROPAGATES=True)
    with pytest.raises(LookupError):
        explode.delay()

    settings_fixture.undo()  # the fixture's teardown
    assert project_app.conf.task_always_eager is False
    assert project_app.conf.task_eager_propagates is False
    assert double.apply_async((1,), queue=IDLE).state == "PENDING"
    project_app.broker.purge()


def test_a_celery_layout_app_follows_its_namespace(celery_layout_app: Conveyor) -> None:
    app = celery_layout_app
    assert app.broker_url == "sqlite:///conveyor.db"  # the shop sets CONVEYOR_*, not CELERY_*

    with override_settings(
        CELERY_BROKER_URL="memory://",
        CELERY_TASK_ALWAYS_EAGER=True,
        CELERY_TASK_EAGER_PROPAGATES=True,
    ):
        assert isinstance(app.broker, MemoryBroker)
        assert app.conf.task_always_eager is True
        assert app.conf.task_eager_propagates is True

    assert app.broker_url == "sqlite:///conveyor.db"
    assert app.conf.task_always_eager is False


def test_a_misspelt_override_is_an_error_where_the_settings_are_read(
    celery_layout_app: Conveyor,
) -> None:
    with (
        override_settings(CELERY_TASK_ALWAYS_EGAER=True),
        pytest.raises(ImproperlyConfigured, match="did you mean 'task_always_eager'"),
    ):
        _ = celery_layout_app.conf.task_always_eager
    assert celery_layout_app.conf.task_always_eager is False


PROJECT = {
    "proj/__init__.py": """
        from .celery import app as celery_app

        __all__ = ("celery_app",)
    """,
    "proj/celery.py": """
        import os

        from conveyor import Conveyor

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

        app = Conveyor("proj")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        app.autodiscover_tasks()
    """,
    "proj/settings.py": """
        import os

        SECRET_KEY = "test"
        INSTALLED_APPS = ["django.contrib.contenttypes", "proj.orders"]
        DATABASES = {}
        CELERY_BROKER_URL = os.environ["PROJ_BROKER_URL"]
        CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
    """,
    "proj/test_settings.py": """
        from proj.settings import *  # noqa: F403

        CELERY_TASK_ALWAYS_EAGER = True
        CELERY_TASK_EAGER_PROPAGATES = True
    """,
    "proj/orders/__init__.py": "",
    "proj/orders/tasks.py": """
        from conveyor import shared_task


        @shared_task
        def order_total(prices):
            return sum(prices)
    """,
}

CHECK = """
import django

django.setup()

from proj.celery import app
from proj.orders.tasks import order_total

print(app.broker_url)
print(order_total.delay([2, 3]).get())
print(sorted(name for name in app.tasks if name.startswith("proj.")))
"""


def write_project(root: Path) -> None:
    for path, text in PROJECT.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))


def test_settings_read_while_a_test_settings_module_imports_are_not_lost(
    tmp_path: Path,
) -> None:
    write_project(tmp_path)
    broker_url = f"sqlite:///{tmp_path / 'broker.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(
        DJANGO_SETTINGS_MODULE="proj.test_settings",
        PROJ_BROKER_URL=broker_url,
        PYTHONPATH=str(tmp_path),
    )
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CHECK],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        broker_url,  # not ./conveyor.db
        "5",  # eager, from the test settings' own lines
        "['proj.orders.tasks.order_total']",  # discovered from INSTALLED_APPS
    ]
    assert not (tmp_path / "conveyor.db").exists()
