"""``current_app`` as Celery projects use it: an object whose attributes are the current
app's, bound when the module is imported and read when used; calling it still returns the
app itself."""

from __future__ import annotations

import sys
import textwrap
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor, current_app
from conveyor.testing import memory_app, run_until_empty

MODULE = textwrap.dedent(
    """
    from conveyor import current_app, shared_task


    def eager_now():
        return current_app.conf.task_always_eager


    @shared_task(name=__name__ + ".ping")
    def ping():
        return "pong from " + current_app.main
    """
)


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    name = f"proj_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)


def test_attributes_are_the_current_apps(proj: types.ModuleType) -> None:
    app = memory_app(f"current-{uuid.uuid4().hex[:6]}")
    app.conf.task_always_eager = True
    assert proj.eager_now() is True
    assert current_app.conf is app.conf and current_app.main == app.main
    assert proj.ping.delay().get(timeout=1) == f"pong from {app.main}"


def test_calling_it_gives_the_app_itself(proj: types.ModuleType) -> None:
    app = memory_app(f"current-{uuid.uuid4().hex[:6]}")
    assert current_app() is app and current_app._get_current_object() is app
    assert current_app == app
    result = current_app.send_task(proj.ping.name)
    run_until_empty(app)
    assert result.get(timeout=1) == f"pong from {app.main}"
    other = Conveyor(f"other-{uuid.uuid4().hex[:6]}", broker="memory://")
    assert current_app() is other  # looked up on each use, not when imported
