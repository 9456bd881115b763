"""``app.autodiscover_tasks()`` without Django: a plain list of packages, a callable, a
``related_name``; nothing is imported until a worker starts or a name is looked up."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.exceptions import NotRegistered
from conveyor.testing import memory_app

TASK = """
from conveyor import shared_task


@shared_task
def {name}(x):
    return x
"""


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Packages ``<p>_orders`` (tasks.py), ``<p>_mail`` (a tasks/ package of two modules,
    and jobs.py) and ``<p>_site`` (no tasks), with a prefix of this test's own."""
    prefix = f"pkg{uuid.uuid4().hex[:8]}"
    files = {
        f"{prefix}_orders/__init__.py": "",
        f"{prefix}_orders/tasks.py": TASK.format(name="charge"),
        f"{prefix}_mail/__init__.py": "",
        f"{prefix}_mail/tasks/__init__.py": TASK.format(name="send"),
        f"{prefix}_mail/tasks/digest.py": TASK.format(name="digest"),
        f"{prefix}_mail/jobs.py": TASK.format(name="bounce"),
        f"{prefix}_site/__init__.py": "",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield prefix
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]


def make_app() -> Conveyor:
    return memory_app(f"discovery-{uuid.uuid4().hex[:6]}")


def test_nothing_is_imported_until_a_worker_starts(packages: str) -> None:
    app = make_app()
    app.autodiscover_tasks([f"{packages}_orders", f"{packages}_mail", f"{packages}_site"])
    assert f"{packages}_orders.tasks" not in sys.modules

    app.import_includes()  # what `conveyor worker` and `conveyor beat` do at start

    names = set(app.tasks)
    assert {
        f"{packages}_orders.tasks.charge",
        f"{packages}_mail.tasks.send",
        f"{packages}_mail.tasks.digest.digest",
    } <= names
    assert f"{packages}_mail.jobs.bounce" not in names


def test_a_name_looked_up_runs_pending_discovery(packages: str) -> None:
    app = make_app()
    app.autodiscover_tasks([f"{packages}_orders"])

    assert app.tasks[f"{packages}_orders.tasks.charge"].name.endswith("charge")
    with pytest.raises(NotRegistered):
        app.tasks[f"{packages}_orders.tasks.refund"]


def test_packages_may_be_a_callable_and_the_module_another_name(packages: str) -> None:
    calls: list[int] = []

    def installed_apps() -> list[str]:
        calls.append(1)
        return [f"{packages}_mail", f"{packages}_orders"]

    app = make_app()
    app.autodiscover_tasks(installed_apps, related_name="jobs")
    assert calls == []  # evaluated only when discovery runs

    app.autodiscover_tasks([f"{packages}_orders"], force=True)  # force: at once
    assert f"{packages}_orders.tasks" in sys.modules
    assert calls == [1]  # force runs every pending call
    assert f"{packages}_mail.jobs.bounce" in set(app.tasks)


def test_a_tasks_module_that_fails_to_import_is_an_error(packages: str, tmp_path: Path) -> None:
    (tmp_path / f"{packages}_orders" / "tasks.py").write_text("import no_such_dependency\n")
    app = make_app()
    app.autodiscover_tasks([f"{packages}_orders"])

    with pytest.raises(ModuleNotFoundError, match="no_such_dependency"):
        app.import_includes()
    with pytest.raises(ModuleNotFoundError):  # still pending: the next start fails too
        app.import_includes()


def test_an_app_config_path_counts_as_its_package(packages: str, tmp_path: Path) -> None:
    (tmp_path / f"{packages}_orders" / "apps.py").write_text(
        f"class OrdersConfig:\n    name = '{packages}_orders'\n"
    )
    app = make_app()
    app.autodiscover_tasks([f"{packages}_orders.apps.OrdersConfig"], force=True)
    assert f"{packages}_orders.tasks.charge" in set(app.tasks)
